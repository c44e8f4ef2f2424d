"""Documented outcomes of posting, driven by the `events/` samples through a service that waits by name.

Partial payments and invoice.paid, a second version of a posted invoice, currency mismatch, overpayment,
strict money, stale master data, the waiting horizon, truncated invoices and catalogue master data.
"""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

import pytest

from billing_sync.domain.errors import ExceptionCategory, MalformedEventError
from billing_sync.domain.events import InvoiceLine
from billing_sync.domain.journal import DocumentKind, ErpDocument
from billing_sync.domain.lineage import LineageStatus
from billing_sync.domain.posting import PostingStatus
from billing_sync.domain.posting.service import DEFAULT_WAIT_HORIZON, PostingResult
from billing_sync.erp.ledger import ledger_document_id
from billing_sync.sources.stripe import StripeNormaliser
from tests.builders import invoice_event, load_event, with_event_id
from tests.functional.posting_harness import Clock, WaitingHarness, canonical

RECEIVABLE = "1200 Accounts Receivable"
PAYMENT_CLEARING = "1150 Payment Clearing"
CUSTOMER_CREDIT = "2200 Customer Credit Balances"
REALISED_FX = "7100 Realised FX Gain/Loss"
SERVICES_REVENUE = "4100 Professional Services Revenue"

RENEWAL_INVOICE = "stripe-invoice-in_195RYKNx4RkL2mQeXZrXWZ9C"
ACME_INVOICE = "stripe-invoice-in_1QvDDlNx4RkL2mQejBTD4pmw"
GROWTH_PRICE = "price_1QLvcpNx4RkL2mQeYXYjRKTO"
ONBOARDING_PRICE = "price_1QKsYnNx4RkL2mQeXcHOKv9k"
ONBOARDING_LINE = "il_1QgY2eNx4RkL2mQeAKZJmKeX"


# ---- harness: the posting service with a waiting room and a requeue list --------------------------


class OutcomeHarness(WaitingHarness):
    def documents(self, kind: DocumentKind) -> dict[str, ErpDocument]:
        return {key: doc for key, doc in self.erp.documents.items() if doc.kind is kind}

    def receivable(self, invoice_external_id: str) -> int:
        """Debits minus credits on accounts receivable over the invoice and every document applied to it."""
        return sum(
            line.debit - line.credit
            for doc in self.erp.documents.values()
            if doc.external_id == invoice_external_id or invoice_external_id in doc.applies_to
            for line in doc.journal
            if line.account == RECEIVABLE
        )


@pytest.fixture
def harness() -> OutcomeHarness:
    return OutcomeHarness()


@pytest.fixture
def catalogue_harness() -> OutcomeHarness:
    return OutcomeHarness(catalogue_required=True)


# ---- data builders ---------------------------------------------------------------------------------


def stripe_copy(sample: str, *, event_id: str, created: int | None = None, **object_changes: Any) -> dict[str, Any]:
    """A sample under a new Stripe event id, optionally at another event time and with changed fields."""
    payload = with_event_id(load_event(sample), event_id)
    if created is not None:
        payload["created"] = created
    payload["data"]["object"].update(object_changes)
    return payload


