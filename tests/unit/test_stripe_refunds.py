"""Stripe refunds become refund.issued with the ids the posting side links by; payments carry those ids too."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from billing_sync.domain.errors import MalformedEventError
from billing_sync.domain.events import PaymentSettledEvent, RefundIssuedEvent, derive_event_id
from billing_sync.sources.stripe import HANDLED_EVENT_TYPES, StripeNormaliser
from tests.builders import load_event

RECEIVED_AT = datetime(2026, 11, 20, 16, 0, tzinfo=UTC)
FALLBACK_ENTITY = "XX99"

ACME = "cus_QfR7xKp2LmN9aT"
LIFECYCLE = "cus_ICoOwDslURDSB4"
ACME_PAYMENT = ("pi_3Q4SyiNx4RkL2mQerHzQjS0T", "ch_3Q4SyiNx4RkL2mQerHzQjS0T")
UPGRADE_PAYMENT = ("pi_3wnmWZNx4RkL2mQeINQNv9NC", "ch_3wnmWZNx4RkL2mQeINQNv9NC")
RENEWAL_PAYMENT_1 = ("pi_3vD6VlNx4RkL2mQem9iYokEu", "ch_3vD6VlNx4RkL2mQem9iYokEu")
LINK_SALE = ("pi_3JPW6QNx4RkL2mQe1gwnKjzR", "ch_3JPW6QNx4RkL2mQe1gwnKjzR")
FULL_REFUND = "re_39HWzUNx4RkL2mQeFXpolQZl"
PARTIAL_2_REFUND = "re_3a4zFiNx4RkL2mQePseduehq"


@pytest.fixture
def normaliser() -> StripeNormaliser:
    return StripeNormaliser(default_legal_entity=FALLBACK_ENTITY)


def normalise(normaliser: StripeNormaliser, payload: dict[str, Any]):
    return normaliser.normalise(payload, received_at=RECEIVED_AT, raw_ref=f"raw/stripe/{payload['id']}.json")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def refund_of(event: dict[str, Any]) -> dict[str, Any]:
    """The refund a sample carries: the event's object, or the first refund a charge embeds."""
    obj = event["data"]["object"]
    return obj if obj["object"] == "refund" else obj["refunds"]["data"][0]


def charge_refunded_with(*refunds: dict[str, Any]) -> dict[str, Any]:
    """The charge.refunded sample embedding the given refunds (newest anywhere in the list)."""
    event = copy.deepcopy(load_event("stripe_charge_refunded"))
    event["data"]["object"]["refunds"]["data"] = list(refunds)
    return event


def later_refund(refund: dict[str, Any], *, refund_id: str, amount: int, seconds_later: int) -> dict[str, Any]:
    return {**copy.deepcopy(refund), "id": refund_id, "amount": amount, "created": refund["created"] + seconds_later}


# ---- refund.created / refund.updated -> refund.issued -------------------------------------------

EXPECTED = {
    # sample: (refund id, status, (payment intent, charge), customer, amount, refunded at, reason)
    "stripe_refund_created_credit_note": (
        "re_3TLqEDNx4RkL2mQeim5sWn6K",
        "succeeded",
        RENEWAL_PAYMENT_1,
        LIFECYCLE,
        5000,
        "2026-05-25 13:05:51",
        None,
    ),
    "stripe_refund_created_full": (
        FULL_REFUND,
        "succeeded",
        UPGRADE_PAYMENT,
        LIFECYCLE,
        16075,
        "2026-04-27 10:15:00",
        "requested_by_customer",
    ),
    "stripe_refund_created_partial_1": (
        "re_3tlv96Nx4RkL2mQegsa6mGJa",
        "succeeded",
        ACME_PAYMENT,
        ACME,
        10000,
        "2026-11-09 14:30:00",
        "requested_by_customer",
    ),
    "stripe_refund_created_partial_2": (
        PARTIAL_2_REFUND,
        "succeeded",
        ACME_PAYMENT,
        ACME,
        5000,
        "2026-11-12 09:00:00",
        None,
    ),
    "stripe_refund_updated_failed": (PARTIAL_2_REFUND, "failed", ACME_PAYMENT, ACME, 5000, "2026-11-12 09:00:00", None),
    "stripe_refund_created_over": (
        "re_34M5IJNx4RkL2mQeHTQ35RYW",
        "succeeded",
        ACME_PAYMENT,
        ACME,
        35000,
        "2026-11-18 10:00:00",
        "requested_by_customer",
    ),
    "stripe_refund_created_unlinked": (
        "re_3xiGnTNx4RkL2mQehqVnCDga",
        "succeeded",
        LINK_SALE,
        ACME,
        25000,
        "2026-11-20 15:45:00",
        "requested_by_customer",
    ),
    "stripe_charge_refunded": (
        FULL_REFUND,
        "succeeded",
        UPGRADE_PAYMENT,
        LIFECYCLE,
        16075,
        "2026-04-27 10:15:00",
        "requested_by_customer",
    ),
}


