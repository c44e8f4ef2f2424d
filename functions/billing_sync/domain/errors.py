"""Typed errors of the domain, one class per exception category.

Hierarchy::

    BillingSyncError                      base; carries `category` (ExceptionCategory)
    ├── SignatureError                    SIGNATURE: never stored
    │   ├── MissingSignatureError         no Stripe-Signature header (HTTP 400)
    │   └── InvalidSignatureError         no v1 value matches, or timestamp outside tolerance (401)
    ├── MalformedEventError               MALFORMED: signed, but cannot be normalised
    ├── RequestRejectedError              refused before anything is stored
    │   ├── PayloadTooLargeError          body over the webhook limit (HTTP 413)
    │   └── InvalidJsonError              body is not JSON (HTTP 400)
    ├── NothingToPostError                UNSUPPORTED: a zero-value document; recorded as IGNORED
    ├── PermanentPostingError             needs a person; goes to the exception queue
    │   ├── EventValidationError          VALIDATION: totals, currency, customer, entity
    │   │   └── DocumentConflictError     a second version of a posted document with other amounts
    │   ├── MappingError                  MAPPING: no account rule for the event
    │   ├── ErpRejectedError              ERP_REJECTED: ERP refused on a business rule
    │   └── PeriodClosedError             PERIOD_CLOSED
    └── RetryablePostingError             retried with delay by the queue
        ├── DependencyPendingError        DEPENDENCY_PENDING: waits by name (`key`) for what it needs
        ├── ErpTransientError             ERP_TRANSIENT: 5xx, 429, timeouts
        └── ClaimInFlightError            another worker holds a live claim on the event

`ErpError` is a mixin carrying status, ERP code, request id and `retryable`, shared by the two ERP
errors. `PublishError` (INTERNAL) means an event or record could not be made durable (archive, bus or
exception queue); ingest answers 5xx so the source retries, posting returns the record to its queue.
Callers branch on classes and `category`, never on message text.
"""

from __future__ import annotations

from enum import StrEnum


class ExceptionCategory(StrEnum):
    SIGNATURE = "SIGNATURE"
    MALFORMED = "MALFORMED"
    UNSUPPORTED = "UNSUPPORTED"
    VALIDATION = "VALIDATION"
    MAPPING = "MAPPING"
    DEPENDENCY_PENDING = "DEPENDENCY_PENDING"
    ERP_TRANSIENT = "ERP_TRANSIENT"
    ERP_REJECTED = "ERP_REJECTED"
    PERIOD_CLOSED = "PERIOD_CLOSED"
    INTERNAL = "INTERNAL"


class BillingSyncError(Exception):
    category: ExceptionCategory = ExceptionCategory.INTERNAL

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SignatureError(BillingSyncError):
    category = ExceptionCategory.SIGNATURE


class MissingSignatureError(SignatureError):
    pass


class InvalidSignatureError(SignatureError):
    pass


class MalformedEventError(BillingSyncError):
    category = ExceptionCategory.MALFORMED


class RequestRejectedError(BillingSyncError):
    category = ExceptionCategory.MALFORMED


class PayloadTooLargeError(RequestRejectedError):
    pass


class InvalidJsonError(RequestRejectedError):
    pass


class PublishError(BillingSyncError):
    category = ExceptionCategory.INTERNAL


class NothingToPostError(BillingSyncError):
    category = ExceptionCategory.UNSUPPORTED


class PermanentPostingError(BillingSyncError):
    pass


class EventValidationError(PermanentPostingError):
    category = ExceptionCategory.VALIDATION


class DocumentConflictError(EventValidationError):
    pass


class MappingError(PermanentPostingError):
    """`key` names the mapping entry that is missing (role and context), for the operator to add."""

    category = ExceptionCategory.MAPPING

    def __init__(self, reason: str, *, key: str | None = None) -> None:
        super().__init__(reason)
        self.key = key


class PeriodClosedError(PermanentPostingError):
    category = ExceptionCategory.PERIOD_CLOSED


class RetryablePostingError(BillingSyncError):
    pass


class DependencyPendingError(RetryablePostingError):
    """`key` names what the event waits for (`customer:stripe:cus_…`, `document:stripe-invoice-in_…`)."""

    category = ExceptionCategory.DEPENDENCY_PENDING

    def __init__(self, reason: str, *, key: str | None = None) -> None:
        super().__init__(reason)
        self.key = key


class ClaimInFlightError(RetryablePostingError):
    category = ExceptionCategory.INTERNAL


class ErpError:
    """What every ERP failure carries, so operators can quote it to the ERP's support."""

    def __init__(
        self,
        reason: str,
        *,
        status: int | None = None,
        erp_code: str | None = None,
        request_id: str | None = None,
    ) -> None:
        BillingSyncError.__init__(self, reason)  # type: ignore[arg-type]
        self.status = status
        self.erp_code = erp_code
        self.request_id = request_id

    retryable: bool = False

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(reason={self.reason!r}, status={self.status!r}, "  # type: ignore[attr-defined]
            f"erp_code={self.erp_code!r}, request_id={self.request_id!r}, retryable={self.retryable!r})"
        )


class ErpTransientError(ErpError, RetryablePostingError):
    category = ExceptionCategory.ERP_TRANSIENT
    retryable = True


class ErpRejectedError(ErpError, PermanentPostingError):
    category = ExceptionCategory.ERP_REJECTED
    retryable = False