def with_path(payload: dict[str, Any], path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(payload)
    target: Any = out
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value
    return out


# ---- 1. partial payments and invoice.paid ----------------------------------------------------------

RENEWAL_SETUP = ("stripe_customer_created_lifecycle", "stripe_invoice_finalized_renewal_credit_balance")


def test_two_partial_payments_then_invoice_paid_clears_the_receivable(harness: OutcomeHarness) -> None:
    # GIVEN the lifecycle customer and the May renewal invoice (credit balance applied, 14289 due) are posted
    assert [r.status for r in harness.post(*RENEWAL_SETUP)] == [PostingStatus.POSTED] * 2
    assert harness.receivable(RENEWAL_INVOICE) == 14289
    # WHEN both partial payments post, then invoice.paid
    payments = harness.post("stripe_invoice_payment_paid_partial_1", "stripe_invoice_payment_paid_partial_2")
    paid_event = canonical("stripe_invoice_paid_lifecycle_renewal")
    paid = harness.service.post(paid_event)
    # THEN there are exactly two payment documents, one per invoice payment
    assert [r.status for r in payments] == [PostingStatus.POSTED] * 2
    assert set(harness.documents(DocumentKind.PAYMENT)) == {
        "stripe-payment-inpay_1MDFrQNx4RkL2mQexPMHvxjG",
        "stripe-payment-inpay_1PFbgQNx4RkL2mQexVoahCWH",
    }
    # AND the invoice's receivable is its amount_remaining, 0
    assert paid_event.data.amount_paid == 14289
    assert harness.receivable(RENEWAL_INVOICE) == 0
    # AND invoice.paid is POSTED as a completeness check, without an ERP document
    assert paid == PostingResult(paid_event.event_id, PostingStatus.POSTED, ())
    record = harness.lineage.get(paid_event.event_id)
    assert record.status is LineageStatus.POSTED
    assert record.erp_document_ids == ()
    assert record.reason == "complete: payments booked 14289 cover amount paid 14289"
    assert len(harness.erp.documents) == 3


def test_invoice_paid_before_the_second_payment_waits_then_posts_when_it_posts(harness: OutcomeHarness) -> None:
    # GIVEN the renewal invoice and only its first partial payment are posted
    harness.post(*RENEWAL_SETUP, "stripe_invoice_payment_paid_partial_1")
    paid_event = canonical("stripe_invoice_paid_lifecycle_renewal")
    # WHEN invoice.paid arrives before the second payment
    early = harness.service.post(paid_event)
    # THEN it waits for the invoice's payments, by name
    assert early.status is PostingStatus.WAITING
    assert early.waiting_for == f"payments:{RENEWAL_INVOICE}"
    assert harness.lineage.get(paid_event.event_id).status is LineageStatus.WAITING
    assert [w.event_id for w in harness.room.all_waiting()] == [paid_event.event_id]
    # WHEN the second payment posts and the released event is redelivered
    assert harness.post("stripe_invoice_payment_paid_partial_2")[0].status is PostingStatus.POSTED
    released = harness.drain()
    # THEN invoice.paid is POSTED with the complete note and nothing waits any more
    assert released == [PostingResult(paid_event.event_id, PostingStatus.POSTED, ())]
    record = harness.lineage.get(paid_event.event_id)
    assert record.status is LineageStatus.POSTED
    assert record.reason == "complete: payments booked 14289 cover amount paid 14289"
    assert harness.room.all_waiting() == []
    assert harness.receivable(RENEWAL_INVOICE) == 0


# ---- 2. a second version of a posted invoice -------------------------------------------------------


def test_changed_invoice_total_under_a_new_event_id_is_a_validation_exception(harness: OutcomeHarness) -> None:
    # GIVEN the Acme invoice is posted (total 41623)
    first_event = canonical("stripe_invoice_finalized")
    harness.post("stripe_customer_created")
    first = harness.service.post(first_event)
    assert first.status is PostingStatus.POSTED
    # AND the same invoice arrives under a new event id with its onboarding line cut to 20000 (totals recomputed)
    changed_payload = invoice_event(
        lines=[(14700, 1470, 1174), (20000, 0, 1775)], event_id="evt_1QH6KZNx4RkL2mQemUSGRWS1changed"
    )
    changed_event = canonical(changed_payload)
    changed_total = changed_payload["data"]["object"]["total"]
    assert changed_event.data.invoice_id == first_event.data.invoice_id
    assert changed_total == changed_event.data.total == 36179
    # WHEN it is posted
    result = harness.service.post(changed_event)
    # THEN it is parked as a VALIDATION exception naming both events and both totals
    assert result.status is PostingStatus.EXCEPTION
    assert result.category is ExceptionCategory.VALIDATION
    record = harness.lineage.get(changed_event.event_id)
    assert record.status is LineageStatus.EXCEPTION
    assert record.category is ExceptionCategory.VALIDATION
    for named in (first_event.event_id, changed_event.event_id, changed_event.source_event_id, "41623", "36179"):
        assert named in record.reason
    # AND the ERP still holds the one document with the first total
    assert list(harness.erp.documents) == [ACME_INVOICE]
    assert harness.erp.documents[ACME_INVOICE].total == 41623
    assert harness.erp.documents[ACME_INVOICE].source_event_id == first_event.event_id
    # AND the exception record is in the exception queue
    assert [(e.event_id, e.category, e.reason) for e in harness.exceptions.records] == [
        (changed_event.event_id, ExceptionCategory.VALIDATION, record.reason)
    ]


def test_same_invoice_under_a_new_event_id_with_same_amounts_points_at_the_same_document(
    harness: OutcomeHarness,
) -> None:
    # GIVEN the Acme invoice is posted
    harness.post("stripe_customer_created")
    first = harness.post("stripe_invoice_finalized")[0]
    # WHEN Stripe redelivers the same invoice under a new event id, amounts unchanged
    again_event = canonical(with_event_id(load_event("stripe_invoice_finalized"), "evt_1QH6KZNx4RkL2mQemUSGRWS1again"))
    again = harness.service.post(again_event)
    # THEN it is POSTED against the same document, with no conflict and no second document
    assert again == PostingResult(again_event.event_id, PostingStatus.POSTED, first.erp_document_ids)
    assert first.erp_document_ids == (ledger_document_id(ACME_INVOICE),)
    assert list(harness.erp.documents) == [ACME_INVOICE]
    assert harness.exceptions.records == []


# ---- 3. a payment in another currency --------------------------------------------------------------


def test_payment_in_another_currency_than_its_invoice_is_a_validation_exception(harness: OutcomeHarness) -> None:
    # GIVEN the USD Acme invoice is posted
    harness.post("stripe_customer_created", "stripe_invoice_finalized")
    # WHEN its payment arrives in EUR
    payment = canonical(
        stripe_copy("stripe_invoice_payment_paid", event_id="evt_16ZOEbNx4RkL2mQeXwl3du9jeur", currency="eur")
    )
    result = harness.service.post(payment)
    # THEN it is parked VALIDATION naming both currencies, and no payment document exists
    assert result.status is PostingStatus.EXCEPTION
    assert result.category is ExceptionCategory.VALIDATION
    reason = harness.lineage.get(payment.event_id).reason
    assert "EUR" in reason and "USD" in reason
    assert harness.documents(DocumentKind.PAYMENT) == {}
    assert [e.event_id for e in harness.exceptions.records] == [payment.event_id]


# ---- 4. overpayment --------------------------------------------------------------------------------


def test_overpayment_books_the_excess_to_customer_credit_not_receivable(harness: OutcomeHarness) -> None:
    # GIVEN the EUR inclusive-tax invoice (72400 due) and its customer are posted
    assert [r.status for r in harness.post("stripe_customer_created_eu", "stripe_invoice_finalized_inclusive_tax")] == [
        PostingStatus.POSTED
    ] * 2
    # WHEN a payment of 73000 against the 72400 requested arrives
    result = harness.post("stripe_invoice_payment_paid_overpaid")[0]
    # THEN the payment document clears 72400 of receivable and credits 600 to the customer's balance
    assert result.status is PostingStatus.POSTED
    payment = harness.erp.documents["stripe-payment-inpay_1DQECSNx4RkL2mQeW6hniwyL"]
    assert payment.total == 73000
    in_eur = [line for line in payment.journal if line.debit or line.credit]
    assert sorted((line.account, line.debit, line.credit) for line in in_eur) == [
        (PAYMENT_CLEARING, 73000, 0),
        (RECEIVABLE, 0, 72400),
        (CUSTOMER_CREDIT, 0, 600),
    ]
    # AND the receivable leaves US01's books at the invoice's USD amount; the rate difference is realised FX
    assert [line.account for line in payment.journal if line not in in_eur] == [REALISED_FX]
    assert sum(line.functional_debit for line in payment.journal) == sum(
        line.functional_credit for line in payment.journal
    )
    assert harness.receivable("stripe-invoice-in_1i38poNx4RkL2mQe5gvnMH7Q") == 0


# ---- 5. strict money -------------------------------------------------------------------------------

NOT_INTEGERS = pytest.mark.parametrize("amount", ["41623", 41623.0, True], ids=["string", "float", "boolean"])


@NOT_INTEGERS
@pytest.mark.parametrize(
    ("sample", "path"),
    [
        ("stripe_invoice_payment_paid", ("data", "object", "amount_paid")),
        ("stripe_invoice_finalized", ("data", "object", "total")),
        ("stripe_invoice_finalized", ("data", "object", "lines", "data", 1, "amount")),
    ],
    ids=["payment-amount_paid", "invoice-total", "invoice-line-amount"],
)
def test_stripe_amount_not_an_integer_is_malformed_at_normalisation(sample: str, path: tuple, amount: Any) -> None:
    # GIVEN a Stripe sample whose amount is not an integer
    payload = with_path(load_event(sample), path, amount)
    # WHEN it is normalised
    # THEN it is refused as malformed, never coerced
    with pytest.raises(MalformedEventError):
        StripeNormaliser(default_legal_entity="US01").normalise(payload, received_at=Clock().now, raw_ref=None)


@NOT_INTEGERS
def test_canonical_amount_not_an_integer_is_parked_malformed_by_handle(harness: OutcomeHarness, amount: Any) -> None:
    # GIVEN the Acme invoice is posted, so its payment could post
    harness.post("stripe_customer_created", "stripe_invoice_finalized")
    detail = canonical("stripe_invoice_payment_paid").model_dump(mode="json")
    detail["data"]["amount"] = amount
    # WHEN the canonical detail with a non-integer amount is handled
    result = harness.service.handle(detail)
    # THEN it is parked MALFORMED and nothing posts
    assert result.status is PostingStatus.EXCEPTION
    assert result.category is ExceptionCategory.MALFORMED
    record = harness.lineage.get(detail["event_id"])
    assert record.status is LineageStatus.EXCEPTION
    assert "data.amount" in record.reason
    assert [e.category for e in harness.exceptions.records] == [ExceptionCategory.MALFORMED]
    assert harness.documents(DocumentKind.PAYMENT) == {}


def test_canonical_integer_amount_posts_through_handle(harness: OutcomeHarness) -> None:
    # GIVEN the same canonical payment with its integer amount (the control for the test above)
    harness.post("stripe_customer_created", "stripe_invoice_finalized")
    detail = canonical("stripe_invoice_payment_paid").model_dump(mode="json")
    # WHEN it is handled
    result = harness.service.handle(detail)
    # THEN it posts
    assert result.status is PostingStatus.POSTED
    assert list(harness.documents(DocumentKind.PAYMENT)) == ["stripe-payment-inpay_1Z9ZRgNx4RkL2mQexR4OYiGf"]


# ---- 6. stale master data --------------------------------------------------------------------------


def test_customer_update_older_than_the_stored_one_is_superseded(harness: OutcomeHarness) -> None:
    # GIVEN the customer's latest update is stored
    newer = load_event("stripe_customer_updated")
    assert newer["created"] > load_event("stripe_customer_created")["created"]
    harness.post("stripe_customer_created", "stripe_customer_updated")
    customer_id = newer["data"]["object"]["id"]
    stored_erp_customer = harness.erp.customers[f"stripe-customer-{customer_id}"]
    # WHEN an update older than it arrives under a new event id, with another email
    stale_event = canonical(
        stripe_copy(
            "stripe_customer_updated",
            event_id="evt_1QlnYHNx4RkL2mQeckP3szHTstale",
            created=newer["created"] - 3600,
            email="stale@acme-robotics.example.com",
        )
    )
    result = harness.service.post(stale_event)
    # THEN it is recorded POSTED as superseded, and master data and the ERP keep the newer version
    assert result.status is PostingStatus.POSTED
    record = harness.lineage.get(stale_event.event_id)
    assert record.status is LineageStatus.POSTED
    assert record.reason.startswith("superseded")
    _, stored, _ = harness.master_data.customers[("stripe", customer_id)]
    assert stored.email == newer["data"]["object"]["email"] == "billing@acme-robotics.example.com"
    assert harness.erp.customers[f"stripe-customer-{customer_id}"] == stored_erp_customer


def test_price_older_than_the_stored_one_is_superseded(harness: OutcomeHarness) -> None:
    # GIVEN the growth plan price (4900) is stored
    newer = load_event("stripe_price_created_growth_plan")
    harness.post("stripe_price_created_growth_plan")
    # WHEN an older version with another unit amount arrives under a new event id
    stale_event = canonical(
        stripe_copy(
            "stripe_price_created_growth_plan",
            event_id="evt_1jijfJNx4RkL2mQeYeD9D0VVstale",
            created=newer["created"] - 3600,
            unit_amount=5900,
            unit_amount_decimal="5900",
        )
    )
    result = harness.service.post(stale_event)
    # THEN it is recorded POSTED as superseded and master data keeps the newer price
    assert result.status is PostingStatus.POSTED
    assert harness.lineage.get(stale_event.event_id).reason.startswith("superseded")
    stored = harness.master_data.get_record(kind="price", source="stripe", record_id=GROWTH_PRICE)
    assert stored["unit_amount"] == 4900


# ---- 7. the waiting horizon ------------------------------------------------------------------------


def test_payment_whose_invoice_never_comes_is_parked_by_the_sweep_after_the_horizon(harness: OutcomeHarness) -> None:
    # GIVEN a payment whose invoice is never posted
    harness.post("stripe_customer_created")
    payment = canonical("stripe_invoice_payment_paid")
    waiting = harness.service.post(payment)
    assert waiting.status is PostingStatus.WAITING
    assert waiting.waiting_for == f"document:{ACME_INVOICE}"
    # WHEN the sweep runs before the horizon
    harness.clock.advance(DEFAULT_WAIT_HORIZON - timedelta(minutes=5))
    early = harness.service.sweep()
    # THEN it is still held and still WAITING
    assert [(r.event_id, r.status) for r in early] == [(payment.event_id, PostingStatus.WAITING)]
    assert [w.event_id for w in harness.room.all_waiting()] == [payment.event_id]
    assert harness.lineage.get(payment.event_id).status is LineageStatus.WAITING
    assert harness.exceptions.records == []
    # WHEN the clock passes the horizon and the sweep runs again
    harness.clock.advance(timedelta(minutes=10))
    late = harness.service.sweep()
    # THEN it is parked DEPENDENCY_PENDING naming the missing invoice, and nothing waits any more
    assert late == [
        PostingResult(payment.event_id, PostingStatus.EXCEPTION, category=ExceptionCategory.DEPENDENCY_PENDING)
    ]
    record = harness.lineage.get(payment.event_id)
    assert record.status is LineageStatus.EXCEPTION
    assert record.category is ExceptionCategory.DEPENDENCY_PENDING
    assert f"document:{ACME_INVOICE}" in record.reason
    assert [(e.event_id, e.category) for e in harness.exceptions.records] == [
        (payment.event_id, ExceptionCategory.DEPENDENCY_PENDING)
    ]
    assert harness.room.all_waiting() == []
    assert harness.erp.documents == {}


# ---- 8. truncated invoices -------------------------------------------------------------------------


def test_truncated_invoice_waits_and_is_never_booked(harness: OutcomeHarness) -> None:
    # GIVEN an invoice whose line list is truncated (has_more) and its customer
    harness.post("stripe_customer_created")
    truncated = load_event("stripe_invoice_finalized")
    truncated["data"]["object"]["lines"]["has_more"] = True
    event = canonical(truncated)
    # WHEN it is posted, and delivered again
    first = harness.service.post(event)
    again = harness.service.post(event)
    # THEN it waits for its complete line list and nothing is booked
    for result in (first, again):
        assert result.status is PostingStatus.WAITING
        assert result.waiting_for.startswith("invoice-lines:")
        assert result.waiting_for.endswith(event.data.invoice_id)
    assert harness.lineage.get(event.event_id).status is LineageStatus.WAITING
    assert harness.erp.documents == {}
    # AND past the horizon it is parked, still unbooked
    harness.clock.advance(DEFAULT_WAIT_HORIZON + timedelta(minutes=1))
    assert [r.status for r in harness.service.sweep()] == [PostingStatus.EXCEPTION]
    assert harness.erp.documents == {}


class _InvoiceLinesApi:
    """The part of the Stripe API a truncated invoice needs: its whole line list (None until Stripe has it)."""

    def __init__(self, lines: dict[str, tuple[InvoiceLine, ...]]) -> None:
        self.lines = lines
        self.asked: list[str] = []

    def complete_invoice_lines(self, invoice_id: str) -> tuple[InvoiceLine, ...] | None:
        self.asked.append(invoice_id)
        return self.lines.get(invoice_id)


def test_truncated_invoice_is_booked_from_the_whole_line_list_the_api_returns() -> None:
    # GIVEN the Acme invoice delivered with only its first line and has_more, and a Stripe API that returns
    # every line of it (as /v1/invoices/{id}/lines would, read through the same wire model)
    whole = canonical("stripe_invoice_finalized")
    truncated_payload = load_event("stripe_invoice_finalized")
    truncated_payload["data"]["object"]["lines"]["data"] = truncated_payload["data"]["object"]["lines"]["data"][:1]
    truncated_payload["data"]["object"]["lines"]["has_more"] = True
    truncated = canonical(truncated_payload)
    assert len(truncated.data.lines) < len(whole.data.lines) and not truncated.data.lines_complete
    api = _InvoiceLinesApi({})
    harness = OutcomeHarness(reader=api)  # type: ignore[arg-type]
    harness.post("stripe_customer_created")
    # WHEN it is posted before the API has the lines, and again once it has them
    waiting = harness.service.post(truncated)
    api.lines[whole.data.invoice_id] = whole.data.lines
    harness.clock.advance(timedelta(minutes=15))
    [swept] = harness.service.sweep()
    # THEN it first waits for the API by name, then posts the same document as the complete invoice would
    assert waiting.status is PostingStatus.WAITING
    assert waiting.waiting_for == f"stripe-api:stripe:{whole.data.invoice_id}"
    assert swept.status is PostingStatus.POSTED
    posted = harness.erp.documents[ACME_INVOICE]
    reference = OutcomeHarness()
    reference.post("stripe_customer_created", "stripe_invoice_finalized")
    assert posted.journal == reference.erp.documents[ACME_INVOICE].journal
    assert [line.source_line_id for line in posted.lines] == [line.line_id for line in whole.data.lines]
    assert api.asked == [whole.data.invoice_id] * 3


def test_truncated_invoice_whose_api_lines_do_not_add_up_is_parked() -> None:
    # GIVEN the API returns only the first line of the truncated Acme invoice (not the invoice's subtotal)
    whole = canonical("stripe_invoice_finalized")
    payload = load_event("stripe_invoice_finalized")
    payload["data"]["object"]["lines"]["has_more"] = True
    harness = OutcomeHarness(reader=_InvoiceLinesApi({whole.data.invoice_id: whole.data.lines[:1]}))  # type: ignore[arg-type]
    harness.post("stripe_customer_created")
    # WHEN it is posted
    result = harness.service.post(canonical(payload))
    # THEN it is parked VALIDATION, nothing booked from part of its lines
    assert (result.status, result.category) == (PostingStatus.EXCEPTION, ExceptionCategory.VALIDATION)
    assert harness.erp.documents == {}


# ---- 9. catalogue master data ----------------------------------------------------------------------


def test_invoice_waits_for_its_catalogue_then_posts_with_one_off_revenue(catalogue_harness: OutcomeHarness) -> None:
    harness = catalogue_harness
    # GIVEN catalogue master data is required and only the customer is known
    harness.post("stripe_customer_created")
    invoice = canonical("stripe_invoice_finalized")
    # WHEN the invoice arrives before its prices and products
    first = harness.service.post(invoice)
    # THEN it waits for a price of its lines
    assert first.status is PostingStatus.WAITING
    assert first.waiting_for in {f"price:stripe:{GROWTH_PRICE}", f"price:stripe:{ONBOARDING_PRICE}"}
    assert harness.erp.documents == {}
    # WHEN the products and prices are posted, each release being redelivered
    results = []
    for sample in (
        "stripe_product_created_growth_plan",
        "stripe_price_created_growth_plan",
        "stripe_product_created_onboarding",
        "stripe_price_created_onboarding",
    ):
        assert harness.post(sample)[0].status is PostingStatus.POSTED
        results += harness.drain()
    # THEN the invoice posts once, last of all
    assert [r.status for r in results][-1] is PostingStatus.POSTED
    assert [r.status for r in results].count(PostingStatus.POSTED) == 1
    assert harness.lineage.get(invoice.event_id).status is LineageStatus.POSTED
    assert harness.room.all_waiting() == []
    document = harness.erp.documents[ACME_INVOICE]
    # AND the onboarding line is one-off revenue, credited to professional services revenue
    onboarding = next(line for line in document.lines if line.source_line_id == ONBOARDING_LINE)
    assert onboarding.revenue_class == "one_off"
    services = [line for line in document.journal if line.account == SERVICES_REVENUE]
    assert services and all(line.debit == 0 for line in services)
    assert sum(line.credit for line in services) == onboarding.price == 25000
