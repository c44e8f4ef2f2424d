"""Promise 2: each billing document reaches the ERP at most once; nothing accepted is lost."""

from __future__ import annotations

import threading

import pytest

from billing_sync.domain.errors import (
    ClaimInFlightError,
    DependencyPendingError,
    ErpTransientError,
    ExceptionCategory,
    RetryablePostingError,
)
from billing_sync.domain.lineage import EventRef, LineageStatus
from billing_sync.domain.posting import PostingStatus
from billing_sync.domain.retry import RetryPolicy, RetryScheduler
from tests.builders import invoice_event, invoice_paid_event, load_event
from tests.functional.posting_harness import CLAIM_LEASE, PostingHarness, canonical


class CrashAfterErpAcceptedError(RuntimeError):
    """Stands for the process dying between the ERP's answer and the lineage write."""


@pytest.fixture
def harness() -> PostingHarness:
    # GIVEN the invoice's customer is already synchronised
    harness = PostingHarness()
    harness.service.post(canonical("stripe_customer_created"))
    return harness


def deliver_until_settled(harness: PostingHarness, event, *, attempts: int = 10):
    """Plays the queue: a retryable failure comes back after the visibility timeout."""
    for _ in range(attempts):
        try:
            return harness.service.post(event)
        except RetryablePostingError:
            harness.clock.advance(CLAIM_LEASE * 2)
    raise AssertionError(f"{event.event_id} did not settle in {attempts} deliveries")


def test_same_invoice_delivered_five_times_creates_one_document(harness: PostingHarness) -> None:
    # GIVEN one invoice.issued event
    invoice = canonical("stripe_invoice_finalized")
    # WHEN it is delivered five times in a row
    results = [harness.service.post(invoice) for _ in range(5)]
    # THEN the ERP holds one document and the later deliveries are duplicates
    assert len(harness.erp.documents) == 1
    assert harness.erp.create_calls == 1
    assert [r.status for r in results] == [PostingStatus.POSTED] + [PostingStatus.DUPLICATE] * 4
    assert {r.erp_document_ids for r in results} == {results[0].erp_document_ids}


def test_concurrent_deliveries_create_one_document(harness: PostingHarness) -> None:
    # GIVEN five workers receiving the same invoice at the same moment
    invoice = canonical("stripe_invoice_finalized")
    start = threading.Barrier(5)
    outcomes: list[object] = []

    def worker() -> None:
        start.wait()
        try:
            outcomes.append(harness.service.post(invoice).status)
        except ClaimInFlightError:
            outcomes.append("in-flight")

    threads = [threading.Thread(target=worker) for _ in range(5)]
    # WHEN they all post
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN exactly one created the document; the others saw it claimed or posted
    assert len(harness.erp.documents) == 1
    assert harness.erp.create_calls == 1
    assert outcomes.count(PostingStatus.POSTED) == 1
    assert set(outcomes) <= {PostingStatus.POSTED, PostingStatus.DUPLICATE, "in-flight"}
    # AND a later redelivery of an in-flight one is a duplicate, not a second document
    harness.clock.advance(CLAIM_LEASE * 2)
    assert harness.service.post(invoice).status is PostingStatus.DUPLICATE
    assert len(harness.erp.documents) == 1


def test_crash_after_erp_accepted_before_lineage_saved_then_retry(harness: PostingHarness) -> None:
    # GIVEN the ERP accepts the document but the worker dies before recording lineage
    invoice = canonical("stripe_invoice_finalized")
    harness.lineage.fail_mark_posted.append(CrashAfterErpAcceptedError("killed"))
    with pytest.raises(CrashAfterErpAcceptedError):
        harness.service.post(invoice)
    assert len(harness.erp.documents) == 1
    assert harness.lineage.get(invoice.event_id).status is LineageStatus.CLAIMED
    # WHEN the message comes back after the visibility timeout (lease expired)
    harness.clock.advance(CLAIM_LEASE * 2)
    result = harness.service.post(invoice)
    # THEN the retry finds the existing document instead of creating another
    assert result.status is PostingStatus.POSTED
    assert len(harness.erp.documents) == 1
    record = harness.lineage.get(invoice.event_id)
    assert record.status is LineageStatus.POSTED
    assert record.attempts == 2
    assert record.erp_document_ids == result.erp_document_ids


