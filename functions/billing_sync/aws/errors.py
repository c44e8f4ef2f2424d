"""Classifies botocore failures, so adapters can translate them into domain errors."""

from __future__ import annotations

from typing import Any, cast

from botocore.exceptions import BotoCoreError, ClientError

from billing_sync.domain.errors import BillingSyncError, RetryablePostingError

_THROTTLING_CODES = frozenset(
    {
        "ThrottlingException",
        "Throttling",
        "ProvisionedThroughputExceededException",
        "RequestLimitExceeded",
        "TransactionConflictException",
        "InternalServerError",
        "ServiceUnavailable",
    }
)


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def is_transient(exc: BotoCoreError | ClientError) -> bool:
    """Timeouts, connection failures, throttling and 5xx are worth retrying; the rest are not."""
    if isinstance(exc, BotoCoreError):
        return True
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return status >= 500 or status == 429 or error_code(exc) in _THROTTLING_CODES


def request_id(exc: ClientError) -> str | None:
    return exc.response.get("ResponseMetadata", {}).get("RequestId")


def item_on_condition_failure(exc: ClientError) -> dict[str, Any]:
    """The item DynamoDB returned with ReturnValuesOnConditionCheckFailure=ALL_OLD (empty when absent)."""
    response = cast(dict[str, Any], exc.response)
    return dict(response.get("Item") or {})


def store_error(exc: BotoCoreError | ClientError, store: str, action: str) -> BillingSyncError:
    """What a state store raises for an unexpected SDK failure, classified as the ledger classifies its own.

    A RetryablePostingError when `is_transient`, otherwise a BillingSyncError (INTERNAL).
    """
    error_class = RetryablePostingError if is_transient(exc) else BillingSyncError
    return error_class(f"{store} could not {action}: {exc}")
