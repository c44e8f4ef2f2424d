"""charge.dispute.created / .closed: disputed funds leave clearing with the dispute fee, then come back (won) or
are lost; each waits for the disputed payment by reference.

Samples: dp_1QkT8mNx4RkL2mQeDq5Vw2Hc disputes the 20000 payment of the one-off invoice (fee 1500) and is won;
dp_1QmB2vNx4RkL2mQeLs8Pc4Kd disputes the 4289 second partial payment of the May renewal and is lost.
"""

from __future__ import annotations

from collections import Counter

import pytest

from billing_sync.domain.journal import DocumentKind, ErpDocument
from billing_sync.domain.posting import PostingStatus
from billing_sync.domain.posting.resolver import reference_key
from tests.builders import load_event
from tests.functional.posting_harness import WaitingHarness

CLEARING = "1150 Payment Clearing"
DISPUTED = "1170 Disputed Payments"
FEES = "6100 Payment Processing Fees"
LOSSES = "6520 Chargeback Losses"
WON = "dp_1QkT8mNx4RkL2mQeDq5Vw2Hc"
LOST = "dp_1QmB2vNx4RkL2mQeLs8Pc4Kd"
BOOKED = (
    "stripe_customer_created_lifecycle",
    "stripe_invoice_finalized_one_off_uncollectible",
    "stripe_invoice_finalized_renewal_credit_balance",
    "stripe_invoice_payment_paid_uncollectible_partial",
    "stripe_invoice_payment_paid_partial_2",
)


@pytest.fixture
def booked() -> WaitingHarness:
    # GIVEN the lifecycle customer, two invoices and the two card payments that get disputed are booked
    harness = WaitingHarness()
    harness.post(*BOOKED)
    return harness


def entries(document: ErpDocument | None) -> Counter[tuple[str, int, int]]:
    assert document is not None
    return Counter((line.account, line.debit, line.credit) for line in document.journal)


def balance(harness: WaitingHarness, account: str) -> int:
    return sum(
        line.net
        for kind in (DocumentKind.DISPUTE, DocumentKind.DISPUTE_REVERSAL)
        for doc in harness.erp.list_documents(kind)
        for line in doc.journal
        if line.account == account
    )


def test_a_dispute_takes_the_amount_and_the_fee_out_of_clearing(booked):
    # WHEN the dispute opens
    [result] = booked.post("stripe_charge_dispute_created")

    # THEN disputed funds hold the amount, the fee is an expense, clearing gives up both
    assert result.status is PostingStatus.POSTED
    document = booked.erp.get_document(f"stripe-dispute-{WON}")
    assert entries(document) == Counter({(DISPUTED, 20000, 0): 1, (FEES, 1500, 0): 1, (CLEARING, 0, 21500): 1})
    assert document is not None and document.applies_to == ("stripe-payment-inpay_1mVd3xNx4RkL2mQeQ7u2Pa0c",)
    assert str(document.posting_date) == "2026-08-05"


def test_a_won_dispute_reinstates_the_funds_and_empties_disputed_funds(booked):
    # GIVEN the dispute is open
    booked.post("stripe_charge_dispute_created")

    # WHEN it is won (Stripe keeps the fee)
    [result] = booked.post("stripe_charge_dispute_closed_won")

    # THEN clearing gets the amount back and disputed funds are empty; the fee stays an expense
    assert result.status is PostingStatus.POSTED
    assert entries(booked.erp.get_document(f"stripe-dispute-closed-{WON}")) == Counter(
        {(CLEARING, 20000, 0): 1, (DISPUTED, 0, 20000): 1}
    )
    assert balance(booked, DISPUTED) == 0
    assert balance(booked, CLEARING) == -1500
    assert balance(booked, FEES) == 1500


def test_a_won_dispute_whose_fee_stripe_returned_credits_the_fee_back(booked):
    # GIVEN the dispute is open, and the won event's reinstatement returns the 1500 fee
    booked.post("stripe_charge_dispute_created")
    payload = load_event("stripe_charge_dispute_closed_won")
    reinstated = payload["data"]["object"]["balance_transactions"][1]
    reinstated.update(fee=-1500, net=21500)

    # WHEN it is won
    booked.post(payload)

    # THEN clearing and the fee account are both back where they were
    assert balance(booked, DISPUTED) == 0
    assert balance(booked, CLEARING) == 0
    assert balance(booked, FEES) == 0


def test_a_lost_dispute_books_the_loss_even_when_its_opening_was_never_delivered(booked):
    # WHEN only the closing event of the lost dispute arrives
    [result] = booked.post("stripe_charge_dispute_closed_lost")

    # THEN the withdrawal and the loss are both booked: the loss is an expense, disputed funds are empty
    assert result.status is PostingStatus.POSTED
    assert entries(booked.erp.get_document(f"stripe-dispute-{LOST}")) == Counter(
        {(DISPUTED, 4289, 0): 1, (FEES, 1500, 0): 1, (CLEARING, 0, 5789): 1}
    )
    assert entries(booked.erp.get_document(f"stripe-dispute-closed-{LOST}")) == Counter(
        {(LOSSES, 4289, 0): 1, (DISPUTED, 0, 4289): 1}
    )
    assert balance(booked, DISPUTED) == 0


def test_a_dispute_before_its_payment_waits_for_it_by_reference_and_posts_after_it():
    # GIVEN the invoice is booked but not its payment
    harness = WaitingHarness()
    harness.post("stripe_customer_created_lifecycle", "stripe_invoice_finalized_one_off_uncollectible")

    # WHEN the dispute arrives first
    [waiting] = harness.post("stripe_charge_dispute_created")

    # THEN it waits for the payment by its payment intent
    assert waiting.status is PostingStatus.WAITING
    assert waiting.waiting_for == reference_key("payment_intent:pi_3mVd3xNx4RkL2mQeK0p7Hq2w")

    # WHEN the payment posts and the released event is delivered
    harness.post("stripe_invoice_payment_paid_uncollectible_partial")
    released = harness.drain()

    # THEN the dispute posts
    assert [result.status for result in released] == [PostingStatus.POSTED]
    assert harness.erp.get_document(f"stripe-dispute-{WON}") is not None


def test_an_inquiry_that_withdrew_nothing_books_nothing(booked):
    # GIVEN a dispute that is an inquiry: no balance transactions
    payload = load_event("stripe_charge_dispute_created")
    payload["data"]["object"].update(status="warning_needs_response", balance_transactions=[])

    # WHEN it posts
    [result] = booked.post(payload)

    # THEN it is ignored
    assert result.status is PostingStatus.IGNORED
    assert not list(booked.erp.list_documents(DocumentKind.DISPUTE))