def test_erp_transient_failure_is_retried_then_posted_once(harness: PostingHarness) -> None:
    # GIVEN the ERP answers 503 once
    invoice = canonical("stripe_invoice_finalized")
    harness.erp.fail_next.append(ErpTransientError("503 from ERP", status=503, erp_code="UNAVAILABLE"))
    # WHEN the first delivery fails
    with pytest.raises(ErpTransientError):
        harness.service.post(invoice)
    pending = harness.lineage.get(invoice.event_id)
    # THEN lineage shows it pending with its category, and nothing was posted
    assert pending.status is LineageStatus.PENDING
    assert pending.category is ExceptionCategory.ERP_TRANSIENT
    assert harness.erp.documents == {}
    # WHEN the queue redelivers it
    result = harness.service.post(invoice)
    # THEN it is posted exactly once
    assert result.status is PostingStatus.POSTED
    assert len(harness.erp.documents) == 1
    assert harness.lineage.get(invoice.event_id).status is LineageStatus.POSTED


def test_payment_before_its_invoice_waits_and_posts_after_it(harness: PostingHarness) -> None:
    # GIVEN the payment arrives before its invoice
    invoice = canonical("stripe_invoice_finalized")
    payment = canonical("stripe_invoice_payment_paid")
    posted_order: list[str] = []
    harness.erp.after_create = lambda document: posted_order.append(document.kind)
    # WHEN the payment is delivered first
    with pytest.raises(DependencyPendingError):
        harness.service.post(payment)
    # THEN nothing is posted and lineage shows it pending on a dependency
    assert harness.erp.documents == {}
    assert harness.lineage.get(payment.event_id).category is ExceptionCategory.DEPENDENCY_PENDING
    # WHEN the invoice arrives and the payment is retried
    harness.service.post(invoice)
    result = deliver_until_settled(harness, payment)
    # THEN the payment is posted after the invoice, applied to it
    assert result.status is PostingStatus.POSTED
    assert posted_order == ["invoice", "payment"]
    payment_doc = harness.erp.documents["stripe-payment-inpay_1Z9ZRgNx4RkL2mQexR4OYiGf"]
    assert payment_doc.applies_to == ("stripe-invoice-in_1QvDDlNx4RkL2mQejBTD4pmw",)


def test_invoice_paid_and_charge_succeeded_make_one_payment_document(harness: PostingHarness) -> None:
    # GIVEN the invoice is posted
    harness.service.post(canonical("stripe_invoice_finalized"))
    # WHEN an endpoint on a pre-basil API version receives both invoice.paid and charge.succeeded for it
    legacy_paid = {**load_event("stripe_invoice_paid"), "api_version": "2024-06-20"}
    first = harness.service.post(canonical(legacy_paid))
    second = harness.service.post(canonical("stripe_charge_succeeded"))
    # THEN both are posted against one ERP payment document
    assert first.erp_document_ids == second.erp_document_ids
    assert len([d for d in harness.erp.documents.values() if d.kind == "payment"]) == 1


def test_invoice_that_does_not_add_up_is_parked_with_validation_category(harness: PostingHarness) -> None:
    # GIVEN an invoice whose total is 100 more than its lines, discounts and tax
    invoice = canonical("stripe_invoice_finalized_bad_totals")
    # WHEN it is posted
    result = harness.service.post(invoice)
    # THEN nothing reaches the ERP; it is in the exception queue and lineage says why
    assert result.status is PostingStatus.EXCEPTION
    assert harness.erp.documents == {}
    [parked] = harness.exceptions.records
    assert parked.category is ExceptionCategory.VALIDATION
    assert "130650" in parked.reason and "130750" in parked.reason
    assert parked.event is not None and parked.event["event_id"] == invoice.event_id
    assert harness.lineage.get(invoice.event_id).status is LineageStatus.EXCEPTION


def test_invoice_for_unknown_customer_waits_for_the_customer() -> None:
    # GIVEN no customer has been synchronised yet
    harness = PostingHarness()
    invoice = canonical("stripe_invoice_finalized")
    # WHEN the invoice arrives first
    with pytest.raises(DependencyPendingError):
        harness.service.post(invoice)
    # THEN it posts once the customer is known
    harness.service.post(canonical("stripe_customer_created"))
    assert deliver_until_settled(harness, invoice).status is PostingStatus.POSTED


