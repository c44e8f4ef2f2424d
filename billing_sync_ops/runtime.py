"""The embedded local runtime: moto on loopback, resources from the synthesised stack, real handlers.

Nothing here needs an AWS account or Docker. The webhook endpoint is served over real HTTP; the
posting queue is polled by a dispatcher that plays the Lambda event source mapping.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3

from billing_sync_ops.lambda_runtime import LocalFunctionHost, QueuePoller, api_gateway_event
from billing_sync_ops.local_stack import LocalStack, provision, synthesize_template

REPO_ROOT = Path(__file__).resolve().parent.parent
LOCAL_WEBHOOK_SECRET = "whsec_local_billing_sync"
WEBHOOK_SECRET_ENV = "BILLING_SYNC_STRIPE_WEBHOOK_SECRET"
REGION = "us-east-1"


_ACTIVE = threading.Lock()


def webhook_secret_from_env() -> str:
    return os.environ.get(WEBHOOK_SECRET_ENV) or LOCAL_WEBHOOK_SECRET


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PortInUseError(OSError):
    """The webhook port is taken by another process."""


@dataclass
class LocalRuntime:
    """Start with `start()`, send webhooks to `webhook_url`, `drain()`, then `stop()`."""

    webhook_secret: str = LOCAL_WEBHOOK_SECRET
    host: str = "127.0.0.1"
    port: int = 0
    work_dir: Path = REPO_ROOT / "build" / "local"
    retry_delay_seconds: int = 1
    sweep_interval_seconds: float = 60.0
    log_level: str = "WARNING"
    accepted: dict[str, str] = field(default_factory=dict)  # event id -> source event id
    refused: list[dict[str, Any]] = field(default_factory=list)

    def start(self) -> LocalRuntime:
        """Binds the webhook port first, so a busy port fails before anything else starts.

        Raises PortInUseError, RuntimeError when another runtime is running in this process (handlers
        and their environment are process-wide), or the error of whatever failed; nothing is left
        running on failure.
        """
        if not _ACTIVE.acquire(blocking=False):
            raise RuntimeError("a local runtime is already running in this process; stop it first")
        try:
            self._bind_http()
        except BaseException:
            _ACTIVE.release()
            raise
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._saved_env = dict(os.environ)
        try:
            self._start_backend()
        except BaseException:
            self._http.server_close()
            self._stop_backend()
            _ACTIVE.release()
            raise
        self._http_thread = threading.Thread(target=self._http.serve_forever, name="http", daemon=True)
        self._http_thread.start()
        return self

    def _start_backend(self) -> None:
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        moto_port = _free_port()
        self._moto = ThreadedMotoServer(ip_address="127.0.0.1", port=moto_port, verbose=False)
        self._moto.start()
        endpoint = f"http://127.0.0.1:{moto_port}"
        # moto keeps its state per process, not per server: start every run from an empty account.
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=10)
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
                "POWERTOOLS_METRICS_DISABLED": "true",
                "POWERTOOLS_TRACE_DISABLED": "true",
            }
        )
        os.environ.pop("AWS_PROFILE", None)
        template = synthesize_template(REPO_ROOT, self.work_dir / "cdk.out")
        print(f"creating the stack's resources in moto at {endpoint} ...", file=sys.stderr)
        self.stack: LocalStack = provision(template, region=REGION, webhook_secrets=[self.webhook_secret])
        self._apply_function_environment()
        self._session = boto3.session.Session(region_name=REGION)
        self.sqs = self._session.client("sqs")
        self._hosts = {logical_id: LocalFunctionHost(fn) for logical_id, fn in self.stack.functions.items()}
        self._pollers = [
            QueuePoller(self.sqs, mapping, self._hosts[mapping.function_logical_id], self.retry_delay_seconds)
            for mapping in self.stack.event_source_mappings
        ]
        self._threads = [
            threading.Thread(target=self._poll_forever, args=(poller,), name=f"esm-{i}", daemon=True)
            for i, poller in enumerate(self._pollers)
        ]
        self._sweeper = self._hosts[self.stack.function_for("sweep_waiting_room").logical_id]
        self._threads.append(threading.Thread(target=self._sweep_forever, name="sweeper", daemon=True))
        for thread in self._threads:
            thread.start()

    def sweep(self) -> Any:
        """Plays the stack's schedule once: post again what waits, park what is past its horizon."""
        return self._sweeper.invoke({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})

    def _sweep_forever(self) -> None:
        while not self._stopping.wait(self.sweep_interval_seconds):
            try:
                self.sweep()
            except Exception as exc:
                print(f"waiting-room sweep error: {exc!r}", file=sys.stderr)

    def _apply_function_environment(self) -> None:
        """Handlers run in this process, so their environments must agree where they overlap."""
        merged: dict[str, str] = {}
        for function in self.stack.functions.values():
            for name, value in function.environment.items():
                if merged.get(name, value) != value:
                    raise RuntimeError(f"functions disagree on {name}: {merged[name]!r} vs {value!r}")
                merged[name] = value
        os.environ.update(merged)
        os.environ["POWERTOOLS_LOG_LEVEL"] = self.log_level
        from billing_sync import composition

        composition.reset()

    def _poll_forever(self, poller: QueuePoller) -> None:
        while not self._stopping.is_set():
            try:
                poller.poll_once(wait_seconds=1)
            except Exception as exc:
                print(f"dispatcher error on {poller.mapping.queue_url}: {exc!r}", file=sys.stderr)
                time.sleep(0.5)

    # ---- HTTP ----

    def _bind_http(self) -> None:
        runtime = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                runtime._serve(self)

            def do_GET(self) -> None:
                runtime._serve(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        try:
            self._http = ThreadingHTTPServer((self.host, self.port), Handler)
        except OSError as exc:
            raise PortInUseError(f"cannot listen on {self.host}:{self.port}: {exc.strerror}") from exc
        self.port = int(self._http.server_address[1])

    @property
    def webhook_url(self) -> str:
        route = self.stack.route("POST", "/webhooks/stripe")
        return f"http://{self.host}:{self.port}{route.path}"

    def _serve(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        try:
            route = self.stack.route(request.command, request.path.split("?")[0])
        except KeyError:
            self._reply(request, 404, {"error": "not_found", "message": f"no route {request.command} {request.path}"})
            return
        event = api_gateway_event(
            method=request.command,
            path=route.path,
            headers=dict(request.headers.items()),
            body=body,
            source_ip=request.client_address[0],
        )
        try:
            response = self._hosts[route.function_logical_id].invoke(event)
        except Exception as exc:
            self._reply(request, 502, {"error": "function_error", "message": repr(exc)})
            return
        status = int(response["statusCode"])
        payload = json.loads(response.get("body") or "{}")
        if status == 200 and payload.get("event_id"):
            self.accepted[payload["event_id"]] = payload.get("source_event_id", "")
        elif status >= 400:
            self.refused.append({"status": status, **payload})
        self._reply(request, status, payload)

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)

    # ---- lifecycle ----

    def stop_accepting(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def drain(self, *, timeout_seconds: float = 60, settle_seconds: float = 1.5) -> bool:
        """Waits until every polled queue is empty and idle; returns False when the bound was hit."""
        deadline = time.monotonic() + timeout_seconds
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            if self._queues_idle():
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= settle_seconds:
                    return True
            else:
                quiet_since = None
            time.sleep(0.2)
        return False

    def _queues_idle(self) -> bool:
        for poller in self._pollers:
            if poller.busy:
                return False
            attributes = self.sqs.get_queue_attributes(
                QueueUrl=poller.mapping.queue_url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            if int(attributes["ApproximateNumberOfMessages"]) or int(
                attributes["ApproximateNumberOfMessagesNotVisible"]
            ):
                return False
        return True

    def stop(self) -> None:
        if getattr(self, "_http_thread", None) and self._http_thread.is_alive():
            self.stop_accepting()
        self._stop_backend()
        _ACTIVE.release()

    def _stop_backend(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=5)
        if getattr(self, "_moto", None) is not None:
            self._moto.stop()
            self._moto = None
        os.environ.clear()
        os.environ.update(self._saved_env)
        from billing_sync import composition

        composition.reset()

    def __enter__(self) -> LocalRuntime:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
