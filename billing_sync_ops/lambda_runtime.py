"""Plays the Lambda service locally: invocations in this process or in worker processes, API Gateway proxy
events, SQS batches, and a Lambda Invoke endpoint for the tasks of moto's Step Functions interpreter."""

from __future__ import annotations

import base64
import contextlib
import importlib
import io
import json
import multiprocessing
import os
import queue
import sys
import threading
import time
import traceback
import urllib.parse
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from multiprocessing.connection import Connection
from typing import Any, Protocol

from billing_sync_ops.local_stack import EventSourceMapping, LocalFunction, scaled_seconds
from billing_sync_ops.moto_process import ignore_stop_signals, stop_child

__all__ = [
    "FunctionHost",
    "FunctionHostPool",
    "FunctionProcessError",
    "LocalFunctionHost",
    "LocalLambdaContext",
    "LocalLambdaService",
    "ProcessFunctionHost",
    "QueuePoller",
    "StateMachineTasks",
    "VisibilityChanges",
    "api_gateway_event",
    "scaled_seconds",
    "sqs_event",
]

LOCAL_ACCOUNT = "123456789012"


@dataclass
class LocalLambdaContext:
    """The attributes Powertools reads from a Lambda context."""

    function_name: str
    timeout_seconds: int
    memory_limit_in_mb: int = 512
    function_version: str = "$LATEST"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)
    function_arn: str = ""

    @property
    def invoked_function_arn(self) -> str:
        return self.function_arn or f"arn:aws:lambda:us-east-1:{LOCAL_ACCOUNT}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self.started)) * 1000))


# The functions hosted in one process share its environment and the one Powertools logger, whose keys
# (function_name, request id, cold start) each invocation sets. Two invocations running at once would log
# under each other's name, so in-process invocations take turns across all functions, as if each had its
# own container; a function that must run in parallel gets worker processes (ProcessFunctionHost).
_INVOCATION = threading.Lock()


class FunctionHost(Protocol):
    """What pollers and the Lambda service invoke: a function's handler, in this process or a worker."""

    @property
    def function(self) -> LocalFunction: ...

    def invoke(self, event: Mapping[str, Any]) -> Any: ...


class LocalFunctionHost:
    """Invokes one function's handler in this process; one invocation at a time across all such hosts."""

    def __init__(self, function: LocalFunction) -> None:
        self.function = function
        module_name, _, attribute = function.handler.rpartition(".")
        self._handler: Callable[[dict, Any], Any] = getattr(importlib.import_module(module_name), attribute)

    def invoke(self, event: Mapping[str, Any]) -> Any:
        with _INVOCATION:
            context = LocalLambdaContext(
                self.function.logical_id, self.function.timeout_seconds, function_arn=self.function.arn
            )
            return self._handler(dict(event), context)


class FunctionProcessError(Exception):
    """The handler raised in its worker process (the message names the exception), or the worker is gone."""


_PARENT_CHECK_SECONDS = 1.0


class ProcessFunctionHost:
    """Invokes one function's handler in a worker process of its own, one invocation at a time, as a Lambda
    execution environment does; several hosts of one function run in parallel on several cores.

    The worker is forked from this process once the handler is imported, so it starts warm. Each invocation
    carries this process's environment when it changed since the last one (a changed `MAPPING_FILE` or wait
    horizon reaches the worker, which then rebuilds its composition), and brings back the receipt handles
    whose visibility the handler changed itself (`visibility_changes`). Its logs go to this process's stderr.
    The worker ignores SIGINT and SIGTERM (after a Ctrl-C `local serve` still drains through it) and exits
    on `stop()`, when this process closes the pipe, or when this process is gone. A worker that dies is
    replaced by a fresh one, as Lambda replaces a crashed execution environment: the invocation it was
    running fails, the next one runs in the new worker (`replacements` counts them).
    """

    def __init__(self, function: LocalFunction, *, log_level: str = "WARNING") -> None:
        self.function = function
        self.visibility_changes = VisibilityChanges()
        self.replacements = 0
        self._log_level = log_level
        LocalFunctionHost(function)  # imported here once, so the forked worker starts with it
        self._process: Any = None
        self._sent_environment: dict[str, str] | None = None
        self._start_worker()
        self._lock = threading.Lock()

    def _start_worker(self) -> None:
        context = multiprocessing.get_context("fork")
        self._connection, child_end = context.Pipe()
        self._process = context.Process(
            target=_host_worker,
            args=(child_end, self.function, self._log_level),
            name=f"billing-sync-{self.function.logical_id}",
            daemon=True,
        )
        self._process.start()
        child_end.close()
        self._sent_environment = None  # a fresh worker has not seen this process's environment

    def _replace_worker(self) -> None:
        self._connection.close()
        stop_child(self._process, 1)
        self.replacements += 1
        self._start_worker()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def invoke(self, event: Mapping[str, Any]) -> Any:
        """The handler's result; raises FunctionProcessError when it raised or the worker is gone."""
        with self._lock:
            if self._process is None:
                raise FunctionProcessError(f"{self.function.logical_id}: the worker process is stopped")
            if not self._process.is_alive():  # it died between invocations: nothing was running in it
                self._replace_worker()
            environment = dict(os.environ)
            try:
                self._connection.send((dict(event), None if environment == self._sent_environment else environment))
                self._sent_environment = environment
                status, result, changed = self._connection.recv()
            except (EOFError, OSError) as exc:
                self._replace_worker()
                raise FunctionProcessError(f"{self.function.logical_id}: the worker process is gone: {exc!r}") from None
        self.visibility_changes.add(changed)
        if status != "ok":
            raise FunctionProcessError(result)
        return result

    def stop(self, timeout_seconds: float = 10) -> None:
        """Lets an invocation in progress finish (at most `timeout_seconds`), then ends the worker."""
        if self._process is None:
            return
        # A worker that does not finish in time is killed, which also ends a wait for its answer.
        if self._lock.acquire(timeout=timeout_seconds):
            with contextlib.suppress(OSError):
                self._connection.send(None)
            self._lock.release()
        self._connection.close()
        stop_child(self._process, timeout_seconds)
        self._process = None