def test_unreadable_canonical_event_is_parked_not_dropped(harness: PostingHarness) -> None:
    # GIVEN a bus message whose detail is not a canonical event
    detail = canonical("stripe_invoice_finalized").model_dump(mode="json")
    del detail["data"]["currency"]
    # WHEN the posting service handles it
    result = harness.service.handle(detail)
    # THEN it is parked as MALFORMED with the payload kept for redrive
    assert result.status is PostingStatus.EXCEPTION
    [parked] = harness.exceptions.records
    assert parked.category is ExceptionCategory.MALFORMED
    assert parked.event == detail


def test_charge_for_a_yen_invoice_posts_in_the_invoice_entity() -> None:
    # GIVEN the JP01 customer and its yen invoice are posted; the default entity is US01
    harness = PostingHarness()
    harness.service.post(canonical("stripe_customer_created_jp"))
    harness.service.post(canonical("stripe_invoice_finalized_jpy"))
    paid = load_event("stripe_invoice_paid_jpy")
    invoice = paid["data"]["object"]
    charge = load_event("stripe_charge_succeeded")
    charge["id"] = "evt_3QJqhyNx4RkL2mQeYenCharge01"
    charge["data"]["object"].update(
        amount=invoice["amount_paid"], currency="jpy", customer=invoice["customer"], invoice=invoice["id"], metadata={}
    )
    event = canonical(charge)
    assert event.legal_entity == "US01"  # a charge does not carry the invoice's metadata
    # WHEN the charge.succeeded for it is posted
    result = harness.service.post(event)
    # THEN the payment is booked in JP01, the invoice's entity, not parked as a currency mismatch
    assert result.status is PostingStatus.POSTED
    payment = harness.erp.documents[f"stripe-payment-{invoice['id']}"]
    assert (payment.legal_entity, payment.subsidiary, payment.total) == ("JP01", "2", 29400)


def test_zero_value_invoice_and_its_payment_are_recorded_ignored(harness: PostingHarness) -> None:
    # GIVEN a free-trial invoice for nothing, and Stripe marking it paid
    free = invoice_event(
        lines=[(0, 0, 0)], invoice_id="in_1QzeroTrialNx4RkL2mQe0001", event_id="evt_1QzeroTrial0000000001"
    )
    paid = invoice_paid_event(free)
    # WHEN both are posted
    results = [harness.service.post(canonical(free)), harness.service.post(canonical(paid))]
    # THEN nothing reaches the ERP, nothing is parked, and lineage says why
    assert [r.status for r in results] == [PostingStatus.IGNORED, PostingStatus.IGNORED]
    assert harness.erp.documents == {} and harness.exceptions.records == []
    assert harness.lineage.get(results[0].event_id).status is LineageStatus.IGNORED
    assert "no value" in harness.lineage.get(results[0].event_id).reason


def test_customer_upsert_interrupted_by_the_erp_is_completed_on_retry() -> None:
    # GIVEN the ERP fails once while the customer is being upserted (master data already written)
    harness = PostingHarness()
    customer = canonical("stripe_customer_created")
    harness.erp.fail_next.append(ErpTransientError("429 from ERP", status=429, erp_code="RATE_LIMITED"))
    with pytest.raises(ErpTransientError):
        harness.service.post(customer)
    assert harness.erp.customers == {}
    # WHEN the queue redelivers the event
    result = harness.service.post(customer)
    # THEN the ERP has the customer and lineage says POSTED
    assert result.status is PostingStatus.POSTED
    assert list(harness.erp.customers) == ["stripe-customer-cus_QfR7xKp2LmN9aT"]
    assert harness.lineage.get(customer.event_id).status is LineageStatus.POSTED


def test_an_older_customer_version_does_not_overwrite_a_newer_one() -> None:
    # GIVEN customer.updated (newer) was applied before customer.created (older) arrived
    harness = PostingHarness()
    harness.service.post(canonical("stripe_customer_updated"))
    # WHEN the older version arrives
    result = harness.service.post(canonical("stripe_customer_created"))
    # THEN the ERP keeps the newer email and lineage explains why nothing changed
    assert result.erp_document_ids == ()
    [erp_customer] = harness.erp.customers.values()
    assert erp_customer.email == canonical("stripe_customer_updated").data.email
    assert "superseded" in harness.lineage.get(result.event_id).reason


