"""AWS clients shared by the composition roots, created on first use."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Any


def utc_now() -> datetime:
    return datetime.now(UTC)


@cache
def aws_client(service: str) -> Any:
    import boto3  # the first invocation pays for boto3, not the import of every handler

    return boto3.client(service)  # type: ignore[call-overload]


def exception_queue(queue_url: str, table_name: str | None) -> Any:
    """The exception queue, indexed in the exception store when the stack has one."""
    from billing_sync.aws.exception_queue import SqsExceptionQueue
    from billing_sync.aws.exception_store import DynamoExceptionStore

    store = DynamoExceptionStore(aws_client("dynamodb"), table_name) if table_name else None
    return SqsExceptionQueue(aws_client("sqs"), queue_url, store)
