"""When a posting that failed for a transient reason comes back, and when it stops coming back.

A failed record returns to the posting queue after `RetryPolicy.delay_seconds(receive_count)`:
30 s, 60 s, 120 s ... capped at 15 minutes. On its last allowed receive the posting service parks a
transient failure itself (category and reason in the exception store) instead of leaving it to the
queue's redrive policy, which would move it without saying why. While the ERP is known to be down
(the circuit breaker is open) nothing is parked: records wait out the cool-down, and a record on its
last receive is sent again as a fresh message so an outage never spends the backlog's budget.

DEPENDENCY_PENDING is not retried by time: it waits by name in the waiting room.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from billing_sync.domain.errors import (
    DependencyPendingError,
    ErpTransientError,
    ExceptionCategory,
    PermanentPostingError,
    PublishError,
)

SQS_MAX_DELAY_SECONDS = 900
"""The longest DelaySeconds SQS accepts on SendMessage."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff by receive count: min(base * 2**(receive_count - 1), cap)."""

    base_seconds: int = 30
    cap_seconds: int = 900
    max_receive_count: int = 8

    def delay_seconds(self, receive_count: int) -> int:
        """The visibility delay after the `receive_count`-th receive failed (counts below 1 count as 1)."""
        exponent = max(receive_count, 1) - 1
        # 2**exponent grows without bound; compare before multiplying so a huge count stays cheap.
        if exponent >= self.cap_seconds.bit_length():
            return self.cap_seconds
        return min(self.base_seconds * 2**exponent, self.cap_seconds)

    def is_last_receive(self, receive_count: int) -> bool:
        return receive_count >= self.max_receive_count


class ErpUnavailableError(ErpTransientError):
    """ERP_TRANSIENT without a call: the circuit breaker is open; `retry_after` seconds until it may be tried."""

    def __init__(self, reason: str, *, retry_after: float) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class RetriesExhaustedError(PermanentPostingError):
    """A transient failure on the last allowed receive; parked with the category of its cause."""

    def __init__(self, cause: Exception, *, receive_count: int) -> None:
        category = getattr(cause, "category", ExceptionCategory.INTERNAL)
        detail = getattr(cause, "reason", None) or f"{type(cause).__name__}: {cause}"
        super().__init__(f"still failing after {receive_count} receives: {detail}")
        self.category = category
        self.__cause__ = cause


class ErpHealth(Protocol):
    def retry_after(self) -> float | None:
        """Seconds until the ERP may be called again while it is considered down; None when it may be called."""
        ...


class MessageRedelivery(Protocol):
    """The posting queue's side of a retry. Both methods raise PublishError when SQS refuses."""

    def delay(self, receipt_handle: str, seconds: int) -> None:
        """Keeps the received message invisible for `seconds` from now."""
        ...

    def resend(self, body: str, delay_seconds: int) -> None:
        """Sends the body again as a new message (receive count 1), visible after `delay_seconds`."""
        ...


@dataclass(frozen=True)
class Delivery:
    receive_count: int
    last: bool
    erp: ErpHealth


def retries_exhausted(error: Exception, delivery: Delivery | None) -> RetriesExhaustedError | None:
    """What the posting service parks instead of raising `error`, or None to let the queue retry it.

    Only on the last receive of the delivery, never for what waits by name, and never while the ERP is
    down (the error came from the open breaker, or this failure has just opened it).
    """
    if delivery is None or not delivery.last:
        return None
    if isinstance(error, (DependencyPendingError, ErpUnavailableError)) or delivery.erp.retry_after() is not None:
        return None
    return RetriesExhaustedError(error, receive_count=delivery.receive_count)


@dataclass(frozen=True)
class RetryDecision:
    delay_seconds: int
    resent: bool = False  # sent again as a new message; the received one is reported as done
    erp_unavailable: bool = False


class RetryScheduler:
    """Use case of the posting handler: says which delivery this is, and schedules a failed record's return."""

    def __init__(self, *, policy: RetryPolicy, redelivery: MessageRedelivery, erp: ErpHealth) -> None:
        self._policy = policy
        self._redelivery = redelivery
        self._erp = erp

    def delivery(self, receive_count: int) -> Delivery:
        """Which delivery this is, for the posting service to know whether it is the last (`retries_exhausted`)."""
        return Delivery(receive_count, self._policy.is_last_receive(receive_count), self._erp)

    def after_failure(self, *, receipt_handle: str, body: str, receive_count: int) -> RetryDecision:
        """Delays the record's return by the policy, or by the ERP's cool-down while it is down.

        Raises PublishError only when a last-receive record could not be sent again (the queue's
        redrive policy then moves it); a failed visibility change keeps the queue's own timeout.
        """
        retry_after = self._erp.retry_after()
        if retry_after is None:
            delay = self._policy.delay_seconds(receive_count)
        else:
            delay = min(max(math.ceil(retry_after), 1), SQS_MAX_DELAY_SECONDS)
            if self._policy.is_last_receive(receive_count):
                self._redelivery.resend(body, delay)
                return RetryDecision(delay, resent=True, erp_unavailable=True)
        try:
            self._redelivery.delay(receipt_handle, delay)
        except PublishError:
            return RetryDecision(0, erp_unavailable=retry_after is not None)
        return RetryDecision(delay, erp_unavailable=retry_after is not None)
