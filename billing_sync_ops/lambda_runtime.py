"""Plays the Lambda service locally: in-process invocations, API Gateway proxy events, SQS batches."""

from __future__ import annotations

import base64
import importlib
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from billing_sync_ops.local_stack import EventSourceMapping, LocalFunction

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

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:us-east-1:{LOCAL_ACCOUNT}:function:{self.function_name}"

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
            context = LocalLambdaContext(self.function.logical_id, self.function.timeout_seconds)
            return self._handler(dict(event), context)


def api_gateway_event(*, method: str, path: str, headers: Mapping[str, str], body: bytes, source_ip: str) -> dict:
    """An API Gateway REST (v1) Lambda proxy event, as the deployed API sends it."""
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode(), True
    return {
        "resource": path,
        "path": path,
        "httpMethod": method,
        "headers": dict(headers),
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": None,
        "multiValueQueryStringParameters": None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": path,
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


def scaled_seconds(seconds: float, time_scale: float) -> int:
    """A template duration on the local clock, in whole seconds (SQS takes no fractions), at least 1."""
    return max(1, math.ceil(seconds * time_scale - 1e-9))


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