class FunctionHostPool:
    """Several worker processes of one function; an invocation takes whichever is free and waits when all
    are busy, as a request behind API Gateway gets a free execution environment."""

    def __init__(self, hosts: list[ProcessFunctionHost]) -> None:
        if not hosts:
            raise ValueError("a pool needs at least one host")
        self.hosts = hosts
        self._free: queue.SimpleQueue[ProcessFunctionHost] = queue.SimpleQueue()
        for host in hosts:
            self._free.put(host)

    @property
    def function(self) -> LocalFunction:
        return self.hosts[0].function

    def invoke(self, event: Mapping[str, Any]) -> Any:
        host = self._free.get()
        try:
            return host.invoke(event)
        finally:
            self._free.put(host)

    def stop(self, timeout_seconds: float = 10) -> None:
        for host in self.hosts:
            host.stop(timeout_seconds)


def _host_worker(connection: Connection, function: LocalFunction, log_level: str) -> None:
    ignore_stop_signals()
    global _INVOCATION
    _INVOCATION = threading.Lock()  # a fresh lock: another thread may have held the parent's at the fork
    parent = os.getppid()
    host = LocalFunctionHost(function)
    changes = VisibilityChanges()
    changes.install()
    from billing_sync import composition
    from billing_sync.observability import logger

    handler = logger.registered_handler
    if hasattr(handler, "setStream"):
        handler.setStream(sys.stderr)
    logger.setLevel(log_level)
    while True:
        if not connection.poll(_PARENT_CHECK_SECONDS):
            if os.getppid() != parent:
                return
            continue
        try:
            message = connection.recv()
        except EOFError:
            return
        if message is None:
            return
        event, environment = message
        if environment is not None:
            os.environ.clear()
            os.environ.update(environment)
            composition.reset()
        handles = [record.get("receiptHandle") for record in event.get("Records", []) if isinstance(record, dict)]
        try:
            reply: tuple[str, Any] = ("ok", host.invoke(event))
        except Exception as exc:
            reply = ("error", f"{function.logical_id} raised {type(exc).__name__}: {exc}")
        connection.send((*reply, sorted(changes.take([h for h in handles if h]))))