@pytest.mark.parametrize("sample", sorted(EXPECTED))
def test_each_refund_sample_becomes_refund_issued_with_its_ids_and_amount(normaliser, sample):
    # GIVEN a refund sample and what it should say
    payload = load_event(sample)
    refund_id, status, (payment_intent, charge), customer, amount, refunded_at, reason = EXPECTED[sample]

    # WHEN
    event = normalise(normaliser, payload)

    # THEN it is refund.issued for that refund, linked by payment intent and charge, never to an invoice
    assert isinstance(event, RefundIssuedEvent)
    assert event.event_id == derive_event_id("stripe", payload["id"])
    assert (event.source_event_type, event.legal_entity) == (payload["type"], FALLBACK_ENTITY)
    refund = event.data
    assert (refund.refund_id, refund.status, refund.payment_intent_id, refund.charge_id) == (
        refund_id,
        status,
        payment_intent,
        charge,
    )
    assert (refund.customer_id, refund.currency, refund.amount) == (customer, "USD", amount)
    assert (refund.refunded_at, refund.reason) == (at(refunded_at), reason)
    assert (refund.invoice_id, refund.credit_note_id) == (None, None)


def test_the_charge_refunded_and_refund_created_samples_report_the_same_refund(normaliser):
    # GIVEN the full refund as refund.created and as charge.refunded
    created = normalise(normaliser, load_event("stripe_refund_created_full"))
    refunded = normalise(normaliser, load_event("stripe_charge_refunded"))

    # WHEN / THEN both carry the same refund (the saga keys on its id, so it posts once)
    assert created.data == refunded.data
    assert created.event_id != refunded.event_id


def test_a_failed_refund_is_still_refund_issued(normaliser):
    # GIVEN the refund.updated sample of a refund that failed after it succeeded
    payload = load_event("stripe_refund_updated_failed")

    # WHEN
    event = normalise(normaliser, payload)

    # THEN it is reported with its failed status, so the saga can reverse what it booked
    assert isinstance(event, RefundIssuedEvent)
    assert (event.data.refund_id, event.data.status) == (PARTIAL_2_REFUND, "failed")
    assert event.occurred_at > event.data.refunded_at


def test_a_credit_note_named_in_refund_metadata_is_carried(normaliser):
    # GIVEN the credit-note refund with the credit note in its metadata (Stripe's Refund has no such field)
    payload = load_event("stripe_refund_created_credit_note")
    payload["data"]["object"]["metadata"] = {"credit_note": "cn_1WLMC2Nx4RkL2mQelle3gxTq"}

    # WHEN
    event = normalise(normaliser, payload)

    # THEN the credit note is linked; the invoice stays unknown
    assert (event.data.credit_note_id, event.data.invoice_id) == ("cn_1WLMC2Nx4RkL2mQelle3gxTq", None)


def test_refund_metadata_legal_entity_is_used(normaliser):
    # GIVEN a refund whose metadata names a legal entity
    payload = load_event("stripe_refund_created_partial_1")
    payload["data"]["object"]["metadata"] = {"legal_entity": "US01"}

    # WHEN / THEN
    assert normalise(normaliser, payload).legal_entity == "US01"


@pytest.mark.parametrize("sample", ["stripe_refund_created_partial_1", "stripe_charge_refunded"])
@pytest.mark.parametrize("amount", ["10000", 10000.0, True, None])
def test_a_refund_amount_that_is_not_an_integer_is_malformed(normaliser, sample, amount):
    # GIVEN a refund (or a charge's embedded refund) whose amount is a string, float, boolean or missing
    payload = load_event(sample)
    refund_of(payload)["amount"] = amount

    # WHEN / THEN it is refused, never coerced
    with pytest.raises(MalformedEventError, match="amount"):
        normalise(normaliser, payload)


def test_a_refund_of_neither_a_charge_nor_a_payment_intent_is_malformed(normaliser):
    # GIVEN a refund that names nothing it refunds
    payload = load_event("stripe_refund_created_unlinked")
    payload["data"]["object"].update(charge=None, payment_intent=None)

    # WHEN / THEN
    with pytest.raises(MalformedEventError, match="neither a charge nor a payment intent"):
        normalise(normaliser, payload)


