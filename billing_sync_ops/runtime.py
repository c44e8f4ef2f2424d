"""The embedded local runtime: moto on loopback, resources from the synthesised stack, real handlers.

Nothing here needs an AWS account or Docker. The webhook endpoint is served over real HTTP; the
posting queue is polled by as many pollers as the template lets the posting function run at once,
each invoking the handler in a worker process of its own (they play the Lambda event source mapping
and its execution environments). moto answers from a process of its own; its Step Functions
interpreter runs the stack's state machines (the refund saga) from their real definitions, and their
Lambda tasks come back to the real handlers here through a local Lambda Invoke endpoint.

All state (events, lineage, ledger, queues) lives in moto's memory, in moto's process: stopping the
runtime stops that process and loses it. Handlers log to stderr here (in Lambda, Powertools writes to
stdout), so a command's stdout carries only its own output.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3

from billing_sync.domain.refunds import EXECUTION_STATUS_CHANGE, UNRECORDED_END_STATUSES
from billing_sync.domain.webhook import MAX_WEBHOOK_BYTES
from billing_sync_ops.lambda_runtime import (
    FunctionHost,
    FunctionHostPool,
    LocalFunctionHost,
    LocalLambdaService,
    ProcessFunctionHost,
    QueuePoller,
    StateMachineTasks,
    VisibilityChanges,
    api_gateway_event,
)
from billing_sync_ops.local_stack import (
    EventSourceMapping,
    LocalFunction,
    LocalStack,
    StreamSourceMapping,
    provision,
    synthesize_template,
)
from billing_sync_ops.moto_process import MotoProcess

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_RATES_FILE = REPO_ROOT / "events" / "rates" / "ecb_2026-11.csv"
LOCAL_WEBHOOK_SECRET = "whsec_local_billing_sync"
WEBHOOK_SECRET_ENV = "BILLING_SYNC_STRIPE_WEBHOOK_SECRET"
REGION = "us-east-1"


_ACTIVE = threading.Lock()


def webhook_secret_from_env() -> str:
    return os.environ.get(WEBHOOK_SECRET_ENV) or LOCAL_WEBHOOK_SECRET


LOCAL_SCALED_DELAYS = {
    "POSTING_RETRY_BASE_SECONDS": 30,
    "POSTING_RETRY_CAP_SECONDS": 900,
    "ERP_CIRCUIT_COOL_DOWN_SECONDS": 60,
}
"""The posting function's deployed delays (settings defaults), scaled by `time_scale` in the local runtime."""

LOCAL_SAGA_SETTINGS = {
    "SAGA_WAIT_SECONDS": 1,
    "SAGA_MAX_WAITS": 60,
}
"""The refund saga's wait between looks for the payment it refunds, and how many looks before it parks the
refund DEPENDENCY_PENDING: deployed 300 s x 864 (3 days); locally 1 s x 60, a one-minute horizon. They
override the template's values; a value already set in the environment wins."""


class PortInUseError(OSError):
    """The webhook port is taken by another process."""


