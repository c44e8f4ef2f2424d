"""Plays the Lambda service locally: in-process invocations, API Gateway proxy events, SQS batches."""

from __future__ import annotations

import base64
import importlib
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


class LocalFunctionHost:
    """Invokes one function's handler in-process, one invocation at a time, as one warm container does."""

    def __init__(self, function: LocalFunction) -> None:
        self.function = function
        module_name, _, attribute = function.handler.rpartition(".")
        self._handler: Callable[[dict, Any], Any] = getattr(importlib.import_module(module_name), attribute)
        self._lock = threading.Lock()

    def invoke(self, event: Mapping[str, Any]) -> Any:
        with self._lock:
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


class QueuePoller:
    """One SQS event source mapping: batches, partial batch responses, failed records retried later.

    Failed records become visible again after `retry_delay_seconds` instead of the full visibility
    timeout, so local runs see retries in seconds; the queue's redrive policy still moves a record
    to its dead-letter queue after maxReceiveCount receives, as in AWS.
    """

    def __init__(self, sqs: Any, mapping: EventSourceMapping, host: LocalFunctionHost, retry_delay_seconds: int):
        self._sqs = sqs
        self.mapping = mapping
        self._host = host
        self._retry_delay = retry_delay_seconds
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
                if message["MessageId"] in failed:
                    self._sqs.change_message_visibility(
                        QueueUrl=self.mapping.queue_url,
                        ReceiptHandle=message["ReceiptHandle"],
                        VisibilityTimeout=self._retry_delay,
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
