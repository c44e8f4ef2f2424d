"""payout.paid / payout.failed end to end: the posting service reads the payout's balance transactions from the
local Stripe double (served from events/stripe_api/, as in the demo) and books fees and the bank deposit.

The sample payout po_1QzP7cNx4RkL2mQeW3dTx9Lb settles the five USD card charges of the samples (16075, 10000,
4289, 20000, 41623; fees 496 + 320 + 154 + 610 + 1237 = 2817) and three refunds (16075, 5000, 10000):
91987 - 2817 - 31075 = 58095 to the bank.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from billing_sync.domain.errors import ExceptionCategory
from billing_sync.domain.events import RefundIssuedEvent
from billing_sync.domain.journal import DocumentKind, ErpDocument
from billing_sync.domain.lineage import LineageStatus
from billing_sync.domain.ports import SourceReader
from billing_sync.domain.posting import PostingService, PostingStatus
from billing_sync.domain.refunds import RefundSaga
from billing_sync.sources.stripe.api import StripeApiReader
from billing_sync_ops.stripe_double import StripeDouble
from tests.builders import EVENTS_DIR, load_event
from tests.fakes.stripe_api import TEST_KEY
from tests.functional.posting_harness import CLAIM_LEASE, WaitingHarness, canonical, mapping

CLEARING = "1150 Payment Clearing"
BANK = "1000 Operating Bank"
FEES = "6100 Payment Processing Fees"
PAYOUT = "po_1QzP7cNx4RkL2mQeW3dTx9Lb"
PAYOUT_AMOUNT = 58095
FEES_TOTAL = 2817
CUSTOMERS_AND_INVOICES = (
    "stripe_customer_created_lifecycle",
    "stripe_customer_created",
    "stripe_invoice_finalized_proration_upgrade",
    "stripe_invoice_finalized_renewal_credit_balance",
    "stripe_invoice_finalized_one_off_uncollectible",
    "stripe_invoice_finalized",
    "stripe_credit_note_created_post_payment",
)
PAYMENTS = (
    "stripe_invoice_payment_paid_first",
    "stripe_invoice_payment_paid_partial_1",
    "stripe_invoice_payment_paid_partial_2",
    "stripe_invoice_payment_paid_uncollectible_partial",
    "stripe_invoice_payment_paid",
)
REFUNDS = ("stripe_refund_created_full", "stripe_refund_created_credit_note", "stripe_refund_created_partial_1")


@dataclasses.dataclass
class PayoutHarness(WaitingHarness):
    """The deployed posting service with a Stripe API reader."""

    reader: SourceReader | None = None

    @property
    def service(self) -> PostingService:
        return PostingService(
            erp=self.erp,
            lineage=self.lineage,
            master_data=self.master_data,
            exceptions=self.exceptions,
            mapping=mapping(),
            clock=self.clock,
            claim_lease=CLAIM_LEASE,
            waiting_room=self.waiting_room,
            requeue=self.requeue,
            wait_horizon=self.wait_horizon,
            catalogue_required=self.catalogue_required,
            workflows=self.workflows,
            bookkeeper=getattr(self, "bookkeeper", None),
            reader=self.reader,
        )

    def refund(self, sample: str) -> None:
        """Posts the refund and runs the saga's steps as the state machine does when its payment is booked."""
        event = canonical(sample)
        assert isinstance(event, RefundIssuedEvent)
        started = self.service.post(event)
        execution: dict[str, Any] = {"event": event.model_dump(mode="json"), "name": started.waiting_for}
        saga = RefundSaga(
            erp=self.erp,
            master_data=self.master_data,
            lineage=self.lineage,
            exceptions=self.exceptions,
            mapping=mapping(),
            clock=self.clock,
            **({"bookkeeper": self.bookkeeper} if hasattr(self, "bookkeeper") else {}),
        )
        execution["deps"] = saga.run("load", execution)
        assert execution["deps"]["ready"] is True, execution["deps"]
        if execution["deps"]["credit_memo_needed"]:
            execution["credit_memo_result"] = saga.run("credit_memo", execution)
        execution["refund_result"] = saga.run("refund", execution)
        saga.run("record", execution)


@pytest.fixture
def stripe_api() -> Iterator[StripeDouble]:
    with StripeDouble(EVENTS_DIR / "stripe_api") as double:
        yield double


@pytest.fixture
def harness(stripe_api: StripeDouble) -> PayoutHarness:
    return PayoutHarness(reader=StripeApiReader(stripe_api.url, lambda: TEST_KEY, timeout_seconds=2.0))


