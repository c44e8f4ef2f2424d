"""A circuit breaker in front of the ERP: after N consecutive ERP_TRANSIENT failures no call is made
for a cool-down; then one trial call decides whether the ERP is back.

Why not Powertools' circuit breaker (`aws_lambda_powertools.utilities.circuit_breaker`, GA in 3.37):
the functions run on the public Powertools layer pinned in `infra/config.py` (version 27), which
predates the utility, so importing it would fail in Lambda; it also needs a DynamoDB state table the
stack does not have, and its clock is the wall clock, not one a test can move. This breaker is per
execution environment (at most POSTING_MAX_CONCURRENCY of them), thread-safe, with an injectable
monotonic clock. Moving to the Powertools utility, with state shared across environments, needs the
layer bump and a table; the adapter below is the one place that would change.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from enum import StrEnum
from typing import TypeVar

from billing_sync.domain.errors import ErpTransientError
from billing_sync.domain.journal import DocumentKind, ErpCustomer, ErpDocument, ErpRef
from billing_sync.domain.ports import ErpClient
from billing_sync.domain.retry import ErpUnavailableError

T = TypeVar("T")


class CircuitState(StrEnum):
    CLOSED = "CLOSED"
    OPEN = "OPEN"
    HALF_OPEN = "HALF_OPEN"  # cool-down over: one trial call is (or may be) in flight


class CircuitBreaker:
    """CLOSED -(threshold consecutive failures)-> OPEN -(cool-down)-> HALF_OPEN -(trial ok)-> CLOSED.

    A failed trial opens it again for another cool-down. Only ErpTransientError counts as a failure;
    any answer of the ERP, a rejection included, shows it is up.
    """

    def __init__(
        self,
        *,
        failure_threshold: int = 5,
        cool_down_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or cool_down_seconds <= 0:
            raise ValueError("failure_threshold must be >= 1 and cool_down_seconds > 0")
        self._threshold = failure_threshold
        self._cool_down = cool_down_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> CircuitState:
        with self._lock:
            return self._state()

    def retry_after(self) -> float | None:
        """Seconds until a call may be tried: the rest of the cool-down, or a whole one while a trial runs."""
        with self._lock:
            state = self._state()
            if state is CircuitState.CLOSED:
                return None
            if state is CircuitState.OPEN:
                assert self._opened_at is not None
                return self._opened_at + self._cool_down - self._clock()
            return self._cool_down if self._trial_in_flight else None

    def call(self, operation: Callable[[], T]) -> T:
        """Runs `operation` unless the breaker is open; raises ErpUnavailableError without calling it."""
        trial = self._admit()
        try:
            result = operation()
        except ErpTransientError:
            self._failed(trial)
            raise
        except BaseException:
            if trial:
                with self._lock:
                    self._trial_in_flight = False  # says nothing about the ERP; let the next call try
            raise
        self._succeeded()
        return result

    def _state(self) -> CircuitState:
        if self._opened_at is None:
            return CircuitState.CLOSED
        if self._clock() < self._opened_at + self._cool_down:
            return CircuitState.OPEN
        return CircuitState.HALF_OPEN

    def _admit(self) -> bool:
        """True when this call is the half-open trial."""
        with self._lock:
            state = self._state()
            if state is CircuitState.CLOSED:
                return False
            if state is CircuitState.HALF_OPEN and not self._trial_in_flight:
                self._trial_in_flight = True
                return True
            if state is CircuitState.OPEN:
                assert self._opened_at is not None
                retry_after = self._opened_at + self._cool_down - self._clock()
            else:
                retry_after = self._cool_down
        raise ErpUnavailableError(
            f"ERP circuit open after {self._threshold} consecutive transient failures; "
            f"not called, retry in {retry_after:.0f} s",
            retry_after=retry_after,
        )

    def _failed(self, trial: bool) -> None:
        with self._lock:
            self._failures += 1
            if trial or self._failures >= self._threshold:
                self._opened_at = self._clock()
                self._failures = 0
                self._trial_in_flight = False

    def _succeeded(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None
            self._trial_in_flight = False


class CircuitBreakerErpClient:
    """The ErpClient port behind a CircuitBreaker: every call passes through it, the first that fails
    fast raises ErpUnavailableError (ERP_TRANSIENT) and the ERP is not called."""

    def __init__(self, erp: ErpClient, breaker: CircuitBreaker) -> None:
        self._erp = erp
        self._breaker = breaker

    def upsert_customer(self, customer: ErpCustomer) -> ErpRef:
        return self._breaker.call(lambda: self._erp.upsert_customer(customer))

    def find_document(self, external_id: str) -> ErpRef | None:
        return self._breaker.call(lambda: self._erp.find_document(external_id))

    def get_document(self, external_id: str) -> ErpDocument | None:
        return self._breaker.call(lambda: self._erp.get_document(external_id))

    def create_document(self, document: ErpDocument) -> ErpRef:
        return self._breaker.call(lambda: self._erp.create_document(document))

    def applied_to(self, external_id: str) -> list[ErpDocument]:
        return self._breaker.call(lambda: self._erp.applied_to(external_id))

    def list_documents(self, kind: DocumentKind) -> Iterator[ErpDocument]:
        return self._breaker.call(lambda: iter(list(self._erp.list_documents(kind))))

    def posted_documents(self, legal_entity: str | None = None) -> Iterator[ErpDocument]:
        return self._breaker.call(lambda: iter(list(self._erp.posted_documents(legal_entity))))

    def find_by_reference(self, reference: str) -> ErpRef | None:
        return self._breaker.call(lambda: self._erp.find_by_reference(reference))

    def applied_total(self, external_id: str, kind: DocumentKind) -> int:
        return self._breaker.call(lambda: self._erp.applied_total(external_id, kind))
