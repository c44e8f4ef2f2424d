"""Plays the Lambda service locally: in-process invocations, API Gateway proxy events, SQS batches, and
the Lambda tasks of moto's Step Functions interpreter."""

from __future__ import annotations

import base64
import importlib
import io
import json
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from billing_sync_ops.local_stack import EventSourceMapping, LocalFunction, scaled_seconds

__all__ = [
    "LocalFunctionHost",
    "LocalLambdaContext",
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


# Every function runs in this one process and shares its environment and the one Powertools logger,
# whose keys (function_name, request id, cold start) each invocation sets. Two invocations running at
# once would log under each other's name, so invocations take turns across all functions, as if each
# had its own container.
_INVOCATION = threading.Lock()


class LocalFunctionHost:
    """Invokes one function's handler in-process; one invocation at a time across all hosts."""

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
        host: LocalFunctionHost,
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
        self._visibility_changes = visibility_changes
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
    """Runs the Lambda tasks of moto's Step Functions interpreter in-process, on the real handlers.

    moto's interpreter invokes a task's function through a boto3 Lambda client it makes itself
    (`lambda_eval_utils.boto_client_for`), and moto's Lambda backend would answer every invoke with
    success. `install()` replaces that factory, for the Lambda client only, with one whose `invoke` of a
    known function (by ARN, ARN with a qualifier, or name) calls `LocalFunctionHost.invoke` and answers
    as Lambda does: StatusCode 200 and the JSON result as the Payload stream, or, when the handler
    raised, FunctionError "Unhandled" and {errorType: the exception's class name, errorMessage} as the
    payload, so the state machine's Retry and Catch match the real error names. Any other function goes
    to the endpoint at `endpoint_url`. `uninstall()` puts moto's factory back.
    """

    def __init__(self, hosts: Mapping[str, LocalFunctionHost], *, endpoint_url: str | None = None) -> None:
        self._hosts: dict[str, LocalFunctionHost] = {}
        for host in hosts.values():
            for key in (host.function.arn, host.function.name, host.function.logical_id):
                if key:
                    self._hosts[key] = host
        self._endpoint_url = endpoint_url
        self._module: Any = None
        self._original: Any = None
        self.invocations: list[tuple[str, str | None]] = []  # (function logical id, error type or None)

    def host_for(self, function_name: str) -> LocalFunctionHost | None:
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

    def install(self) -> None:
        from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

        if self._module is not None:
            return
        self._module = lambda_eval_utils
        self._original = lambda_eval_utils.boto_client_for
        tasks = self

        def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
            if service != "lambda":
                return tasks._original(region=region, service=service, state_credentials=state_credentials)
            return _LocalLambdaClient(tasks, region)

        lambda_eval_utils.boto_client_for = boto_client_for

    def uninstall(self) -> None:
        if self._module is None:
            return
        self._module.boto_client_for = self._original
        self._module = self._original = None

    def _endpoint_client(self, region: str) -> Any:
        import boto3

        return boto3.session.Session().client("lambda", region_name=region, endpoint_url=self._endpoint_url)


class _LocalLambdaClient:
    """The Lambda client the interpreter gets: known functions in-process, others at the endpoint."""

    def __init__(self, tasks: StateMachineTasks, region: str) -> None:
        self._tasks = tasks
        self._region = region

    def invoke(self, **parameters: Any) -> dict[str, Any]:
        response = self._tasks.invoke(str(parameters.get("FunctionName", "")), parameters.get("Payload"))
        if response is not None:
            return response
        return self._tasks._endpoint_client(self._region).invoke(**parameters)


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