@pytest.fixture
def booked(harness: PayoutHarness) -> PayoutHarness:
    # GIVEN the customers, invoices, the five card payments and the three refunds of the samples are booked
    harness.post(*CUSTOMERS_AND_INVOICES, *PAYMENTS)
    for sample in REFUNDS:
        harness.refund(sample)
    return harness


def clearing_net(documents: list[ErpDocument]) -> int:
    return sum(line.net for document in documents for line in document.journal if line.account == CLEARING)


def all_documents(harness: PayoutHarness) -> list[ErpDocument]:
    return [doc for kind in DocumentKind for doc in harness.erp.list_documents(kind)]


def test_a_payout_clears_the_charges_refunds_and_fees_it_settles_to_exactly_zero(booked):
    # GIVEN clearing holds the charges less the refunds
    assert clearing_net(all_documents(booked)) == 91987 - 31075

    # WHEN the payout is paid
    [result] = booked.post("stripe_payout_paid")

    # THEN one fee document per charge and the deposit are posted, and clearing nets to zero to the cent
    assert result.status is PostingStatus.POSTED
    fees = list(booked.erp.list_documents(DocumentKind.FEE))
    assert sorted(doc.total for doc in fees) == [154, 320, 496, 610, 1237]
    assert {doc.external_id for doc in fees} >= {"stripe-fee-txn_3Q4SyiNx4RkL2mQerHzQjS0T"}
    assert all("stripe_fee" in (doc.memo or "") for doc in fees)
    [payout] = booked.erp.list_documents(DocumentKind.PAYOUT)
    assert payout.external_id == f"stripe-payout-{PAYOUT}"
    assert {(line.account, line.debit, line.credit) for line in payout.journal} == {
        (BANK, PAYOUT_AMOUNT, 0),
        (CLEARING, 0, PAYOUT_AMOUNT),
    }
    assert str(payout.posting_date) == "2026-11-20"
    assert sum(doc.total for doc in fees) == FEES_TOTAL
    assert clearing_net(all_documents(booked)) == 0


def test_a_payout_replayed_posts_nothing_twice(booked):
    # GIVEN the payout is posted
    booked.post("stripe_payout_paid")
    before = len(all_documents(booked))

    # WHEN the same event is delivered again
    [again] = booked.post("stripe_payout_paid")

    # THEN it is a duplicate and the ledger is unchanged
    assert again.status is PostingStatus.DUPLICATE
    assert len(all_documents(booked)) == before


def test_a_payout_waits_naming_every_unmatched_transaction_and_posts_once_they_are_booked(harness):
    # GIVEN everything but the Acme payment (41623) and its partial refund (10000) is booked
    harness.post(*CUSTOMERS_AND_INVOICES, *(sample for sample in PAYMENTS if sample != "stripe_invoice_payment_paid"))
    for sample in REFUNDS[:2]:
        harness.refund(sample)

    # WHEN the payout is paid
    [waiting] = harness.post("stripe_payout_paid")

    # THEN it waits for the first missing document by name, its lineage names both balance transactions, and
    # nothing is booked
    assert waiting.status is PostingStatus.WAITING
    record = harness.lineage.get(waiting.event_id)
    assert record is not None and record.status is LineageStatus.WAITING
    assert "txn_3Q4SyiNx4RkL2mQerHzQjS0T" in record.reason and "txn_36ZayfNx4RkL2mQelAOEupjS" in record.reason
    assert "2 balance transaction(s)" in record.reason
    assert not list(harness.erp.list_documents(DocumentKind.PAYOUT))
    assert not list(harness.erp.list_documents(DocumentKind.FEE))

    # WHEN the Acme payment posts (releasing what waits for it by reference) and its refund is booked
    harness.post("stripe_invoice_payment_paid")
    harness.drain()
    harness.refund("stripe_refund_created_partial_1")
    swept = harness.service.sweep()

    # THEN the payout posts and clearing is zero
    assert [result.status for result in swept if result.event_id == waiting.event_id] == [PostingStatus.POSTED]
    assert clearing_net(all_documents(harness)) == 0


def test_a_payout_still_unmatched_past_the_horizon_is_parked_naming_each_transaction(harness):
    # GIVEN only the customers and invoices are booked, and the payout waits
    harness.post(*CUSTOMERS_AND_INVOICES)
    [waiting] = harness.post("stripe_payout_paid")
    assert waiting.status is PostingStatus.WAITING

    # WHEN the horizon passes and the sweep runs
    harness.clock.advance(timedelta(days=3, minutes=1))
    harness.service.sweep()

    # THEN the payout is parked as DEPENDENCY_PENDING naming all eight unmatched balance transactions
    [parked] = harness.exceptions.records
    assert parked.category is ExceptionCategory.DEPENDENCY_PENDING
    for txn in (
        "txn_3wnmWZ",
        "txn_3vD6Vl",
        "txn_3ioRkY",
        "txn_3mVd3x",
        "txn_3Q4Syi",
        "txn_3s8nuF",
        "txn_3YSEeM",
        "txn_36Zayf",
    ):
        assert txn in parked.reason
    assert not list(harness.erp.list_documents(DocumentKind.PAYOUT))