def api_gateway_event(
    *,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes,
    source_ip: str,
    resource: str | None = None,
    path_parameters: Mapping[str, str] | None = None,
) -> dict:
    """An API Gateway REST (v1) Lambda proxy event, as the deployed API sends it (`resource` is the route's
    resource path, `/events/{event_id}/lineage`, when it has path parameters)."""
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    return {
        "resource": resource or path,
        "path": path,
        "httpMethod": method,
        "headers": dict(headers),
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": dict(path_parameters) if path_parameters else None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": resource or path,
            "httpMethod": method,
            "path": f"/local{path}",
            "stage": "local",
            "requestId": str(uuid.uuid4()),
            "requestTimeEpoch": int(time.time() * 1000),
            "identity": {"sourceIp": source_ip, "userAgent": headers.get("User-Agent")},
            "accountId": LOCAL_ACCOUNT,
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict:
    """An SQS event source mapping batch built from ReceiveMessage results."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": {
                    name: {
                        "stringValue": value.get("StringValue"),
                        "dataType": value.get("DataType"),
                        "stringListValues": [],
                        "binaryListValues": [],
                    }
                    for name, value in message.get("MessageAttributes", {}).items()
                },
                "md5OfBody": message.get("MD5OfBody"),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": "us-east-1",
            }
            for message in messages
        ]
    }


class VisibilityChanges:
    """Receipt handles whose visibility a handler changed itself (ChangeMessageVisibility[Batch]).

    Handlers create their clients from boto3's default session (`composition.aws.aws_client`);
    `install()` hooks that session, so it must run before the handlers build their clients. The local
    runtime's own clients come from another session and are not seen.
    """

    _OPERATIONS = ("ChangeMessageVisibility", "ChangeMessageVisibilityBatch")

    def __init__(self) -> None:
        self._handles: set[str] = set()
        self._lock = threading.Lock()
        self._unique_id = f"billing-sync-local-visibility-{id(self)}"
        self._session: Any = None

    def install(self) -> None:
        import boto3

        if boto3.DEFAULT_SESSION is None:
            boto3.setup_default_session()
        self._session = boto3.DEFAULT_SESSION
        for operation in self._OPERATIONS:
            self._session.events.register(
                f"before-parameter-build.sqs.{operation}", self._record, unique_id=f"{self._unique_id}-{operation}"
            )

    def uninstall(self) -> None:
        if self._session is None:
            return
        for operation in self._OPERATIONS:
            self._session.events.unregister(
                f"before-parameter-build.sqs.{operation}", unique_id=f"{self._unique_id}-{operation}"
            )
        self._session = None

    def _record(self, params: Mapping[str, Any], **_: Any) -> None:
        handles = [params.get("ReceiptHandle")] + [entry.get("ReceiptHandle") for entry in params.get("Entries", [])]
        with self._lock:
            self._handles.update(handle for handle in handles if handle)

    def add(self, receipt_handles: list[str]) -> None:
        """Records handles whose change was seen elsewhere (a handler in a worker process)."""
        with self._lock:
            self._handles.update(receipt_handles)

    def take(self, receipt_handles: list[str]) -> set[str]:
        """Which of these handles were changed; forgets all of them."""
        with self._lock:
            changed = self._handles.intersection(receipt_handles)
            self._handles.difference_update(receipt_handles)
        return changed


class QueuePoller:
    """One SQS event source mapping: batches, partial batch responses, failed records retried later.

    As in AWS, a record reported failed comes back when its visibility timeout ends, on the local clock:
    the queue's VisibilityTimeout (from the template) times `time_scale`, in whole seconds (180 s at
    0.01 is 2 s). A record whose visibility the handler changed itself (a growing retry delay) keeps
    that change. The queue's redrive policy still moves a record to its dead-letter queue after
    maxReceiveCount receives.
    """

    def __init__(
        self,
        sqs: Any,
        mapping: EventSourceMapping,
        host: FunctionHost,
        *,
        time_scale: float,
        visibility_changes: VisibilityChanges | None = None,
    ):
        self._sqs = sqs
        self.mapping = mapping
        self._host = host
        visibility_timeout = int(
            sqs.get_queue_attributes(QueueUrl=mapping.queue_url, AttributeNames=["VisibilityTimeout"])["Attributes"][
                "VisibilityTimeout"
            ]
        )
        self.retry_delay_seconds = scaled_seconds(visibility_timeout, time_scale)
        self._visibility_changes = visibility_changes or getattr(host, "visibility_changes", None)
        self.busy = False

    def poll_once(self, wait_seconds: int = 1) -> int:
        """Receives and processes one batch; returns how many records it held."""
        response = self._sqs.receive_message(
            QueueUrl=self.mapping.queue_url,
            MaxNumberOfMessages=min(self.mapping.batch_size, 10),
            WaitTimeSeconds=wait_seconds,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages", [])
        if not messages:
            return 0
        self.busy = True
        try:
            failed = self._invoke(messages)
            changed = (
                self._visibility_changes.take([m["ReceiptHandle"] for m in messages])
                if self._visibility_changes
                else set()
            )
            done = [m for m in messages if m["MessageId"] not in failed]
            for start in range(0, len(done), 10):
                self._sqs.delete_message_batch(
                    QueueUrl=self.mapping.queue_url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(done[start : start + 10])
                    ],
                )
            for message in messages:
                if message["MessageId"] in failed and message["ReceiptHandle"] not in changed:
                    self._sqs.change_message_visibility(
                        QueueUrl=self.mapping.queue_url,
                        ReceiptHandle=message["ReceiptHandle"],
                        VisibilityTimeout=self.retry_delay_seconds,
                    )
        finally:
            self.busy = False
        return len(messages)

    def _invoke(self, messages: list[dict[str, Any]]) -> set[str]:
        try:
            response = self._host.invoke(sqs_event(messages, self.mapping.queue_arn))
        except Exception:
            return {m["MessageId"] for m in messages}
        if not self.mapping.report_batch_item_failures:
            return set()
        return {failure["itemIdentifier"] for failure in (response or {}).get("batchItemFailures", [])}


class StateMachineTasks:
    """Runs the Lambda tasks of moto's Step Functions interpreter on the real handlers.

    moto's interpreter (in moto's process, see billing_sync_ops.moto_process) sends a task's invoke of a
    stack function to `LocalLambdaService`, which calls `invoke` here. It answers as Lambda does:
    StatusCode 200 and the JSON result as the Payload stream, or, when the handler raised, FunctionError
    "Unhandled" and {errorType: the exception's class name, errorMessage} as the payload, so the state
    machine's Retry and Catch match the real error names.
    """

    def __init__(self, hosts: Mapping[str, FunctionHost]) -> None:
        self._hosts: dict[str, FunctionHost] = {}
        for host in hosts.values():
            for key in (host.function.arn, host.function.name, host.function.logical_id):
                if key:
                    self._hosts[key] = host
        self.invocations: list[tuple[str, str | None]] = []  # (function logical id, error type or None)

    @property
    def function_names(self) -> frozenset[str]:
        """Every name and ARN a task may use for a stack function (without a qualifier)."""
        return frozenset(self._hosts)

    def host_for(self, function_name: str) -> FunctionHost | None:
        """The host a Lambda `FunctionName` (ARN, qualified ARN, partial ARN or name) names, or None."""
        if function_name in self._hosts:
            return self._hosts[function_name]
        if function_name.startswith("arn:"):
            parts = function_name.split(":")
            if len(parts) == 8:  # a qualifier (version or alias) after the name
                return self._hosts.get(":".join(parts[:7]))
        return None

    def invoke(self, function_name: str, payload: Any) -> dict[str, Any] | None:
        """Lambda's Invoke response for a known function (Payload as a stream), or None when unknown."""
        host = self.host_for(function_name)
        if host is None:
            return None
        event = _decoded_payload(payload)
        response: dict[str, Any] = {"StatusCode": 200, "ExecutedVersion": "$LATEST"}
        try:
            result = host.invoke(event)
        except Exception as exc:
            self.invocations.append((host.function.logical_id, type(exc).__name__))
            body: Any = {
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_tb(exc.__traceback__),
            }
            response["FunctionError"] = "Unhandled"
        else:
            self.invocations.append((host.function.logical_id, None))
            body = result
        response["Payload"] = io.BytesIO(json.dumps(body, default=str).encode("utf-8"))
        return response


class LocalLambdaService:
    """The Lambda Invoke API (`POST /2015-03-31/functions/<name>/invocations`) on 127.0.0.1 and a free port,
    answered by `StateMachineTasks`; an unknown function is 404 ResourceNotFoundException. `bind()` takes the
    port (so moto's process can be told it before anything is served), `start()` serves, `stop()` closes."""

    _PREFIX = "/2015-03-31/functions/"

    def __init__(self, tasks: StateMachineTasks | None = None) -> None:
        self.tasks = tasks
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint_url(self) -> str:
        assert self._server is not None, "bind() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def bind(self) -> LocalLambdaService:
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                service._answer(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        return self

    def start(self) -> LocalLambdaService:
        assert self._server is not None, "bind() first"
        self._thread = threading.Thread(target=self._server.serve_forever, name="lambda-service", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()
        self._server = self._thread = None

    def _answer(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        path = request.path.split("?")[0]
        name = ""
        if path.startswith(self._PREFIX) and path.endswith("/invocations"):
            name = urllib.parse.unquote(path[len(self._PREFIX) : -len("/invocations")])
        response = self.tasks.invoke(name, body) if self.tasks is not None and name else None
        headers: dict[str, str] = {"Content-Type": "application/json"}
        if response is None:
            status = 404
            headers["x-amzn-ErrorType"] = "ResourceNotFoundException"
            data = json.dumps({"Type": "User", "message": f"Function not found: {name or path}"}).encode()
        else:
            status = int(response["StatusCode"])
            headers["X-Amz-Executed-Version"] = response["ExecutedVersion"]
            if "FunctionError" in response:
                headers["X-Amz-Function-Error"] = response["FunctionError"]
            data = response["Payload"].read()
        request.send_response(status)
        for header, value in {**headers, "Content-Length": str(len(data))}.items():
            request.send_header(header, value)
        request.end_headers()
        request.wfile.write(data)


def _decoded_payload(payload: Any) -> Any:
    if payload is None:
        return {}
    if hasattr(payload, "read"):
        payload = payload.read()
    if isinstance(payload, bytes | bytearray):
        payload = payload.decode("utf-8")
    if isinstance(payload, str):
        return json.loads(payload) if payload.strip() else {}
    return payload
