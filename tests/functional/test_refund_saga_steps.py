"""The refund saga's steps on the posting path's own ports: documents, validation, reversal, compensation.

The state machine that strings the steps together (waits, retries, catches) runs under moto's
interpreter in tests/functional/test_refund_saga_local.py; here each step's promise is pinned exactly.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from billing_sync.domain.errors import ErpRejectedError, EventValidationError, ExceptionCategory, PublishError
from billing_sync.domain.events import RefundIssuedEvent
from billing_sync.domain.journal import DocumentKind, ErpDocument
from billing_sync.domain.lineage import LineageStatus
from billing_sync.domain.ports import Waiter
from billing_sync.domain.posting import PostingStatus
from billing_sync.domain.refunds import RefundSaga
from billing_sync.domain.retry import Delivery
from tests.builders import load_event
from tests.fakes.rates import InMemoryRateTable, sample_rates
from tests.functional.posting_harness import PostingHarness, WaitingHarness, canonical, mapping

PAYABLE = "2250 Refunds Payable"
CLEARING = "1150 Payment Clearing"
CONTRA = "4950 Contra Revenue"
ACME_PAYMENT = "stripe-payment-inpay_1Z9ZRgNx4RkL2mQexR4OYiGf"


@pytest.fixture
def booked() -> PostingHarness:
    # GIVEN the Acme invoice (41623 USD) and its payment are posted
    harness = PostingHarness()
    for sample in ("stripe_customer_created", "stripe_invoice_finalized", "stripe_invoice_payment_paid"):
        harness.service.post(canonical(sample))
    return harness


def saga(harness: PostingHarness) -> RefundSaga:
    return RefundSaga(
        erp=harness.erp,
        master_data=harness.master_data,
        lineage=harness.lineage,
        exceptions=harness.exceptions,
        mapping=mapping(),
        clock=harness.clock,
        bookkeeper=harness.bookkeeper,
    )


def run_all(harness: PostingHarness, event: RefundIssuedEvent) -> dict[str, Any]:
    """Posting hands the refund to the saga (claimed, execution started), then the happy path runs as the
    state machine runs it, each step's result at its ResultPath."""
    started = harness.service.post(event)
    assert started.status in (PostingStatus.STARTED, PostingStatus.DUPLICATE)
    execution: dict[str, Any] = {"event": event.model_dump(mode="json"), "name": started.waiting_for}
    steps = saga(harness)
    execution["deps"] = steps.run("load", execution)
    assert execution["deps"]["ready"] is True
    if execution["deps"]["credit_memo_needed"]:
        execution["credit_memo_result"] = steps.run("credit_memo", execution)
    execution["refund_result"] = steps.run("refund", execution)
    execution["recorded"] = steps.run("record", execution)
    return execution


class ErpUp:
    def retry_after(self) -> float | None:
        return None


class StoreThrottled(Exception):
    """A state table's ProvisionedThroughputExceededException, as far as the domain sees it."""