def test_a_payout_whose_amount_is_not_the_net_of_its_transactions_is_refused_naming_the_difference(booked):
    # GIVEN a payout.paid whose amount is one cent more than its balance transactions net
    payload = load_event("stripe_payout_paid")
    payload["data"]["object"]["amount"] = PAYOUT_AMOUNT + 1

    # WHEN it posts
    [result] = booked.post(payload)

    # THEN it is VALIDATION naming the difference, and nothing is booked
    assert (result.status, result.category) == (PostingStatus.EXCEPTION, ExceptionCategory.VALIDATION)
    [parked] = booked.exceptions.records
    assert "net 58095" in parked.reason and "difference of 1" in parked.reason
    assert not list(booked.erp.list_documents(DocumentKind.FEE))


def test_a_payout_the_bank_returned_reverses_the_deposit(booked):
    # GIVEN the payout is booked
    booked.post("stripe_payout_paid")

    # WHEN it fails (account closed)
    [failed] = booked.post("stripe_payout_failed")

    # THEN the deposit is reversed: bank back to zero, the payout's amount back in clearing, fees stay booked once
    assert failed.status is PostingStatus.POSTED
    reversal = booked.erp.get_document(f"stripe-payout-reversal-{PAYOUT}")
    assert reversal is not None
    assert {(line.account, line.debit, line.credit) for line in reversal.journal} == {
        (CLEARING, PAYOUT_AMOUNT, 0),
        (BANK, 0, PAYOUT_AMOUNT),
    }
    assert "account_closed" in (reversal.memo or "")
    documents = all_documents(booked)
    assert sum(line.net for doc in documents for line in doc.journal if line.account == BANK) == 0
    assert clearing_net(documents) == PAYOUT_AMOUNT
    assert len(list(booked.erp.list_documents(DocumentKind.FEE))) == 5


def test_a_payout_failed_before_its_payout_was_booked_books_fees_deposit_and_reversal_once(booked):
    # GIVEN payout.failed arrives first (payout.paid is late)
    [failed] = booked.post("stripe_payout_failed")

    # WHEN payout.paid arrives after it
    [paid] = booked.post("stripe_payout_paid")

    # THEN the fees, the deposit and its reversal are each booked once, and the bank nets to zero
    assert (failed.status, paid.status) == (PostingStatus.POSTED, PostingStatus.POSTED)
    documents = all_documents(booked)
    assert len([doc for doc in documents if doc.kind is DocumentKind.PAYOUT]) == 2
    assert len([doc for doc in documents if doc.kind is DocumentKind.FEE]) == 5
    assert sum(line.net for doc in documents for line in doc.journal if line.account == BANK) == 0


def test_without_the_api_the_payout_waits_for_it_by_name(booked, stripe_api):
    # GIVEN a payout the API does not know yet
    payload = load_event("stripe_payout_paid")
    payload["data"]["object"]["id"] = "po_1R2xNotYetNx4RkL2mQeAbCd"

    # WHEN it posts
    [result] = booked.post(payload)

    # THEN it waits for the payout by its source-object key
    assert result.status is PostingStatus.WAITING
    assert result.waiting_for == "stripe-api:stripe:po_1R2xNotYetNx4RkL2mQeAbCd"


def test_the_sample_payouts_balance_transactions_are_coherent():
    # GIVEN the double's fixture for the sample payout
    listing = json.loads((EVENTS_DIR / "stripe_api" / f"balance_transactions_{PAYOUT}.json").read_text())
    txns = listing["data"]

    # THEN each has net = amount - fee and fee = Σ fee_details, the charges cost 2.9 % + 30¢, and all net to zero
    for txn in txns:
        assert txn["net"] == txn["amount"] - txn["fee"]
        assert txn["fee"] == sum(detail["amount"] for detail in txn["fee_details"])
        if txn["type"] == "charge":
            assert txn["fee"] == (txn["amount"] * 29 + 500) // 1000 + 30
    assert sum(txn["net"] for txn in txns) == 0
    assert load_event("stripe_payout_paid")["data"]["object"]["amount"] == PAYOUT_AMOUNT
