"""Stripe events become canonical finance events with exact amounts, or None, or a MALFORMED error."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from billing_sync.domain.errors import ExceptionCategory, MalformedEventError
from billing_sync.domain.events import (
    CustomerUpsertedEvent,
    InvoiceIssuedEvent,
    InvoicePaidEvent,
    PaymentSettledEvent,
    RevenueClass,
    derive_event_id,
)
from billing_sync.sources.stripe import StripeNormaliser
from tests.builders import invoice_event, invoice_paid_event, load_event

RECEIVED_AT = datetime(2026, 11, 1, 1, 0, 5, tzinfo=UTC)
# A default no sample names, so an entity in the result can only have come from metadata.
FALLBACK_ENTITY = "XX99"


@pytest.fixture
def normaliser() -> StripeNormaliser:
    return StripeNormaliser(default_legal_entity=FALLBACK_ENTITY)


def normalise(normaliser: StripeNormaliser, payload: dict[str, Any]):
    return normaliser.normalise(payload, received_at=RECEIVED_AT, raw_ref=f"raw/stripe/{payload.get('id')}.json")


def charge_without_invoice() -> dict[str, Any]:
    """The charge sample as a one-off charge (no invoice), e.g. a Payment Link sale."""
    event = load_event("stripe_charge_succeeded")
    event["data"]["object"]["invoice"] = None
    return event


def charge_for_invoice(paid_event: dict[str, Any]) -> dict[str, Any]:
    """The charge sample re-pointed at the invoice of an ``invoice.paid`` event (same amount and customer)."""
    event = copy.deepcopy(load_event("stripe_charge_succeeded"))
    invoice = paid_event["data"]["object"]
    charge = event["data"]["object"]
    charge.update(
        invoice=invoice["id"], currency=invoice["currency"], amount=invoice["amount_paid"], customer=invoice["customer"]
    )
    event["id"] = paid_event["id"] + "_charge"
    return event


# ---- invoice.finalized -> invoice.issued -------------------------------------------------------


def test_the_usd_invoice_becomes_invoice_issued_with_stripe_totals(normaliser):
    # GIVEN the USD invoice sample (a discounted subscription line and a one-off line, exclusive tax)
    payload = load_event("stripe_invoice_finalized")

    # WHEN
    event = normalise(normaliser, payload)

    # THEN
    assert isinstance(event, InvoiceIssuedEvent)
    assert event.event_type == "invoice.issued"
    assert event.event_id == derive_event_id("stripe", "evt_1QH6KZNx4RkL2mQemUSGRWS1")
    invoice = event.data
    assert invoice.invoice_id == "in_1QvDDlNx4RkL2mQejBTD4pmw"
    assert invoice.customer_id == "cus_QfR7xKp2LmN9aT"
    assert invoice.currency == "USD"
    assert (invoice.subtotal, invoice.discount_total, invoice.tax_exclusive_total) == (39700, 1470, 3393)
    assert (invoice.tax_inclusive_total, invoice.total, invoice.amount_due) == (0, 41623, 41623)
    assert invoice.issued_at == datetime.fromtimestamp(1793494800, tz=UTC)


def test_the_usd_invoice_lines_carry_revenue_class_discount_and_tax(normaliser):
    # GIVEN / WHEN
    invoice = normalise(normaliser, load_event("stripe_invoice_finalized")).data

    # THEN
    subscription, one_off = invoice.lines
    assert [line.revenue_class for line in invoice.lines] == [RevenueClass.SUBSCRIPTION, RevenueClass.ONE_OFF]
    assert (subscription.amount, subscription.discount, subscription.tax_exclusive) == (14700, 1470, 1174)
    assert (one_off.amount, one_off.discount, one_off.tax_exclusive) == (25000, 0, 2219)
    assert subscription.period_end == datetime.fromtimestamp(1796083200, tz=UTC)
    assert sum(line.amount for line in invoice.lines) == invoice.subtotal


def test_the_jpy_invoice_keeps_inclusive_tax_apart(normaliser):
    # GIVEN the JPY sample: one subscription line with consumption tax included in the price
    payload = load_event("stripe_invoice_finalized_jpy")

    # WHEN
    invoice = normalise(normaliser, payload).data

    # THEN amounts stay in yen (exponent 0) and the inclusive tax is not added to the total
    assert invoice.currency == "JPY"
    assert (invoice.subtotal, invoice.total) == (29400, 29400)
    assert (invoice.tax_inclusive_total, invoice.tax_exclusive_total) == (2673, 0)
    assert [(line.tax_inclusive, line.tax_exclusive) for line in invoice.lines] == [(2673, 0)]


def test_the_kwd_invoice_keeps_three_decimal_minor_units(normaliser):
    # GIVEN / WHEN
    invoice = normalise(normaliser, load_event("stripe_invoice_finalized_kwd")).data

    # THEN 12500 fils = 12.500 KWD
    assert invoice.currency == "KWD"
    assert (invoice.subtotal, invoice.total, invoice.amount_due) == (12500, 12500, 12500)
    assert [line.revenue_class for line in invoice.lines] == [RevenueClass.ONE_OFF]


@pytest.mark.parametrize(
    ("sample", "entity"),
    [
        ("stripe_invoice_finalized", "US01"),
        ("stripe_invoice_finalized_jpy", "JP01"),
        ("stripe_invoice_finalized_kwd", "KW01"),
        ("stripe_customer_created_jp", "JP01"),
        ("stripe_invoice_paid_jpy", "JP01"),
    ],
)
def test_the_legal_entity_comes_from_metadata(normaliser, sample, entity):
    # WHEN / THEN
    assert normalise(normaliser, load_event(sample)).legal_entity == entity


def test_the_default_legal_entity_applies_when_metadata_names_none(normaliser):
    # GIVEN an invoice without legal_entity metadata
    payload = invoice_event(metadata={})

    # WHEN / THEN
    assert normalise(normaliser, payload).legal_entity == FALLBACK_ENTITY


def test_the_envelope_records_source_api_version_and_raw_ref(normaliser):
    # GIVEN the charge sample, delivered under the older API version that still has charge.invoice
    payload = load_event("stripe_charge_succeeded")

    # WHEN
    event = normalise(normaliser, payload)

    # THEN
    assert event.source_api_version == "2024-06-20"
    assert event.source_event_type == "charge.succeeded"
    assert event.raw_ref == "raw/stripe/evt_3QJqhyNx4RkL2mQeXuKskkkA.json"
    assert event.received_at == RECEIVED_AT
    assert event.occurred_at == datetime.fromtimestamp(1793494803, tz=UTC)
    assert normalise(normaliser, load_event("stripe_invoice_finalized")).source_api_version == "2025-10-29.clover"


# ---- payments ---------------------------------------------------------------------------------


def legacy(payload: dict[str, Any]) -> dict[str, Any]:
    """The event as an endpoint pinned to an API version before basil renders it."""
    return {**copy.deepcopy(payload), "api_version": "2024-06-20"}


def test_from_basil_invoice_paid_is_a_completeness_check_not_a_payment(normaliser):
    # GIVEN invoice.paid rendered in the current API version
    event = normalise(normaliser, load_event("stripe_invoice_paid"))

    # THEN it checks the payments booked against amount_paid; it is not itself a payment
    assert isinstance(event, InvoicePaidEvent)
    assert (event.data.invoice_id, event.data.amount_paid, event.data.currency) == (
        "in_1QvDDlNx4RkL2mQejBTD4pmw",
        41623,
        "USD",
    )


def test_before_basil_invoice_paid_and_charge_succeeded_settle_the_same_payment(normaliser):
    # GIVEN the two events that report payment of the USD invoice, rendered in a pre-basil version
    paid = normalise(normaliser, legacy(load_event("stripe_invoice_paid")))
    charged = normalise(normaliser, load_event("stripe_charge_succeeded"))

    # THEN both are payment.settled with one payment key (the invoice id) and the same money
    assert isinstance(paid, PaymentSettledEvent)
    assert isinstance(charged, PaymentSettledEvent)
    assert paid.data.payment_id == charged.data.payment_id == "in_1QvDDlNx4RkL2mQejBTD4pmw"
    assert (paid.data.amount, paid.data.currency) == (charged.data.amount, charged.data.currency) == (41623, "USD")
    assert paid.data.settled_at == datetime.fromtimestamp(1793494803, tz=UTC)
    assert paid.event_id != charged.event_id


def test_before_basil_invoice_paid_built_from_any_invoice_settles_its_total(normaliser):
    # GIVEN a pre-basil invoice.paid for a generated three-line invoice
    paid = legacy(invoice_paid_event(invoice_event(lines=[(10000, 1000, 900), (5000, 0, 450), (2500, 2500, 0)])))

    # WHEN
    event = normalise(normaliser, paid)

    # THEN
    assert event.data.amount == 10000 - 1000 + 900 + 5000 + 450 + 0
    assert event.data.payment_id == paid["data"]["object"]["id"]


@pytest.mark.parametrize(
    ("sample", "payment_id", "amount", "overpaid", "channel"),
    [
        ("stripe_invoice_payment_paid_partial_1", "inpay_1MDFrQNx4RkL2mQexPMHvxjG", 10000, 0, "processor"),
        ("stripe_invoice_payment_paid_partial_2", "inpay_1PFbgQNx4RkL2mQexVoahCWH", 4289, 0, "processor"),
        ("stripe_invoice_payment_paid_out_of_band", "inpay_1eYTopNx4RkL2mQeY6EMOwym", 60403, 0, "out_of_band"),
        ("stripe_invoice_payment_paid_overpaid", "inpay_1DQECSNx4RkL2mQeW6hniwyL", 73000, 600, "processor"),
    ],
)
def test_each_invoice_payment_is_its_own_payment(normaliser, sample, payment_id, amount, overpaid, channel):
    # WHEN
    event = normalise(normaliser, load_event(sample))

    # THEN the InvoicePayment id is the payment key; the customer comes from the invoice at posting
    assert isinstance(event, PaymentSettledEvent)
    assert (event.data.payment_id, event.data.amount, event.data.amount_overpaid) == (payment_id, amount, overpaid)
    assert event.data.channel == channel
    assert event.data.customer_id is None


@pytest.mark.parametrize("bad", ["70000", 700.0, True])
def test_an_amount_that_is_not_an_integer_is_malformed_never_coerced(normaliser, bad):
    # GIVEN an invoice payment whose amount is a string, a float or a boolean
    payload = load_event("stripe_invoice_payment_paid_partial_1")
    payload["data"]["object"]["amount_paid"] = bad

    # WHEN / THEN
    with pytest.raises(MalformedEventError, match="amount_paid"):
        normalise(normaliser, payload)


def test_an_invoice_line_amount_as_a_string_is_malformed(normaliser):
    payload = load_event("stripe_invoice_finalized")
    payload["data"]["object"]["lines"]["data"][0]["amount"] = "14700"
    with pytest.raises(MalformedEventError, match="amount"):
        normalise(normaliser, payload)


def test_proration_lines_are_signed_and_taxes_kept_per_rate(normaliser):
    # WHEN the mid-cycle upgrade is normalised
    event = normalise(normaliser, load_event("stripe_invoice_finalized_proration_upgrade"))

    # THEN the unused-time credit is a negative proration line, and each line keeps two tax rates
    assert [(line.amount, line.proration) for line in event.data.lines] == [(-24750, True), (39600, True)]
    assert {tax.tax_rate for line in event.data.lines for tax in line.taxes} == {
        "txr_1Fu8X3Nx4RkL2mQecKy4wQUe",
        "txr_1W68O1Nx4RkL2mQelgaYmm3M",
    }
    assert event.data.total == 16075


def test_a_customer_credit_balance_is_carried_to_the_invoice(normaliser):
    event = normalise(normaliser, load_event("stripe_invoice_finalized_renewal_credit_balance"))
    assert (event.data.starting_balance, event.data.ending_balance) == (-17861, 0)
    assert (event.data.total, event.data.amount_due, event.data.balance_applied) == (32150, 14289, 17861)


def test_a_credit_note_after_payment_splits_refund_and_credit_balance(normaliser):
    event = normalise(normaliser, load_event("stripe_credit_note_created_post_payment"))
    note = event.data
    assert (note.total, note.pre_payment_amount, note.refund_amount, note.credit_balance_amount) == (
        10717,
        0,
        5000,
        5717,
    )


def test_a_credit_note_before_payment_reduces_the_receivable(normaliser):
    event = normalise(normaliser, load_event("stripe_credit_note_created_pre_payment"))
    assert (event.data.total, event.data.pre_payment_amount, event.data.refund_amount) == (3572, 3572, 0)


def test_void_and_uncollectible_carry_what_they_reverse_and_what_remains_open(normaliser):
    voided = normalise(normaliser, load_event("stripe_invoice_voided"))
    written_off = normalise(normaliser, load_event("stripe_invoice_marked_uncollectible"))
    assert (voided.event_type, voided.data.total) == ("invoice.voided", 162375)
    assert (written_off.event_type, written_off.data.amount) == ("invoice.written_off", 44950)


def test_products_prices_and_subscriptions_are_master_data(normaliser):
    price = normalise(normaliser, load_event("stripe_price_created_metered"))
    subscription = normalise(normaliser, load_event("stripe_customer_subscription_created"))
    assert (price.event_type, price.data.usage_type) == ("price.upserted", "metered")
    assert subscription.event_type == "subscription.created"
    assert subscription.data.items


def test_a_charge_without_an_invoice_is_not_used(normaliser):
    # WHEN / THEN
    assert normalise(normaliser, charge_without_invoice()) is None


# ---- customers --------------------------------------------------------------------------------


@pytest.mark.parametrize("sample", ["stripe_customer_created", "stripe_customer_updated"])
def test_customer_created_and_updated_become_customer_upserted(normaliser, sample):
    # WHEN
    event = normalise(normaliser, load_event(sample))

    # THEN
    assert isinstance(event, CustomerUpsertedEvent)
    assert event.data.customer_id == "cus_QfR7xKp2LmN9aT"
    assert event.data.default_currency == "USD"
    assert event.legal_entity == "US01"


# ---- not used, and malformed ------------------------------------------------------------------


@pytest.mark.parametrize("sample", ["stripe_payment_intent_created", "stripe_payment_method_attached"])
def test_an_unsupported_type_returns_none(normaliser, sample):
    # GIVEN a signed event of a type billing-sync does not post
    payload = load_event(sample)

    # WHEN / THEN it is identified (so it can be recorded) but not normalised
    assert normaliser.identify(payload) == (payload["id"], payload["type"], payload["api_version"])
    assert normalise(normaliser, payload) is None


def test_an_unknown_currency_is_malformed(normaliser):
    # GIVEN the sample invoice in currency "zzz"
    payload = load_event("stripe_invoice_finalized_unknown_currency")

    # WHEN / THEN
    with pytest.raises(MalformedEventError, match="'ZZZ' is not a known ISO 4217 currency code") as caught:
        normalise(normaliser, payload)
    assert caught.value.category is ExceptionCategory.MALFORMED


def test_a_payment_in_an_unknown_currency_is_malformed(normaliser):
    # GIVEN an invoice.paid in "zzz"
    payload = invoice_paid_event(load_event("stripe_invoice_finalized_unknown_currency"))

    # WHEN / THEN
    with pytest.raises(MalformedEventError, match=r"invoice\.paid cannot be normalised"):
        normalise(normaliser, payload)


def test_an_invoice_with_more_lines_than_the_event_carries_is_marked_incomplete(normaliser):
    # GIVEN an invoice whose embedded line list is truncated
    payload = load_event("stripe_invoice_finalized")
    payload["data"]["object"]["lines"]["has_more"] = True

    # WHEN / THEN it is normalised but says so; posting never books it from part of its lines
    assert normalise(normaliser, payload).data.lines_complete is False


def test_an_invoice_missing_a_required_field_is_malformed(normaliser):
    # GIVEN an invoice without its customer
    payload = invoice_event()
    del payload["data"]["object"]["customer"]

    # WHEN / THEN
    with pytest.raises(MalformedEventError, match="customer"):
        normalise(normaliser, payload)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param({k: v for k, v in load_event("stripe_invoice_finalized").items() if k != "id"}, id="no-id"),
        pytest.param({**load_event("stripe_invoice_finalized"), "id": "in_1QvDDlNx4RkL2mQejBTD4pmw"}, id="not-evt"),
        pytest.param({k: v for k, v in load_event("stripe_invoice_finalized").items() if k != "type"}, id="no-type"),
        pytest.param([load_event("stripe_invoice_finalized")], id="array"),
        pytest.param("evt_1QH6KZNx4RkL2mQemUSGRWS1", id="string"),
    ],
)
def test_a_payload_that_cannot_be_identified_is_malformed(normaliser, payload):
    # WHEN / THEN
    with pytest.raises(MalformedEventError):
        normaliser.identify(payload)


def test_identify_returns_the_stripe_id_and_type(normaliser):
    # WHEN / THEN
    assert normaliser.identify(load_event("stripe_invoice_paid")) == (
        "evt_1QfN1UNx4RkL2mQew0eZo5Ib",
        "invoice.paid",
        "2025-10-29.clover",
    )