def test_a_refund_status_stripe_does_not_document_is_malformed(normaliser):
    # GIVEN a refund in a status the canonical model does not know
    payload = load_event("stripe_refund_created_partial_1")
    payload["data"]["object"]["status"] = "reversed"

    # WHEN / THEN
    with pytest.raises(MalformedEventError, match="status"):
        normalise(normaliser, payload)


def test_a_refund_in_an_unknown_currency_is_malformed(normaliser):
    # GIVEN
    payload = load_event("stripe_refund_created_partial_1")
    payload["data"]["object"]["currency"] = "zzz"

    # WHEN / THEN
    with pytest.raises(MalformedEventError, match="ZZZ"):
        normalise(normaliser, payload)


# ---- charge.refunded ----------------------------------------------------------------------------


def test_charge_refunded_reports_the_newest_embedded_refund(normaliser):
    # GIVEN a charge embedding an older and a newer refund, the newer one listed last
    first = refund_of(load_event("stripe_charge_refunded"))
    newer = later_refund(first, refund_id="re_3newerNx4RkL2mQe00000001", amount=75, seconds_later=3600)
    payload = charge_refunded_with(first, newer)

    # WHEN
    event = normalise(normaliser, payload)

    # THEN the newest refund is reported, with its own amount and time
    assert (event.data.refund_id, event.data.amount) == ("re_3newerNx4RkL2mQe00000001", 75)
    assert event.data.refunded_at == at("2026-04-27 11:15:00")


@pytest.mark.parametrize("refunds", [None, "absent", []], ids=["null", "absent", "empty"])
def test_charge_refunded_without_embedded_refunds_is_ignored(normaliser, refunds):
    # GIVEN a charge.refunded rendered without its refunds (the default from API 2022-11-15 on)
    payload = load_event("stripe_charge_refunded")
    charge = payload["data"]["object"]
    if refunds == "absent":
        del charge["refunds"]
    elif refunds is None:
        charge["refunds"] = None
    else:
        charge["refunds"]["data"] = refunds

    # WHEN / THEN nothing is reported: refund.created / refund.updated carry each refund
    assert normalise(normaliser, payload) is None


def test_charge_refunded_fills_ids_the_embedded_refund_leaves_out_from_its_charge(normaliser):
    # GIVEN an embedded refund that names no customer and no payment intent
    refund = refund_of(load_event("stripe_charge_refunded"))
    payload = charge_refunded_with({**refund, "customer": None, "payment_intent": None})

    # WHEN
    event = normalise(normaliser, payload)

    # THEN the charge's own customer and payment intent are used
    assert (event.data.customer_id, event.data.payment_intent_id, event.data.charge_id) == (
        LIFECYCLE,
        *UPGRADE_PAYMENT,
    )


def test_the_refund_events_are_handled_types():
    # GIVEN / WHEN / THEN
    assert {"refund.created", "refund.updated", "charge.refunded"} <= set(HANDLED_EVENT_TYPES)


# ---- payments carry the ids a refund links by ---------------------------------------------------


def test_an_invoice_payment_by_payment_intent_carries_it(normaliser):
    # GIVEN / WHEN
    event = normalise(normaliser, load_event("stripe_invoice_payment_paid"))

    # THEN
    assert isinstance(event, PaymentSettledEvent)
    assert (event.data.payment_intent_id, event.data.charge_id) == (ACME_PAYMENT[0], None)


def test_an_invoice_payment_by_charge_carries_the_charge(normaliser):
    # GIVEN an invoice payment made with a bare charge
    payload = load_event("stripe_invoice_payment_paid")
    payload["data"]["object"]["payment"] = {"type": "charge", "charge": ACME_PAYMENT[1]}

    # WHEN
    event = normalise(normaliser, payload)

    # THEN
    assert (event.data.payment_intent_id, event.data.charge_id) == (None, ACME_PAYMENT[1])


def test_an_out_of_band_invoice_payment_carries_neither(normaliser):
    # GIVEN / WHEN
    event = normalise(normaliser, load_event("stripe_invoice_payment_paid_out_of_band"))

    # THEN
    assert (event.data.payment_intent_id, event.data.charge_id) == (None, None)


def test_a_legacy_charge_payment_carries_its_charge_and_payment_intent(normaliser):
    # GIVEN the pre-basil charge.succeeded sample (it names its invoice)
    event = normalise(normaliser, load_event("stripe_charge_succeeded"))

    # WHEN / THEN
    assert isinstance(event, PaymentSettledEvent)
    assert (event.data.charge_id, event.data.payment_intent_id) == (ACME_PAYMENT[1], ACME_PAYMENT[0])
