"""Stripe payouts and disputes normalised to canonical events; what a payout's balance transactions match."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing_sync.domain.accounting import settlement_target
from billing_sync.domain.accounting.payouts import fee_amount
from billing_sync.domain.errors import EventValidationError, MalformedEventError
from billing_sync.domain.events import DisputeClosedEvent, DisputeCreatedEvent, PayoutFailedEvent, PayoutPaidEvent
from billing_sync.domain.ports import BalanceTransaction
from billing_sync.sources.stripe import HANDLED_EVENT_TYPES, StripeNormaliser
from tests.builders import load_event

RECEIVED = datetime(2026, 11, 20, 6, 12, 45, tzinfo=UTC)


def normalise(payload: dict):
    return StripeNormaliser(default_legal_entity="US01").normalise(payload, received_at=RECEIVED, raw_ref="raw/x.json")


def test_payout_paid_becomes_a_canonical_payout_in_the_settlement_currency():
    # WHEN the payout.paid sample is normalised
    event = normalise(load_event("stripe_payout_paid"))

    # THEN it carries the payout's amount, currency, arrival day and bank account
    assert isinstance(event, PayoutPaidEvent)
    payout = event.data
    assert (payout.payout_id, payout.amount, payout.currency, payout.status) == (
        "po_1QzP7cNx4RkL2mQeW3dTx9Lb",
        58095,
        "USD",
        "paid",
    )
    assert payout.arrival_date == datetime(2026, 11, 20, tzinfo=UTC)
    assert payout.destination == "ba_1QyB4tNx4RkL2mQe8mRk2Zq0"
    assert payout.balance_transaction_id == "txn_1QzP7cNx4RkL2mQeHs2uV8Ke"


def test_payout_failed_carries_the_failure():
    event = normalise(load_event("stripe_payout_failed"))

    assert isinstance(event, PayoutFailedEvent)
    assert (event.data.status, event.data.failure_code) == ("failed", "account_closed")
    assert event.data.failure_message == "The bank account has been closed."


def test_a_dispute_carries_its_embedded_balance_transactions():
    # WHEN the created and won samples are normalised
    created = normalise(load_event("stripe_charge_dispute_created"))
    won = normalise(load_event("stripe_charge_dispute_closed_won"))

    # THEN each names the charge and payment intent, and its funds move as Stripe's balance transactions say
    assert isinstance(created, DisputeCreatedEvent) and isinstance(won, DisputeClosedEvent)
    assert (created.data.charge_id, created.data.payment_intent_id) == (
        "ch_3mVd3xNx4RkL2mQeK0p7Hq2w",
        "pi_3mVd3xNx4RkL2mQeK0p7Hq2w",
    )
    assert [(f.amount, f.fee, f.net, f.reporting_category) for f in created.data.funds] == [
        (-20000, 1500, -21500, "dispute")
    ]
    assert won.data.status == "won"
    assert [(f.amount, f.fee, f.reporting_category) for f in won.data.funds] == [
        (-20000, 1500, "dispute"),
        (20000, 0, "dispute_reversal"),
    ]


@pytest.mark.parametrize(
    ("sample", "where"),
    [("stripe_payout_paid", "amount"), ("stripe_charge_dispute_created", "amount")],
)
def test_a_float_amount_is_malformed_never_coerced(sample, where):
    # GIVEN a payload whose amount is a float
    payload = load_event(sample)
    payload["data"]["object"]["amount"] = 580.95

    # WHEN / THEN it is refused as MALFORMED naming the field
    with pytest.raises(MalformedEventError, match=where):
        normalise(payload)


def test_the_new_stripe_types_are_handled():
    assert {"payout.paid", "payout.failed", "charge.dispute.created", "charge.dispute.closed"} <= set(
        HANDLED_EVENT_TYPES
    )


def _txn(type_: str, *, amount: int, fee: int = 0, source: str | None, category: str | None = None, **kw):
    return BalanceTransaction(
        id=f"txn_1{type_[:6]}Nx4RkL2mQeXXXXXXXX",
        type=type_,
        amount=amount,
        fee=fee,
        net=amount - fee,
        currency="USD",
        created=RECEIVED,
        source=source,
        reporting_category=category or type_,
        **kw,
    )


def test_each_kind_of_balance_transaction_is_matched_to_the_document_that_moved_it_through_clearing():
    payout = "po_1QzP7cNx4RkL2mQeW3dTx9Lb"
    charge = _txn("charge", amount=41623, fee=1237, source="ch_3Q4Syi", payment_intent="pi_3Q4Syi")
    refund = _txn("refund", amount=-10000, source="re_3tlv96")
    dispute = _txn("adjustment", amount=-20000, fee=1500, source="dp_1QkT8m", category="dispute")
    won = _txn("adjustment", amount=20000, source="dp_1QkT8m", category="dispute_reversal")
    returned = _txn("payout_failure", amount=58095, source="po_1Older")
    own = _txn("payout", amount=-58095, source=payout)
    radar = _txn("stripe_fee", amount=-5, source=None, category="fee")

    def target(txn: BalanceTransaction):
        return settlement_target("stripe", txn, payout_id=payout)

    assert target(charge).references == ("payment_intent:pi_3Q4Syi", "charge:ch_3Q4Syi")
    assert target(refund).external_id == "stripe-refund-re_3tlv96"
    assert target(dispute).external_id == "stripe-dispute-dp_1QkT8m"
    assert target(won).external_id == "stripe-dispute-closed-dp_1QkT8m"
    assert target(returned).external_id == "stripe-payout-reversal-po_1Older"
    assert target(own) is None and target(radar) is None
    # fees: a charge's fee, a fee transaction's cost; a dispute's fee is the dispute document's
    assert (fee_amount(charge), fee_amount(radar), fee_amount(dispute)) == (1237, 5, 0)


def test_a_balance_transaction_no_document_books_is_refused():
    with pytest.raises(EventValidationError, match="climate_order_purchase"):
        settlement_target(
            "stripe",
            _txn("climate_order_purchase", amount=-300, source="climorder_1X"),
            payout_id="po_1QzP7cNx4RkL2mQeW3dTx9Lb",
        )
