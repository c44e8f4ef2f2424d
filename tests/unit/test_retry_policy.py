"""The retry delay policy, the ERP circuit breaker's state machine and the retry scheduler's decisions."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import pytest

from billing_sync.domain.errors import (
    ClaimInFlightError,
    DependencyPendingError,
    ErpRejectedError,
    ErpTransientError,
    ExceptionCategory,
)
from billing_sync.domain.retry import (
    ErpUnavailableError,
    RetryDecision,
    RetryPolicy,
    RetryScheduler,
    retries_exhausted,
)
from billing_sync.erp.circuit_breaker import CircuitBreaker, CircuitState
from billing_sync.settings import PostingSettings

REQUIRED_ENV = {
    "LINEAGE_TABLE_NAME": "lineage",
    "LEDGER_TABLE_NAME": "ledger",
    "MASTER_DATA_TABLE_NAME": "master-data",
    "EXCEPTION_QUEUE_URL": "https://sqs/exceptions",
    "WAITING_ROOM_TABLE_NAME": "waiting-room",
    "POSTING_QUEUE_URL": "https://sqs/posting",
}


@dataclass
class FakeClock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class RecordingRedelivery:
    delays: list[tuple[str, int]] = field(default_factory=list)
    resent: list[tuple[str, int]] = field(default_factory=list)

    def delay(self, receipt_handle: str, seconds: int) -> None:
        self.delays.append((receipt_handle, seconds))

    def resend(self, body: str, delay_seconds: int) -> None:
        self.resent.append((body, delay_seconds))


def transient() -> ErpTransientError:
    return ErpTransientError("503 from ERP", status=503, erp_code="UNAVAILABLE")


def fail(breaker: CircuitBreaker) -> None:
    with pytest.raises(ErpTransientError):
        breaker.call(lambda: (_ for _ in ()).throw(transient()))


# ---- the delay policy ----


@pytest.mark.parametrize(
    ("receive_count", "delay"),
    [(1, 30), (2, 60), (3, 120), (4, 240), (5, 480), (6, 900), (7, 900), (8, 900), (50, 900), (10_000, 900)],
)
def test_delay_doubles_from_the_base_per_receive_up_to_the_cap(receive_count: int, delay: int) -> None:
    # GIVEN the default policy (base 30 s, cap 900 s) WHEN a record failed on this receive
    # THEN it returns after min(30 * 2**(receive_count - 1), 900) seconds
    assert RetryPolicy().delay_seconds(receive_count) == delay


def test_delay_with_other_base_and_cap_and_a_missing_count() -> None:
    policy = RetryPolicy(base_seconds=5, cap_seconds=100)
    assert [policy.delay_seconds(n) for n in range(0, 7)] == [5, 5, 10, 20, 40, 80, 100]


def test_last_receive_is_the_configured_maximum() -> None:
    policy = RetryPolicy(max_receive_count=8)
    assert [policy.is_last_receive(n) for n in (1, 7, 8, 9)] == [False, False, True, True]


def test_settings_default_the_policy_and_breaker_without_any_new_variable() -> None:
    # GIVEN only the variables the stack sets today
    settings = PostingSettings.from_env(REQUIRED_ENV)
    # THEN the retry policy and the breaker have their documented defaults
    assert (
        settings.posting_max_receive_count,
        settings.posting_retry_base_seconds,
        settings.posting_retry_cap_seconds,
        settings.erp_circuit_failure_threshold,
        settings.erp_circuit_cool_down_seconds,
    ) == (8, 30, 900, 5, 60)
    overridden = PostingSettings.from_env({**REQUIRED_ENV, "POSTING_MAX_RECEIVE_COUNT": "5"})
    assert overridden.posting_max_receive_count == 5


# ---- the circuit breaker ----


def test_breaker_opens_after_threshold_consecutive_transient_failures_and_then_skips_the_erp() -> None:
    # GIVEN a breaker with threshold 3 and a 60 s cool-down
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, cool_down_seconds=60, clock=clock)
    # WHEN two calls fail it stays closed; the third opens it
    fail(breaker)
    fail(breaker)
    assert breaker.state is CircuitState.CLOSED
    assert breaker.retry_after() is None
    fail(breaker)
    assert breaker.state is CircuitState.OPEN
    # THEN a call is refused without running, with the rest of the cool-down
    clock.now += 15
    calls: list[str] = []
    with pytest.raises(ErpUnavailableError) as refused:
        breaker.call(lambda: calls.append("called"))
    assert calls == []
    assert refused.value.retry_after == 45
    assert refused.value.category is ExceptionCategory.ERP_TRANSIENT
    assert breaker.retry_after() == 45


def test_a_success_or_a_rejection_resets_the_consecutive_count() -> None:
    breaker = CircuitBreaker(failure_threshold=2, cool_down_seconds=60, clock=FakeClock())
    fail(breaker)
    assert breaker.call(lambda: "ok") == "ok"
    fail(breaker)
    assert breaker.state is CircuitState.CLOSED
    # A rejection is the ERP answering: it is not a transient failure and does not count.
    with pytest.raises(ErpRejectedError):
        breaker.call(lambda: (_ for _ in ()).throw(ErpRejectedError("period closed", status=400)))
    fail(breaker)
    assert breaker.state is CircuitState.OPEN


def test_half_open_allows_one_trial_which_closes_the_breaker_on_success() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cool_down_seconds=60, clock=clock)
    fail(breaker)
    # WHEN the cool-down has passed
    clock.now += 60
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.retry_after() is None
    # THEN while the trial runs every other call is refused for a whole cool-down
    in_trial = threading.Event()
    release = threading.Event()
    refused: list[float] = []

    def trial() -> str:
        in_trial.set()
        release.wait(5)
        return "posted"

    worker = threading.Thread(target=lambda: breaker.call(trial))
    worker.start()
    assert in_trial.wait(5)
    with pytest.raises(ErpUnavailableError) as other:
        breaker.call(lambda: "second")
    refused.append(other.value.retry_after)
    release.set()
    worker.join(5)
    # AND the trial's success closes it
    assert refused == [60]
    assert breaker.state is CircuitState.CLOSED
    assert breaker.call(lambda: "next") == "next"


def test_a_failed_trial_opens_the_breaker_for_another_cool_down() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=5, cool_down_seconds=60, clock=clock)
    for _ in range(5):
        fail(breaker)
    clock.now += 61
    fail(breaker)  # the one trial, failing again: no need for five more
    assert breaker.state is CircuitState.OPEN
    assert breaker.retry_after() == 60


def test_an_unrelated_error_in_the_trial_leaves_the_breaker_half_open() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, cool_down_seconds=60, clock=clock)
    fail(breaker)
    clock.now += 60
    with pytest.raises(KeyError):
        breaker.call(lambda: {}["missing"])
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.call(lambda: "ok") == "ok"
    assert breaker.state is CircuitState.CLOSED


# ---- the scheduler and the last receive ----


class Health:
    def __init__(self, retry_after: float | None = None) -> None:
        self.value = retry_after

    def retry_after(self) -> float | None:
        return self.value


def test_failed_record_returns_after_the_policy_delay() -> None:
    redelivery = RecordingRedelivery()
    scheduler = RetryScheduler(policy=RetryPolicy(), redelivery=redelivery, erp=Health())
    decisions = [scheduler.after_failure(receipt_handle=f"rh-{n}", body="{}", receive_count=n) for n in (1, 3, 7)]
    assert redelivery.delays == [("rh-1", 30), ("rh-3", 120), ("rh-7", 900)]
    assert decisions == [RetryDecision(30), RetryDecision(120), RetryDecision(900)]


def test_while_the_erp_is_down_a_record_waits_out_the_cool_down_and_the_last_receive_is_sent_again() -> None:
    redelivery = RecordingRedelivery()
    scheduler = RetryScheduler(policy=RetryPolicy(), redelivery=redelivery, erp=Health(retry_after=12.2))
    early = scheduler.after_failure(receipt_handle="rh-2", body="b2", receive_count=2)
    last = scheduler.after_failure(receipt_handle="rh-8", body="b8", receive_count=8)
    assert early == RetryDecision(13, erp_unavailable=True)
    assert last == RetryDecision(13, resent=True, erp_unavailable=True)
    assert redelivery.delays == [("rh-2", 13)]
    assert redelivery.resent == [("b8", 13)]


def test_only_a_transient_failure_on_the_last_receive_with_the_erp_up_is_exhausted() -> None:
    up = RetryScheduler(policy=RetryPolicy(max_receive_count=3), redelivery=RecordingRedelivery(), erp=Health())
    down = RetryScheduler(policy=RetryPolicy(max_receive_count=3), redelivery=RecordingRedelivery(), erp=Health(5))
    assert retries_exhausted(transient(), None) is None  # not delivered by the queue
    assert retries_exhausted(transient(), up.delivery(2)) is None
    last = up.delivery(3)
    exhausted = retries_exhausted(transient(), last)
    in_flight = retries_exhausted(ClaimInFlightError("held"), last)
    assert retries_exhausted(DependencyPendingError("no invoice", key="document:x"), last) is None
    assert retries_exhausted(ErpUnavailableError("open", retry_after=5), last) is None
    assert retries_exhausted(transient(), down.delivery(3)) is None
    assert exhausted is not None and in_flight is not None
    assert exhausted.category is ExceptionCategory.ERP_TRANSIENT
    assert exhausted.reason == "still failing after 3 receives: 503 from ERP"
    assert in_flight.category is ExceptionCategory.INTERNAL