def _fails_once(call: Callable[..., Any], error: Exception) -> Callable[..., Any]:
    failures = [error]

    def failing(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return call(*args, **kwargs)

    return failing


def entries(document: ErpDocument) -> Counter[tuple[str, int, int]]:
    return Counter((line.account, line.debit, line.credit) for line in document.journal)


def refund(sample: str) -> RefundIssuedEvent:
    event = canonical(sample)
    assert isinstance(event, RefundIssuedEvent)
    return event


def test_a_partial_refund_of_an_invoice_payment_books_a_credit_memo_and_the_refund(booked) -> None:
    # WHEN the first partial refund (10000) of the Acme payment runs through the saga
    event = refund("stripe_refund_created_partial_1")
    run_all(booked, event)

    # THEN a credit memo gives the revenue back and the refund pays it out, both against the payment
    memo = booked.erp.documents[f"stripe-refund-credit-memo-{event.data.refund_id}"]
    paid_out = booked.erp.documents[f"stripe-refund-{event.data.refund_id}"]
    amount = event.data.amount
    assert entries(memo) == Counter({(CONTRA, amount, 0): 1, (PAYABLE, 0, amount): 1})
    assert entries(paid_out) == Counter({(PAYABLE, amount, 0): 1, (CLEARING, 0, amount): 1})
    assert memo.applies_to == paid_out.applies_to == (ACME_PAYMENT,)
    # AND lineage says POSTED with both documents
    held = booked.lineage.get(event.event_id)
    assert held.status is LineageStatus.POSTED
    assert len(held.erp_document_ids) == 2


def test_two_partial_refunds_post_once_each_and_a_third_above_the_amount_paid_is_refused(booked) -> None:
    first, second, over = (
        refund("stripe_refund_created_partial_1"),
        refund("stripe_refund_created_partial_2"),
        refund("stripe_refund_created_over"),
    )
    run_all(booked, first)
    run_all(booked, second)
    run_all(booked, second)  # a redelivered step sequence changes nothing
    refunds = [d for d in booked.erp.documents.values() if d.kind is DocumentKind.REFUND]
    assert sorted(d.total for d in refunds) == sorted([first.data.amount, second.data.amount])

    # WHEN a refund would bring the refunds above the 41623 paid
    assert first.data.amount + second.data.amount + over.data.amount > 41623
    with pytest.raises(EventValidationError, match="more than its 41623 paid"):
        saga(booked).run("load", {"event": over.model_dump(mode="json")})
    # THEN nothing of it is posted
    assert not any(over.data.refund_id in external_id for external_id in booked.erp.documents)


def test_a_refund_carried_by_a_credit_note_books_only_the_refund() -> None:
    # GIVEN the renewal, its payments and the credit note after payment that carries the 5000 refund
    harness = PostingHarness()
    for sample in (
        "stripe_customer_created_lifecycle",
        "stripe_invoice_finalized_renewal_credit_balance",
        "stripe_invoice_payment_paid_partial_1",
        "stripe_invoice_payment_paid_partial_2",
        "stripe_credit_note_created_post_payment",
    ):
        harness.service.post(canonical(sample))
    event = refund("stripe_refund_created_credit_note")

    # WHEN its saga runs
    execution = run_all(harness, event)

    # THEN the credit note already gave the revenue back: only Dr 2250 / Cr 1150 is booked
    assert execution["deps"]["credit_memo_needed"] is False
    assert not any(
        d.kind is DocumentKind.CREDIT_MEMO and "refund" in d.external_id for d in harness.erp.documents.values()
    )
    payable = sum(
        line.debit - line.credit
        for d in harness.erp.documents.values()
        for line in d.journal
        if line.account == PAYABLE
    )
    assert payable == 0  # credited 5000 by the credit note, debited 5000 by the refund


def test_a_credit_note_arriving_after_the_saga_voids_the_saga_credit_memo() -> None:
    # GIVEN the refund's saga ran before the credit note that carries it arrived
    harness = PostingHarness()
    for sample in (
        "stripe_customer_created_lifecycle",
        "stripe_invoice_finalized_renewal_credit_balance",
        "stripe_invoice_payment_paid_partial_1",
        "stripe_invoice_payment_paid_partial_2",
    ):
        harness.service.post(canonical(sample))
    event = refund("stripe_refund_created_credit_note")
    run_all(harness, event)

    # WHEN the credit note posts
    harness.service.post(canonical("stripe_credit_note_created_post_payment"))

    # THEN the saga's credit memo is voided: revenue is given back once, whatever the order
    memo_id = f"stripe-refund-credit-memo-{event.data.refund_id}"
    assert harness.erp.documents[f"{memo_id}-void"].kind is DocumentKind.CREDIT_MEMO_VOID
    contra = sum(
        line.debit - line.credit for d in harness.erp.documents.values() for line in d.journal if line.account == CONTRA
    )
    assert contra == 0


def test_a_refund_that_fails_after_it_succeeded_is_reversed(booked) -> None:
    # GIVEN the second partial refund booked, then Stripe reporting it failed
    succeeded = refund("stripe_refund_created_partial_2")
    run_all(booked, succeeded)
    failed = refund("stripe_refund_updated_failed")
    assert (failed.data.refund_id, failed.data.status) == (succeeded.data.refund_id, "failed")

    # WHEN the failed version runs
    execution = run_all(booked, failed)

    # THEN the refund is reversed (no second credit memo) and clearing is back where it was
    assert execution["deps"]["credit_memo_needed"] is False
    reversal = booked.erp.documents[f"stripe-refund-reversal-{failed.data.refund_id}"]
    assert entries(reversal) == Counter({(CLEARING, failed.data.amount, 0): 1, (PAYABLE, 0, failed.data.amount): 1})


def _books(harness: PostingHarness) -> dict[str, tuple[str, Counter[tuple[str, int, int]]]]:
    return {external_id: (doc.kind.value, entries(doc)) for external_id, doc in harness.erp.documents.items()}


def test_a_refund_whose_failure_arrives_before_its_success_books_what_it_books_in_order() -> None:
    # GIVEN two ledgers with the Acme invoice and payment posted, and a refund Stripe reported succeeded and
    # then failed (its funds returned by a failure balance transaction)
    succeeded = refund("stripe_refund_created_partial_2")
    failed = refund("stripe_refund_updated_failed")
    assert failed.data.failure_balance_transaction_id is not None
    in_order, reversed_order = PostingHarness(), PostingHarness()
    for harness in (in_order, reversed_order):
        for sample in ("stripe_customer_created", "stripe_invoice_finalized", "stripe_invoice_payment_paid"):
            harness.service.post(canonical(sample))

    # WHEN one ledger hears succeeded then failed, the other failed then succeeded
    run_all(in_order, succeeded)
    run_all(in_order, failed)
    first = run_all(reversed_order, failed)
    run_all(reversed_order, succeeded)

    # THEN both hold the same documents with the same journals: credit memo, refund and its reversal
    assert _books(reversed_order) == _books(in_order)
    refund_id = failed.data.refund_id
    assert {f"stripe-refund-{refund_id}", f"stripe-refund-reversal-{refund_id}"} <= set(_books(in_order))
    # AND the failure, first, booked the refund and its reversal and recorded both on lineage
    assert first["refund_result"]["booked"] == [f"stripe-refund-{refund_id}", f"stripe-refund-reversal-{refund_id}"]
    assert set(first["refund_result"]["document_ids"]) <= set(first["recorded"]["documents"])


def test_a_refund_that_failed_before_its_funds_left_books_nothing(booked) -> None:
    # GIVEN Stripe reporting a refund failed with no balance transaction returning funds (none had left)
    payload = load_event("stripe_refund_updated_failed")
    payload["data"]["object"]["failure_balance_transaction"] = None
    failed = canonical(payload)
    assert isinstance(failed, RefundIssuedEvent)

    # WHEN it runs through the saga
    execution = run_all(booked, failed)

    # THEN nothing is booked for it, and lineage says why
    assert execution["deps"]["credit_memo_needed"] is False
    assert execution["refund_result"]["note"] == "refund failed: nothing to book"
    assert not [external_id for external_id in booked.erp.documents if failed.data.refund_id in external_id]


def test_a_foreign_currency_refund_waits_for_the_rate_of_its_day_and_books_once_it_is_stored() -> None:
    # GIVEN the JPY invoice of a USD entity and its payment (Aug 20) posted, with rates published up to Aug 20
    # only, and a refund of 7800 JPY on Sep 10 (past the look-back: no rate for that day yet)
    rates = InMemoryRateTable([rate for rate in sample_rates() if rate.as_of <= date(2026, 8, 20)])
    harness = PostingHarness(rates=rates)
    for sample in ("stripe_customer_created_jpy_us", "stripe_invoice_finalized_jpy_us"):
        harness.service.post(canonical(sample))
    assert harness.service.post(canonical("stripe_invoice_payment_paid_jpy_us")).status is PostingStatus.POSTED
    payload = load_event("stripe_refund_created_partial_1")
    payload["data"]["object"].update(
        amount=7800,
        currency="jpy",
        payment_intent="pi_3r1DxSNx4RkL2mQeZEpmc3Hd",
        charge=None,
        customer="cus_AsPJrbnwiEhhc2",
        created=int(datetime(2026, 9, 10, 9, tzinfo=UTC).timestamp()),
    )
    event = canonical(payload)
    assert isinstance(event, RefundIssuedEvent)
    started = harness.service.post(event)
    execution: dict[str, Any] = {"event": event.model_dump(mode="json"), "name": started.waiting_for}

    # WHEN the saga loads its dependencies, then again after the September rates are stored
    waiting = saga(harness).run("load", execution)
    rates.put_rates(rate for rate in sample_rates() if date(2026, 8, 20) < rate.as_of <= date(2026, 9, 30))
    execution["deps"] = saga(harness).run("load", execution)

    # THEN it first waits for the rate by name (the state machine's wait loop), booking nothing
    assert waiting["ready"] is False and waiting["waiting_for"].startswith("rate:")
    assert "2026-09-10" in waiting["waiting_for"]
    # AND once the rate is there it is ready, and the refund books translated at it
    assert execution["deps"]["ready"] is True
    execution["credit_memo_result"] = saga(harness).run("credit_memo", execution)
    execution["refund_result"] = saga(harness).run("refund", execution)
    booked = harness.erp.documents[f"stripe-refund-{event.data.refund_id}"]
    assert booked.currency == "JPY" and booked.functional_currency == "USD"


def test_a_refund_whose_payment_is_not_posted_is_not_ready_and_names_it() -> None:
    harness = PostingHarness()
    event = refund("stripe_refund_created_full")
    deps = saga(harness).run("load", {"event": event.model_dump(mode="json")})
    assert deps == {"ready": False, "waiting_for": f"payment:payment_intent:{event.data.payment_intent_id}"}


def test_a_permanent_failure_after_the_credit_memo_voids_it_and_records_the_failed_step(booked) -> None:
    # GIVEN the credit memo created, then the ERP rejecting the refund
    event = refund("stripe_refund_created_partial_1")
    steps = saga(booked)
    assert booked.service.post(event).status is PostingStatus.STARTED
    execution: dict[str, Any] = {"event": event.model_dump(mode="json"), "name": "x-1"}
    execution["deps"] = steps.run("load", execution)
    execution["credit_memo_result"] = steps.run("credit_memo", execution)
    booked.erp.fail_next.append(ErpRejectedError("account closed", status=400, erp_code="CLOSED"))
    with pytest.raises(ErpRejectedError):
        steps.run("refund", execution)

    # WHEN the state machine catches it: compensate, then record the failure (each retried safely)
    execution["failure"] = {"Error": "ErpRejectedError", "Cause": '{"errorMessage": "account closed"}'}
    execution["failed_step"] = "CreateRefund"
    steps.run("compensate", execution)
    steps.run("compensate", execution)
    steps.run("record_failure", execution)

    # THEN the credit memo is voided once, the exception names its category and the failed step
    voids = [d for d in booked.erp.documents.values() if d.kind is DocumentKind.CREDIT_MEMO_VOID]
    assert len(voids) == 1
    [parked] = booked.exceptions.records
    assert parked.category is ExceptionCategory.ERP_REJECTED
    assert parked.reason == "refund saga step CreateRefund failed: ErpRejectedError: account closed"
    assert booked.lineage.get(event.event_id).status is LineageStatus.EXCEPTION
    contra = sum(
        line.debit - line.credit for d in booked.erp.documents.values() for line in d.journal if line.account == CONTRA
    )
    assert contra == 0


def test_an_unknown_task_is_refused() -> None:
    with pytest.raises(ValueError, match="no task"):
        saga(PostingHarness()).run("dance", {"event": load_event("stripe_refund_created_full")})


def test_the_same_refund_delivered_twice_starts_one_execution_named_after_the_event(booked) -> None:
    # GIVEN a refund handed to its saga
    event = refund("stripe_refund_created_full")
    first = booked.service.post(event)

    # WHEN the same event is delivered again while the saga runs
    again = booked.service.post(event)

    # THEN there is one execution, named after the event id (and the claim attempt)
    assert first.status is again.status is PostingStatus.STARTED
    assert first.waiting_for == again.waiting_for == f"{event.event_id}-1"
    assert list(booked.workflows.executions) == [f"{event.event_id}-1"]
    assert booked.lineage.get(event.event_id).status is LineageStatus.CLAIMED


def test_a_refund_whose_start_failed_and_whose_claim_stayed_starts_on_the_next_delivery(booked, monkeypatch) -> None:
    # GIVEN Step Functions refuses the start, and the write that would release the claim is throttled too
    event = refund("stripe_refund_created_full")
    monkeypatch.setattr(booked.workflows, "start", _fails_once(booked.workflows.start, PublishError("503")))
    monkeypatch.setattr(booked.lineage, "mark_failed", _fails_once(booked.lineage.mark_failed, StoreThrottled()))
    with pytest.raises(StoreThrottled):
        booked.service.post(event)
    assert booked.lineage.get(event.event_id).status is LineageStatus.CLAIMED
    assert booked.workflows.executions == {}

    # WHEN the queue delivers it again, for the last time, while the claim's saga lease still holds
    again = booked.service.post(event, delivery=Delivery(receive_count=5, last=True, erp=ErpUp()))

    # THEN the execution that owns the claim runs now: the refund is not dropped as a duplicate
    assert again.status is PostingStatus.STARTED
    assert list(booked.workflows.executions) == [f"{event.event_id}-1"]


def test_a_refund_redriven_after_each_failed_saga_starts_a_new_execution_every_time(booked) -> None:
    # GIVEN a refund whose saga fails for good twice, each failure recorded by the execution that ran
    event = refund("stripe_refund_created_full")
    failure = {"Error": "ErpRejectedError", "Cause": '{"errorMessage": "account closed"}'}
    for attempt in (1, 2):
        assert booked.service.post(event).status is PostingStatus.STARTED
        execution = {"event": event.model_dump(mode="json"), "name": f"{event.event_id}-{attempt}"}
        saga(booked).run("record_failure", {**execution, "failure": failure, "failed_step": "CreateRefund"})

    # WHEN an operator redrives it once more
    started = booked.service.post(event)

    # THEN a third execution runs: a failure recorded by execution 2 never sends the next claim back to a
    # name already used (Step Functions refuses it, and the refund would stay claimed with nothing running)
    assert started.status is PostingStatus.STARTED
    assert list(booked.workflows.executions) == [f"{event.event_id}-{attempt}" for attempt in (1, 2, 3)]
    assert booked.lineage.get(event.event_id).status is LineageStatus.CLAIMED


def test_recording_a_refund_releases_what_waits_for_its_documents() -> None:
    # GIVEN the Acme invoice and payment are posted in the deployed shape (a waiting room and a queue), and
    # an event (a payout settling the refund, say) waits for the refund's document by name
    harness = WaitingHarness()
    harness.post("stripe_customer_created", "stripe_invoice_finalized", "stripe_invoice_payment_paid")
    event = refund("stripe_refund_created_partial_1")
    payout_event = {"event_id": "a-payout-settling-the-refund", "event_type": "payout.paid"}
    refund_key = f"document:stripe-refund-{event.data.refund_id}"
    harness.room.hold(
        Waiter(
            key=refund_key,
            event_id="a-payout-settling-the-refund",
            event=payout_event,
            wait_until=harness.clock() + timedelta(days=3),
        )
    )
    steps = RefundSaga(
        erp=harness.erp,
        master_data=harness.master_data,
        lineage=harness.lineage,
        exceptions=harness.exceptions,
        mapping=mapping(),
        clock=harness.clock,
        bookkeeper=harness.bookkeeper,
        waiting_room=harness.waiting_room,
        requeue=harness.requeue,
    )
    started = harness.service.post(event)
    execution: dict[str, Any] = {"event": event.model_dump(mode="json"), "name": started.waiting_for}
    execution["deps"] = steps.run("load", execution)
    execution["credit_memo_result"] = steps.run("credit_memo", execution)
    execution["refund_result"] = steps.run("refund", execution)
    # WHEN the saga records the outcome
    steps.run("record", execution)
    # THEN the waiting event is back on the posting queue, once, and no longer held
    assert harness.queue.messages == [payout_event]
    assert harness.room.waiting_for(refund_key) == []


def execution_ended(event: RefundIssuedEvent, name: str, status: str = "FAILED") -> dict[str, Any]:
    """The detail of Step Functions' "Execution Status Change" event for a saga execution that ended."""
    execution_input = {"wait_seconds": 300, "max_waits": 12, "event": event.model_dump(mode="json"), "name": name}
    return {
        "executionArn": f"arn:aws:states:us-east-1:123456789012:execution:RefundSaga:{name}",
        "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:RefundSaga",
        "name": name,
        "status": status,
        "startDate": 1795770000000,
        "stopDate": 1795770042000,
        "input": json.dumps(execution_input),
        "inputDetails": {"included": True},
        "output": None,
        "error": "States.TaskFailed",
        "cause": json.dumps({"errorMessage": "SQS SendMessage failed: InternalError", "errorType": "PublishError"}),
    }


def test_an_execution_that_ended_without_recording_parks_its_refund(booked) -> None:
    # GIVEN a refund whose saga failed a step and whose RecordFailure spent every retry (the queue was down)
    event = refund("stripe_refund_created_full")
    started = booked.service.post(event)
    assert booked.lineage.get(event.event_id).status is LineageStatus.CLAIMED

    # WHEN Step Functions reports the execution FAILED
    result = saga(booked).record_ended(execution_ended(event, started.waiting_for))

    # THEN the refund is parked INTERNAL, naming the execution, and lineage leaves CLAIMED
    assert result["parked"] is True
    [parked] = booked.exceptions.records
    assert parked.category is ExceptionCategory.INTERNAL
    assert parked.reason == (
        f"refund saga execution {event.event_id}-1 ended FAILED without recording its outcome: "
        "States.TaskFailed: SQS SendMessage failed: InternalError"
    )
    assert parked.event == event.model_dump(mode="json")
    assert booked.lineage.get(event.event_id).status is LineageStatus.EXCEPTION

    # AND a redrive starts the next attempt, a new execution
    assert booked.service.post(event).waiting_for == f"{event.event_id}-2"


def test_an_execution_that_recorded_its_outcome_or_lost_its_claim_parks_nothing_when_it_ends(booked) -> None:
    event = refund("stripe_refund_created_full")
    failure = {"Error": "ErpRejectedError", "Cause": '{"errorMessage": "account closed"}'}
    booked.service.post(event)
    execution = {"event": event.model_dump(mode="json"), "name": f"{event.event_id}-1"}
    saga(booked).run("record_failure", {**execution, "failure": failure, "failed_step": "CreateRefund"})
    # the execution that recorded its failure ends FAILED (RefundNotBooked): the store has its one record
    assert saga(booked).record_ended(execution_ended(event, f"{event.event_id}-1"))["parked"] is False
    # a redrive's attempt 2 holds the claim when a late status change of attempt 1 arrives
    assert booked.service.post(event).waiting_for == f"{event.event_id}-2"
    assert saga(booked).record_ended(execution_ended(event, f"{event.event_id}-1", "ABORTED"))["parked"] is False
    assert len(booked.exceptions.records) == 1
    assert booked.lineage.get(event.event_id).status is LineageStatus.CLAIMED


def test_a_status_change_without_the_execution_input_is_refused_by_name(booked) -> None:
    event = refund("stripe_refund_created_full")
    detail = {**execution_ended(event, f"{event.event_id}-1"), "inputDetails": {"included": False}}
    del detail["input"]
    with pytest.raises(EventValidationError, match=f"execution {event.event_id}-1 carries no input"):
        saga(booked).record_ended(detail)
    assert booked.exceptions.records == []