def test_an_unexpected_failure_is_retried_and_lineage_says_why(harness: PostingHarness) -> None:
    # GIVEN the ERP adapter fails in a way nobody classified
    invoice = canonical("stripe_invoice_finalized")
    harness.erp.fail_next.append(KeyError("document_id"))
    # WHEN the invoice is posted
    with pytest.raises(KeyError):
        harness.service.post(invoice)
    # THEN the record goes back to the queue, lineage says INTERNAL, and the retry posts it once
    pending = harness.lineage.get(invoice.event_id)
    assert (pending.status, pending.category) == (LineageStatus.PENDING, ExceptionCategory.INTERNAL)
    assert "KeyError" in pending.reason
    assert harness.service.post(invoice).status is PostingStatus.POSTED
    assert len(harness.erp.documents) == 1


def test_an_invalid_invoice_is_parked_at_once_even_before_its_customer_arrives() -> None:
    # GIVEN no customer yet, and an invoice whose totals do not add up
    harness = PostingHarness()
    # WHEN it is posted
    result = harness.service.post(canonical("stripe_invoice_finalized_bad_totals"))
    # THEN it is parked as VALIDATION on the first delivery instead of waiting for the customer
    assert result.status is PostingStatus.EXCEPTION
    assert result.category is ExceptionCategory.VALIDATION


def test_a_copy_on_its_last_receive_whose_event_another_worker_holds_is_dropped_not_dead_lettered(
    harness: PostingHarness,
) -> None:
    # GIVEN another worker holds a live claim on the invoice
    invoice = canonical("stripe_invoice_finalized")
    harness.lineage.claim(
        EventRef(**invoice.model_dump(include=set(EventRef.model_fields))),
        now=harness.clock.now,
        lease_until=harness.clock.now + CLAIM_LEASE,
    )
    scheduler = RetryScheduler(policy=RetryPolicy(max_receive_count=8), redelivery=None, erp=_ErpUp())  # type: ignore[arg-type]

    # WHEN a duplicate copy arrives on an early receive, then on its last
    with pytest.raises(ClaimInFlightError):
        harness.service.post(invoice, delivery=scheduler.delivery(2))
    last = harness.service.post(invoice, delivery=scheduler.delivery(8))

    # THEN the early copy is retried, the last one is acknowledged as a duplicate: nothing is parked
    assert last.status is PostingStatus.DUPLICATE
    assert harness.exceptions.records == []
    assert harness.erp.documents == {}


class _ErpUp:
    def retry_after(self) -> float | None:
        return None


def test_a_customer_upsert_still_failing_on_its_last_receive_is_parked_with_its_reason() -> None:
    # GIVEN the ERP refusing transiently whenever the customer is upserted
    harness = PostingHarness()
    customer = canonical("stripe_customer_created")
    scheduler = RetryScheduler(policy=RetryPolicy(max_receive_count=3), redelivery=None, erp=_ErpUp())  # type: ignore[arg-type]
    harness.erp.fail_next.extend(ErpTransientError("503 from ERP", status=503) for _ in range(3))

    # WHEN it is delivered twice, then a last time
    for receive in (1, 2):
        with pytest.raises(ErpTransientError):
            harness.service.post(customer, delivery=scheduler.delivery(receive))
    last = harness.service.post(customer, delivery=scheduler.delivery(3))

    # THEN the last delivery parks it as ERP_TRANSIENT, saying how long it kept failing
    assert (last.status, last.category) == (PostingStatus.EXCEPTION, ExceptionCategory.ERP_TRANSIENT)
    [parked] = harness.exceptions.records
    assert parked.reason == "still failing after 3 receives: 503 from ERP"


def test_an_invoice_for_another_entity_than_its_customers_is_parked_naming_both() -> None:
    # GIVEN the US01 customer, and its invoice marked for the Japanese entity
    harness = PostingHarness()
    harness.service.post(canonical("stripe_customer_created"))
    payload = load_event("stripe_invoice_finalized")
    payload["data"]["object"]["metadata"] = {"legal_entity": "JP01"}

    # WHEN it is posted
    result = harness.service.post(canonical(payload))

    # THEN it is a VALIDATION exception that names both entities, and nothing is booked
    assert (result.status, result.category) == (PostingStatus.EXCEPTION, ExceptionCategory.VALIDATION)
    [parked] = harness.exceptions.records
    assert "legal entity JP01" in parked.reason and "belongs to US01" in parked.reason
    assert harness.erp.documents == {}