class _Stderr:
    """A stream that writes to whatever `sys.stderr` is at the time (pytest swaps it per test)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _ops_discovery() -> Any:
    """`billing_sync_ops.ops.discovery` (tells the operator commands where a running stack is), or None.

    The operator commands are built separately; until they exist the local runtime runs without them.
    """
    try:
        from billing_sync_ops.ops import discovery
    except ModuleNotFoundError as exc:
        if exc.name in ("billing_sync_ops.ops", "billing_sync_ops.ops.discovery"):
            return None
        raise
    return discovery


class _BodyRefused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


_DIGITS = re.compile(r"[0-9]+")
_CHUNK_SIZE = re.compile(r"[0-9A-Fa-f]{1,16}")
_MAX_CHUNK_LINE = 4096
_MAX_TRAILER_LINES = 64


def _error_code(status: HTTPStatus) -> str:
    return status.phrase.lower().replace(" ", "_").replace("-", "_")


def _read_body(request: BaseHTTPRequestHandler, *, max_bytes: int, timeout_seconds: float) -> bytes:
    """The request body, read within `timeout_seconds` in all; raises _BodyRefused.

    Content-Length over `max_bytes` is 413 before a byte is read; a body shorter than its
    Content-Length (the client stops or closes) is 400 once the deadline passes or the stream ends.
    Transfer-Encoding: chunked is decoded (the signature is then checked over the decoded bytes, as API
    Gateway hands them to the function); any other coding, or chunked together with Content-Length
    (a smuggling shape), is 400.
    """
    reader = _DeadlineReader(request, timeout_seconds)
    codings = [c.strip().lower() for v in request.headers.get_all("Transfer-Encoding") or [] for c in v.split(",")]
    lengths = {v.strip() for v in request.headers.get_all("Content-Length") or []}
    if codings and lengths:
        raise _BodyRefused(400, "ambiguous_length", "a request may carry Content-Length or Transfer-Encoding, not both")
    if codings:
        if codings != ["chunked"]:
            raise _BodyRefused(400, "unsupported_transfer_encoding", f"Transfer-Encoding {', '.join(codings)}")
        return reader.chunked(max_bytes)
    if not lengths:
        return b""
    value = lengths.pop()
    if lengths or not _DIGITS.fullmatch(value):
        raise _BodyRefused(400, "bad_content_length", "Content-Length must be one non-negative integer")
    if int(value) > max_bytes:
        raise _BodyRefused(413, "payload_too_large", f"body is {value} bytes; the limit is {max_bytes}")
    return reader.exactly(int(value))


class _DeadlineReader:
    """Reads a request body within one deadline, whatever pace the client sends at."""

    def __init__(self, request: BaseHTTPRequestHandler, timeout_seconds: float) -> None:
        self._rfile = request.rfile
        self._connection = request.connection
        self._timeout = timeout_seconds
        self._deadline = time.monotonic() + timeout_seconds

    def _arm(self) -> None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise self._late()
        self._connection.settimeout(remaining)

    def _late(self) -> _BodyRefused:
        return _BodyRefused(400, "incomplete_body", f"the body did not arrive within {self._timeout:g} s")

    def exactly(self, length: int) -> bytes:
        data = bytearray()
        try:
            while len(data) < length:
                self._arm()
                piece = self._rfile.read1(length - len(data))
                if not piece:
                    raise _BodyRefused(400, "incomplete_body", f"the body ended after {len(data)} of {length} bytes")
                data += piece
        except TimeoutError:
            raise self._late() from None
        return bytes(data)

    def _line(self) -> bytes:
        try:
            self._arm()
            line = self._rfile.readline(_MAX_CHUNK_LINE + 1)
        except TimeoutError:
            raise self._late() from None
        if not line.endswith(b"\n"):
            if len(line) > _MAX_CHUNK_LINE:
                raise _BodyRefused(400, "bad_chunked_body", "a chunk header line is too long")
            raise _BodyRefused(400, "incomplete_body", "the chunked body ended early")
        return line.rstrip(b"\r\n")

    def chunked(self, max_bytes: int) -> bytes:
        data = bytearray()
        while True:
            size_text = self._line().split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(size_text.decode("latin-1")):
                raise _BodyRefused(400, "bad_chunked_body", "a chunk size is not a hexadecimal number")
            size = int(size_text, 16)
            if size == 0:
                break
            if len(data) + size > max_bytes:
                raise _BodyRefused(413, "payload_too_large", f"the chunked body exceeds the limit of {max_bytes} bytes")
            data += self.exactly(size)
            if self._line():
                raise _BodyRefused(400, "bad_chunked_body", "a chunk is longer than its size")
        for _ in range(_MAX_TRAILER_LINES):
            if not self._line():
                return bytes(data)
        raise _BodyRefused(400, "bad_chunked_body", "too many trailer lines")


class StreamPoller:
    """Plays a DynamoDB stream event source mapping against moto's stream: reads each shard from its start,
    applies the mapping's filter (inserted `DOC#` items, as the template's filter says), invokes the function
    with a Lambda-shaped event and, on reported item failures, reads again from the first failed record."""

    def __init__(self, streams: Any, mapping: StreamSourceMapping, host: LocalFunctionHost) -> None:
        self._streams, self.mapping, self._host = streams, mapping, host
        self._iterators: dict[str, str] = {}
        self._lock = threading.Lock()  # its worker thread and `catch_up_streams` may poll at once
        self.caught_up = False

    def poll_once(self) -> bool:
        """One read per shard; True when some shard had records."""
        with self._lock:
            return self._poll_once()

    def _poll_once(self) -> bool:
        arn = self.mapping.stream_arn
        for shard in self._streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
            shard_id = shard["ShardId"]
            if shard_id not in self._iterators:
                self._iterators[shard_id] = self._streams.get_shard_iterator(
                    StreamArn=arn, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
                )["ShardIterator"]
        got = False
        for shard_id, iterator in list(self._iterators.items()):
            response = self._streams.get_records(ShardIterator=iterator, Limit=self.mapping.batch_size)
            self._iterators[shard_id] = response.get("NextShardIterator") or iterator
            records = [
                dict(record, eventSourceARN=arn)
                for record in response["Records"]
                if record["eventName"] == "INSERT" and record["dynamodb"]["Keys"]["pk"]["S"].startswith("DOC#")
            ]
            got = got or bool(response["Records"])
            if records:
                failures = (self._host.invoke({"Records": records}) or {}).get("batchItemFailures", [])
                if failures:
                    self._iterators[shard_id] = self._streams.get_shard_iterator(
                        StreamArn=arn,
                        ShardId=shard_id,
                        ShardIteratorType="AT_SEQUENCE_NUMBER",
                        SequenceNumber=failures[0]["itemIdentifier"],
                    )["ShardIterator"]
        self.caught_up = not got
        return got


@dataclass
class LocalRuntime:
    """Start with `start()`, send webhooks to `webhook_url`, `drain()`, then `stop()`.

    To read a final state nothing changes under: `stop_accepting()`, `drain()`, `stop_workers()`, read,
    then `stop()`. `time_scale` maps the template's durations onto the local clock: a failed record
    comes back after the posting queue's visibility timeout times `time_scale` (180 s -> 2 s).
    """

    webhook_secret: str = LOCAL_WEBHOOK_SECRET
    host: str = "127.0.0.1"
    port: int = 0
    work_dir: Path = REPO_ROOT / "build" / "local"
    time_scale: float = 0.01
    sweep_interval_seconds: float = 60.0
    log_level: str = "WARNING"
    stripe_fixtures: Path | None = None  # a directory the local Stripe API double serves (else no Stripe API)
    read_timeout_seconds: float = 5.0  # a request's line, headers and body must arrive within this
    max_body_bytes: int = MAX_WEBHOOK_BYTES  # a longer body is refused with 413 before it is read
    max_concurrency: int | None = None  # batches of one queue posted at once; None: as the template says
    webhook_concurrency: int | None = None  # webhooks handled at once; None: see `webhook_hosts`
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
        self._backend_up = True
        try:
            self._start_backend()
            self._http_thread = threading.Thread(target=self._http.serve_forever, name="http", daemon=True)
            self._http_thread.start()
            discovery = _ops_discovery()
            if discovery is not None:
                try:
                    path = discovery.write_discovery(self)
                    self._discovery_written = True
                    print(f"operator tools find this runtime through {path}", file=sys.stderr)
                except OSError as exc:
                    print(f"local runtime: cannot write the discovery file: {exc}", file=sys.stderr)
        except BaseException:
            self.stop(wait=False)
            raise
        return self

    def _start_backend(self) -> None:
        # moto answers in a process of its own; the state machines' Lambda tasks come back here through
        # the local Lambda service, whose port moto's process is told before anything is served.
        self._lambda_service = LocalLambdaService().bind()
        self._moto_process = MotoProcess(lambda_endpoint=self._lambda_service.endpoint_url).start()
        endpoint = self._moto_process.endpoint_url
        # moto keeps its state per process and the child is a fork of this one: start from an empty account.
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
        self.stack: LocalStack = provision(
            template, region=REGION, webhook_secrets=[self.webhook_secret], time_scale=self.time_scale
        )
        self._apply_function_environment()
        # Forked while this process runs no thread of its own and has installed no hook.
        self._start_process_hosts()
        self._start_webhook_hosts()
        self._point_at_stripe_api()
        self._session = boto3.session.Session(region_name=REGION)
        self._load_sample_rates()
        self.sqs = self._session.client("sqs")
        self.stepfunctions = self._session.client("stepfunctions")
        self._hosts = {logical_id: LocalFunctionHost(fn) for logical_id, fn in self.stack.functions.items()}
        self._visibility_changes = VisibilityChanges()
        self._visibility_changes.install()
        self._state_machine_tasks = StateMachineTasks(self._hosts)
        self._lambda_service.tasks = self._state_machine_tasks
        self._lambda_service.start()
        self._log_to_stderr()
        self._pollers = [
            QueuePoller(
                self.sqs,
                mapping,
                host,
                time_scale=self.time_scale,
                visibility_changes=self._visibility_changes if isinstance(host, LocalFunctionHost) else None,
            )
            for mapping in self.stack.event_source_mappings
            for host in self._mapping_hosts(mapping)
        ]
        self._threads = [
            threading.Thread(target=self._poll_forever, args=(poller,), name=f"esm-{i}", daemon=True)
            for i, poller in enumerate(self._pollers)
        ]
        # The ledger's stream plays its event source mapping too: the running balances stay current.
        streams = self._session.client("dynamodbstreams")
        self._stream_pollers = [
            StreamPoller(streams, mapping, self._hosts[mapping.function_logical_id])
            for mapping in self.stack.stream_source_mappings
        ]
        self._threads += [
            threading.Thread(target=self._poll_stream_forever, args=(poller,), name=f"stream-{i}", daemon=True)
            for i, poller in enumerate(self._stream_pollers)
        ]
        self._sweeper = self._hosts[self.stack.function_for("sweep_waiting_room").logical_id]
        self._ended_delivered: set[str] = set()
        self._ended_lock = threading.Lock()
        self._threads.append(threading.Thread(target=self._sweep_forever, name="sweeper", daemon=True))
        for thread in self._threads:
            thread.start()

    def _start_process_hosts(self) -> None:
        """Worker processes for each mapping whose function runs concurrently in the template (the mapping's
        MaximumConcurrency, else the function's reserved concurrency): one poller and one function host
        each, so batches post in parallel as in Lambda."""
        self._process_hosts: dict[str, list[ProcessFunctionHost]] = {}
        for mapping in self.stack.event_source_mappings:
            concurrency = self.concurrency(mapping)
            if concurrency > 1:
                function = self.stack.functions[mapping.function_logical_id]
                hosts = self._process_hosts.setdefault(mapping.queue_url, [])
                for _ in range(concurrency):
                    hosts.append(ProcessFunctionHost(function, log_level=self.log_level))

    def webhook_hosts(self, function: LocalFunction) -> int:
        """Worker processes of a function behind a POST route (a webhook: its senders post concurrently):
        `webhook_concurrency` when set, else twice the machine's cores, or its reserved concurrency when
        that is lower."""
        if self.webhook_concurrency is not None:
            return max(1, self.webhook_concurrency)
        cores = 2 * (os.cpu_count() or 1)
        return min(cores, function.reserved_concurrency) if function.reserved_concurrency else cores

    def _start_webhook_hosts(self) -> None:
        self._webhook_hosts: dict[str, FunctionHostPool] = {}
        posted_to = [route.function_logical_id for route in self.stack.api_routes if route.http_method == "POST"]
        for logical_id in dict.fromkeys(posted_to):
            function = self.stack.functions[logical_id]
            hosts: list[ProcessFunctionHost] = []
            try:
                for _ in range(self.webhook_hosts(function)):
                    hosts.append(ProcessFunctionHost(function, log_level=self.log_level))
            finally:
                if hosts:
                    self._webhook_hosts[logical_id] = FunctionHostPool(hosts)

    def _mapping_hosts(self, mapping: EventSourceMapping) -> list[FunctionHost]:
        return [*self._process_hosts.get(mapping.queue_url, [])] or [self._hosts[mapping.function_logical_id]]

    def concurrency(self, mapping: EventSourceMapping) -> int:
        """How many batches of this mapping run at once: `max_concurrency` when set, else the template's."""
        function = self.stack.functions[mapping.function_logical_id]
        limits = [n for n in (mapping.maximum_concurrency, function.reserved_concurrency) if n]
        template = min(limits) if limits else 1
        return max(1, self.max_concurrency if self.max_concurrency is not None else template)

    def processes(self) -> dict[str, Any]:
        """The runtime's processes: this one, moto's, and the worker processes of each concurrent function."""
        hosts = [*getattr(self, "_process_hosts", {}).values()]
        hosts += [pool.hosts for pool in getattr(self, "_webhook_hosts", {}).values()]
        moto = getattr(self, "_moto_process", None)
        return {
            "runtime_pid": os.getpid(),
            "moto_pid": moto.pid if moto is not None else None,
            "function_hosts": {group[0].function.logical_id: len(group) for group in hosts if group},
            "worker_pids": [host.pid for group in hosts for host in group],
            "worker_replacements": sum(host.replacements for group in hosts for host in group),
            "pollers": len(getattr(self, "_pollers", [])),
        }

    def _point_at_stripe_api(self) -> None:
        """The posting functions read the local Stripe double with a dummy key, or without fixtures no Stripe
        API at all (payouts then park as needing it): a local run never calls api.stripe.com."""
        if self.stripe_fixtures is None:
            os.environ.pop("STRIPE_API_KEY_SECRET_ARN", None)
            return
        from billing_sync_ops.stripe_double import StripeDouble

        self._stripe_double = StripeDouble(self.stripe_fixtures).start()
        os.environ["STRIPE_API_BASE"] = self._stripe_double.url
        print(f"Stripe API double on {self._stripe_double.url} serving {self.stripe_fixtures}", file=sys.stderr)

    def _load_sample_rates(self) -> None:
        """The demo's exchange rates (events/rates/), stored before any event can wait for one."""
        from billing_sync_ops.ops.rates import load_sample_rates

        table = str(self.stack.outputs["MasterDataTableName"])
        count = load_sample_rates(self._session.client("dynamodb"), table, SAMPLE_RATES_FILE)
        print(f"loaded {count} exchange rates from {SAMPLE_RATES_FILE.name}", file=sys.stderr)

    def _log_to_stderr(self) -> None:
        """Handlers' Powertools logs go to stderr at `log_level`; `stop()` puts the logger back."""
        from billing_sync.observability import logger

        handler = logger.registered_handler
        saved_stream = handler.setStream(_Stderr()) if isinstance(handler, logging.StreamHandler) else None
        self._saved_logger = (logger, handler, saved_stream, logger.log_level)
        logger.setLevel(self.log_level)

    def _restore_logger(self) -> None:
        saved = getattr(self, "_saved_logger", None)
        if saved is None:
            return
        logger, handler, stream, level = saved
        if stream is not None:
            handler.setStream(stream)
        logger.setLevel(level)
        del self._saved_logger

    def sweep(self) -> Any:
        """Plays the stack's schedule once: post again what waits, park what is past its horizon."""
        return self._sweeper.invoke({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}})

    def _sweep_forever(self) -> None:
        while not self._stopping.wait(self.sweep_interval_seconds):
            try:
                self.sweep()
            except Exception as exc:
                print(f"waiting-room sweep error: {exc!r}", file=sys.stderr)
            try:
                self.deliver_ended_executions()
            except Exception as exc:
                print(f"saga status change error: {exc!r}", file=sys.stderr)

    def deliver_ended_executions(self) -> list[dict[str, Any]]:
        """Plays the RefundSagaEnded rule, which moto's Step Functions has no events for: each refund saga
        execution that ended FAILED, TIMED_OUT or ABORTED reaches the saga's task function once (a failed
        delivery is tried again on the next sweep). Returns what the function answered for each."""
        with self._ended_lock:
            return self._deliver_ended_executions()

    def _deliver_ended_executions(self) -> list[dict[str, Any]]:
        host = self._hosts[self.stack.function_for("refund_saga").logical_id]
        answers = []
        for arn, execution_arn in self._ended_executions():
            execution = self.stepfunctions.describe_execution(executionArn=execution_arn)
            detail = {
                "executionArn": execution_arn,
                "stateMachineArn": arn,
                "name": execution["name"],
                "status": execution["status"],
                "input": execution.get("input"),
                "inputDetails": {"included": "input" in execution},
                "error": execution.get("error"),
                "cause": execution.get("cause"),
            }
            answers.append(
                host.invoke({"source": "aws.states", "detail-type": EXECUTION_STATUS_CHANGE, "detail": detail})
            )
            self._ended_delivered.add(execution_arn)
        return answers

    def _ended_executions(self) -> Iterator[tuple[str, str]]:
        """(state machine ARN, execution ARN) of each execution that ended unrecorded and is not delivered yet."""
        paginator = self.stepfunctions.get_paginator("list_executions")
        for arn in self.stack.state_machines.values():
            for status in UNRECORDED_END_STATUSES:
                for page in paginator.paginate(stateMachineArn=arn, statusFilter=status):
                    for listed in page["executions"]:
                        if listed["executionArn"] not in self._ended_delivered:
                            yield arn, listed["executionArn"]

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
        # The posting function's own retry delays and ERP cool-down run on the same scaled clock.
        for name, deployed_seconds in LOCAL_SCALED_DELAYS.items():
            os.environ.setdefault(name, str(max(1, math.ceil(deployed_seconds * self.time_scale))))
        # The refund saga's looks for its payment: short enough to watch locally.
        for name, local_value in LOCAL_SAGA_SETTINGS.items():
            os.environ[name] = self._saved_env.get(name, str(local_value))
        from billing_sync import composition

        composition.reset()

    def _poll_forever(self, poller: QueuePoller) -> None:
        while not self._stopping.is_set():
            try:
                poller.poll_once(wait_seconds=1)
            except Exception as exc:
                print(f"dispatcher error on {poller.mapping.queue_url}: {exc!r}", file=sys.stderr)
                time.sleep(0.5)

    def catch_up_streams(self, *, max_polls: int = 1000) -> bool:
        """Delivers what the stack's streams hold now, in this thread (after `stop_workers()` too: what was
        written since, like the recognition job's releases, reaches the running balances); False at the bound."""
        for poller in getattr(self, "_stream_pollers", []):
            for _ in range(max_polls):
                if not poller.poll_once():
                    break
            else:
                return False
        return True

    def _poll_stream_forever(self, poller: StreamPoller) -> None:
        while not self._stopping.is_set():
            try:
                if not poller.poll_once():
                    self._stopping.wait(0.2)
            except Exception as exc:
                print(f"stream dispatcher error on {poller.mapping.stream_arn}: {exc!r}", file=sys.stderr)
                time.sleep(0.5)

    # ---- HTTP ----

    def _bind_http(self) -> None:
        runtime = self

        class Handler(BaseHTTPRequestHandler):
            timeout = runtime.read_timeout_seconds  # request line and headers; the body has its own deadline

            def __getattr__(self, name: str) -> Any:
                # Every method reaches the router, which answers 405 (not http.server's HTML 501).
                if name.startswith("do_"):
                    return lambda: runtime._serve(self)
                raise AttributeError(name)

            def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
                # http.server's own refusals (bad request line, oversized headers) as JSON and never 5xx.
                status = HTTPStatus(code if code < 500 else HTTPStatus.BAD_REQUEST)
                self.close_connection = True
                runtime._reply(self, status, {"error": _error_code(status), "message": message or status.phrase})

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
        path = request.path.split("?")[0]
        try:
            route = self.stack.route(request.command, path)
        except KeyError:
            allowed = sorted({r.http_method for r in self.stack.api_routes if r.path_parameters(path) is not None})
            request.close_connection = True
            if allowed:
                message = f"{request.command} is not allowed on {path}; use {', '.join(allowed)}"
                self._reply(request, 405, {"error": "method_not_allowed", "message": message}, Allow=", ".join(allowed))
            else:
                self._reply(request, 404, {"error": "not_found", "message": f"no route {request.command} {path}"})
            return
        try:
            body = _read_body(request, max_bytes=self.max_body_bytes, timeout_seconds=self.read_timeout_seconds)
        except _BodyRefused as refusal:
            request.close_connection = True
            payload = {"error": refusal.code, "message": refusal.message}
            if route.http_method == "POST":
                self.refused.append({"status": refusal.status, **payload})
            self._reply(request, refusal.status, payload)
            return
        headers = {name: value for name, value in request.headers.items() if name.lower() != "transfer-encoding"}
        if "Transfer-Encoding" in request.headers:
            headers["Content-Length"] = str(len(body))  # as API Gateway hands a decoded body to the function
        # The lineage GETs are IAM-authorised in AWS; here they are served on loopback only, unsigned.
        event = api_gateway_event(
            method=request.command,
            path=path,
            resource=route.path,
            path_parameters=route.path_parameters(path),
            headers=headers,
            body=body,
            source_ip=request.client_address[0],
        )
        try:
            host = self._webhook_hosts.get(route.function_logical_id) or self._hosts[route.function_logical_id]
            response = host.invoke(event)
        except Exception as exc:
            self._reply(request, 502, {"error": "function_error", "message": repr(exc)})
            return
        status = int(response["statusCode"])
        payload = json.loads(response.get("body") or "{}")
        if status == 200 and payload.get("event_id"):
            self.accepted[payload["event_id"]] = payload.get("source_event_id", "")
        elif status >= 400 and route.http_method == "POST":  # refused webhooks; a lineage 404 is an answer
            self.refused.append({"status": status, **payload})
        self._reply(request, status, payload)

    @staticmethod
    def _reply(request: BaseHTTPRequestHandler, status: int, payload: dict[str, Any], **headers: str) -> None:
        data = json.dumps(payload).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            request.send_header(name, value)
        if request.close_connection:
            request.send_header("Connection", "close")
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(data)

    # ---- lifecycle ----

    def stop_accepting(self) -> None:
        self._http.shutdown()
        self._http.server_close()

    def drain(self, *, timeout_seconds: float = 60, settle_seconds: float = 1.5) -> bool:
        """Waits until every polled queue is empty and idle and no state machine execution is running;
        returns False when the bound was hit.

        Idle means no message visible, none in flight or waiting out a retry delay, no batch being
        processed and no execution RUNNING (a saga waiting for its payment is running), for
        `settle_seconds` (or, at the bound, at that moment). Events held in the waiting room are not in
        a queue: they wait by design and do not keep the queues busy.
        """
        deadline = time.monotonic() + timeout_seconds
        quiet_since: float | None = None
        while time.monotonic() < deadline:
            if self._idle():
                quiet_since = quiet_since or time.monotonic()
                if time.monotonic() - quiet_since >= settle_seconds:
                    return True
            else:
                quiet_since = None
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        return self._idle()

    def _idle(self) -> bool:
        return self._queues_idle() and not self.running_executions()

    def running_executions(self) -> list[str]:
        """ARNs of the stack's state machine executions that are RUNNING."""
        running: list[str] = []
        for arn in self.stack.state_machines.values():
            paginator = self.stepfunctions.get_paginator("list_executions")
            for page in paginator.paginate(stateMachineArn=arn, statusFilter="RUNNING"):
                running += [execution["executionArn"] for execution in page["executions"]]
        return running

    def _queues_idle(self) -> bool:
        if any(not poller.caught_up for poller in getattr(self, "_stream_pollers", [])):
            return False
        if any(poller.busy for poller in self._pollers):
            return False
        for queue_url in dict.fromkeys(poller.mapping.queue_url for poller in self._pollers):
            attributes = self.sqs.get_queue_attributes(
                QueueUrl=queue_url,
                AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
            )["Attributes"]
            if int(attributes["ApproximateNumberOfMessages"]) or int(
                attributes["ApproximateNumberOfMessagesNotVisible"]
            ):
                return False
        return True

    def stop_workers(self, *, wait: bool = True) -> None:
        """Stops accepting webhooks, polling queues and sweeping; the backend stays up to be read.

        With `wait`, waits for a batch in progress to finish (at most the functions' timeout).
        """
        if getattr(self, "_http_thread", None) is not None and self._http_thread.is_alive():
            self.stop_accepting()
        self._stopping.set()
        if not wait:
            return
        timeout = max((fn.timeout_seconds for fn in self.stack.functions.values()), default=30) + 5
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                print(f"local runtime: {thread.name} still busy after {timeout} s", file=sys.stderr)

    def stop(self, *, wait: bool = True) -> None:
        """`stop_workers()`, then `stop_backend()`; a no-op once stopped."""
        if not getattr(self, "_backend_up", False):
            return
        try:
            if getattr(self, "_http_thread", None) is None:
                self._http.server_close()  # bound, never served
            self.stop_workers(wait=wait and hasattr(self, "stack"))
        finally:
            self.stop_backend(wait=wait)

    def stop_backend(self, *, wait: bool = True) -> None:
        """Stops the function hosts' processes and moto's, and restores this process: everything the stack
        held in memory is gone. Without `wait`, a host busy with a batch is not waited for."""
        if not getattr(self, "_backend_up", False):
            return
        try:
            self._stopping.set()
            self._stop_backend(timeout_seconds=10 if wait else 0.5)
        finally:
            self._backend_up = False
            _ACTIVE.release()

    def _stop_backend(self, *, timeout_seconds: float) -> None:
        if getattr(self, "_discovery_written", False):
            _ops_discovery().remove_discovery()
            self._discovery_written = False
        if getattr(self, "_visibility_changes", None) is not None:
            self._visibility_changes.uninstall()
        self._restore_logger()
        if getattr(self, "_stripe_double", None) is not None:
            self._stripe_double.stop()
            del self._stripe_double
        moto: MotoProcess | None = getattr(self, "_moto_process", None)
        if moto is not None:
            self._stop_executions()
        for hosts in getattr(self, "_process_hosts", {}).values():
            for host in hosts:
                host.stop(timeout_seconds)
        self._process_hosts = {}
        for pool in getattr(self, "_webhook_hosts", {}).values():
            pool.stop(timeout_seconds)
        self._webhook_hosts = {}
        if getattr(self, "_lambda_service", None) is not None:
            self._lambda_service.stop()
        if moto is not None:
            moto.stop(timeout_seconds)
            del self._moto_process
        os.environ.clear()
        os.environ.update(self._saved_env)
        from billing_sync import composition

        composition.reset()

    def _stop_executions(self) -> None:
        """Stops executions still running (a saga waiting for its payment), so none outlives the backend."""
        if getattr(self, "stack", None) is None or getattr(self, "stepfunctions", None) is None:
            return
        try:
            for arn in self.running_executions():
                self.stepfunctions.stop_execution(executionArn=arn, cause="local runtime stopped")
        except Exception as exc:
            print(f"local runtime: cannot stop running executions: {exc!r}", file=sys.stderr)

    def __enter__(self) -> LocalRuntime:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
