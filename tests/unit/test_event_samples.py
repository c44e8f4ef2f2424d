"""The Stripe samples in ``events/`` add up the way Stripe's own objects do, to the minor unit.

Stripe's invoice arithmetic (API 2025-10-29.clover), as checked here:

* ``subtotal`` = sum of ``lines.data[].amount`` (signed; proration credits are negative);
* ``total_discount_amounts`` = per discount, the sum of the lines' ``discount_amounts``;
* ``total_taxes`` = per tax rate and behaviour, the sum of the lines' ``taxes`` (amount and taxable amount);
* ``total`` = subtotal - discounts + exclusive tax; ``total_excluding_tax`` = subtotal - discounts - inclusive tax;
* ``amount_due`` = total + starting_balance - ending_balance - pre_payment_credit_notes_amount, never negative:
  a credit (negative balance) is consumed up to the total, and a negative total becomes a credit;
* ``amount_paid`` + ``amount_remaining`` = ``amount_due``.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

EVENTS_DIR = Path(__file__).resolve().parents[2] / "events"
SAMPLE_PATHS = sorted(EVENTS_DIR.glob("stripe_*.json"))

# Older samples known to break one rule, pinned as strict xfails so a fix (or a new break) is noticed.
# bad_totals is inconsistent on purpose: other tests use it to check that posting refuses it.
BAD_TOTALS = {
    "stripe_invoice_finalized_bad_totals.json": "total (130750) != subtotal - discounts + tax (130650), on purpose",
}
OLD_API_VERSION = {
    "stripe_charge_succeeded.json": "api_version 2024-06-20, not the endpoint's 2025-10-29.clover",
}
# Refund samples that break a rule on purpose, for the tests that check the rule is enforced downstream.
UNLINKED_REFUNDS = {"stripe_refund_created_unlinked.json": "refunds a Payment Link sale, paid through no invoice"}
OVER_REFUNDS = {"stripe_refund_created_over.json": "takes the refunds of its payment above what was paid"}


def _load(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


SAMPLES = {path.name: _load(path) for path in SAMPLE_PATHS}


def _of_kind(kind: str) -> list[str]:
    return [name for name, event in SAMPLES.items() if event["data"]["object"].get("object") == kind]


def _params(names: list[str], known: dict[str, str]) -> list[Any]:
    return [
        pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=known[name])) if name in known else name
        for name in names
    ]


INVOICES = _of_kind("invoice")
CREDIT_NOTES = _of_kind("credit_note")
INVOICE_PAYMENTS = _of_kind("invoice_payment")
REFUNDS = _of_kind("refund")
CHARGES = _of_kind("charge")
PRICES = _of_kind("price")
PRODUCTS = _of_kind("product")


def _obj(name: str) -> dict[str, Any]:
    return SAMPLES[name]["data"]["object"]


def _tax_key(tax: dict[str, Any]) -> tuple[str, str]:
    return tax["tax_rate_details"]["tax_rate"], tax["tax_behavior"]


def _sum_taxes(rows: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[int, int]]:
    """Per (tax rate, behaviour): (amount, taxable_amount) summed over the rows' ``taxes``."""
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        for tax in row.get("taxes") or []:
            sums[_tax_key(tax)][0] += tax["amount"]
            sums[_tax_key(tax)][1] += tax["taxable_amount"]
    return {key: (amount, taxable) for key, (amount, taxable) in sums.items()}


def _totals_by_key(taxes: list[dict[str, Any]] | None) -> dict[tuple[str, str], tuple[int, int]]:
    return {_tax_key(tax): (tax["amount"], tax["taxable_amount"]) for tax in taxes or []}


def _tax_by_behaviour(taxes: list[dict[str, Any]] | None, behaviour: str) -> int:
    return sum(tax["amount"] for tax in taxes or [] if tax["tax_behavior"] == behaviour)


def _round_half_away(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _all_ints(obj: dict[str, Any], *fields: str) -> bool:
    return all(type(obj[field]) is int for field in fields)


# ----------------------------------------------------------------------------------------- envelopes


def test_every_sample_has_a_unique_event_id():
    # GIVEN every Stripe sample
    ids = Counter(event["id"] for event in SAMPLES.values())

    # WHEN / THEN no two samples share an event id
    assert {event_id: n for event_id, n in ids.items() if n > 1} == {}
    assert len(SAMPLES) >= 14


@pytest.mark.parametrize("name", _params(sorted(SAMPLES), OLD_API_VERSION))
def test_every_sample_is_a_full_event_envelope(name):
    # GIVEN a sample
    event = SAMPLES[name]

    # WHEN / THEN it is shaped like a webhook event of the pinned API version
    assert event["id"].startswith("evt_")
    assert event["object"] == "event"
    assert event["api_version"] == "2025-10-29.clover"
    assert type(event["created"]) is int
    assert event["livemode"] is False
    assert event["data"]["object"]["object"]
    assert set(event) >= {"pending_webhooks", "request", "type"}


# ----------------------------------------------------------------------------------------- invoices


@pytest.mark.parametrize("name", INVOICES)
def test_invoice_subtotal_discounts_and_taxes_are_the_sums_of_its_lines(name):
    # GIVEN an invoice sample with all its lines
    invoice = _obj(name)
    lines = invoice["lines"]["data"]
    assert invoice["lines"]["has_more"] is False
    assert invoice["lines"]["total_count"] == len(lines)

    # WHEN its lines are summed
    subtotal = sum(line["amount"] for line in lines)
    discounts: dict[str, int] = defaultdict(int)
    for line in lines:
        for discount in line["discount_amounts"]:
            discounts[discount["discount"]] += discount["amount"]

    # THEN subtotal, discount totals and per-rate tax totals are those sums
    assert invoice["subtotal"] == subtotal
    assert {d["discount"]: d["amount"] for d in invoice["total_discount_amounts"]} == {
        k: v for k, v in discounts.items() if v
    }
    assert _totals_by_key(invoice["total_taxes"]) == _sum_taxes(lines)
    # AND every discount is attached to the invoice or to one of its lines
    attached = set(invoice["discounts"]) | {d for line in lines for d in line["discounts"]}
    assert set(discounts) <= attached


@pytest.mark.parametrize("name", INVOICES)
def test_invoice_line_taxes_are_computed_on_the_discounted_line_amount(name):
    # GIVEN an invoice sample and the tax rates it names
    invoice = _obj(name)
    rates = {rate["id"]: rate for rate in invoice.get("default_tax_rates") or []}

    for line in invoice["lines"]["data"]:
        # WHEN a line's taxable base is taken after its discounts
        base = line["amount"] - sum(d["amount"] for d in line["discount_amounts"])
        inclusive = _tax_by_behaviour(line["taxes"], "inclusive")
        for tax in line["taxes"] or []:
            # THEN exclusive tax is levied on the discounted amount, inclusive tax is carved out of it
            expected_taxable = base if tax["tax_behavior"] == "exclusive" else base - inclusive
            assert tax["taxable_amount"] == expected_taxable, line["id"]
            rate = rates.get(tax["tax_rate_details"]["tax_rate"])
            if rate is not None and tax["tax_behavior"] == "exclusive":
                pct = Decimal(str(rate["percentage"]))
                assert tax["amount"] == _round_half_away(Decimal(base) * pct / 100), line["id"]


@pytest.mark.parametrize("name", _params(INVOICES, BAD_TOTALS))
def test_invoice_totals_follow_stripe_arithmetic(name):
    # GIVEN an invoice sample
    invoice = _obj(name)
    discounts = sum(d["amount"] for d in invoice["total_discount_amounts"])
    exclusive = _tax_by_behaviour(invoice["total_taxes"], "exclusive")
    inclusive = _tax_by_behaviour(invoice["total_taxes"], "inclusive")

    # WHEN its totals are recomputed from subtotal, discounts and taxes
    total = invoice["subtotal"] - discounts + exclusive
    total_excluding_tax = invoice["subtotal"] - discounts - inclusive

    # THEN they match Stripe's
    assert invoice["total"] == total
    assert invoice["total_excluding_tax"] == total_excluding_tax
    if not inclusive:
        assert invoice["subtotal_excluding_tax"] == invoice["subtotal"]


@pytest.mark.parametrize("name", INVOICES)
def test_invoice_amount_due_accounts_for_the_customer_balance_and_payments(name):
    # GIVEN an invoice sample
    invoice = _obj(name)
    starting, ending = invoice["starting_balance"], invoice["ending_balance"]

    # WHEN the customer balance movement (credit applied, or credit created by a negative total) is taken out
    balance_applied = ending - starting
    amount_due = invoice["total"] - balance_applied - invoice.get("pre_payment_credit_notes_amount", 0)

    # THEN amount_due follows, is never negative, and is split between paid and remaining
    assert invoice["amount_due"] == amount_due
    assert invoice["amount_due"] >= 0
    if invoice["total"] + starting < 0:
        assert invoice["amount_due"] == 0
        assert ending == invoice["total"] + starting
    assert invoice["amount_paid"] + invoice["amount_remaining"] == invoice["amount_due"]
    assert invoice.get("amount_overpaid", 0) >= 0
    assert invoice.get("amount_shipping", 0) == 0


@pytest.mark.parametrize("name", INVOICES)
def test_invoice_status_matches_its_amounts_and_transitions(name):
    # GIVEN an invoice sample
    invoice = _obj(name)
    transitions = invoice["status_transitions"]
    status = invoice["status"]

    # WHEN / THEN the status has its transition timestamp, in order, and the amounts that go with it
    assert transitions["finalized_at"] is not None
    assert invoice["created"] <= transitions["finalized_at"]
    for later in ("paid_at", "voided_at", "marked_uncollectible_at"):
        if transitions[later] is not None:
            assert transitions["finalized_at"] <= transitions[later]
    if status == "paid":
        assert transitions["paid_at"] is not None
        assert invoice["amount_remaining"] == 0
        assert invoice["amount_paid"] == invoice["amount_due"]
    elif status == "open":
        assert transitions["paid_at"] is None
        assert transitions["voided_at"] is None
    elif status == "void":
        assert transitions["voided_at"] is not None
        assert invoice["amount_paid"] == 0
    elif status == "uncollectible":
        assert transitions["marked_uncollectible_at"] is not None
        assert invoice["amount_remaining"] > 0
    else:
        pytest.fail(f"unexpected finalised invoice status {status!r}")
    assert SAMPLES[name]["created"] >= transitions["finalized_at"]


@pytest.mark.parametrize("name", INVOICES)
def test_invoice_lines_carry_their_own_period_and_parent(name):
    # GIVEN an invoice sample
    invoice = _obj(name)

    for line in invoice["lines"]["data"]:
        # WHEN / THEN each line is of the invoice, in its currency, with a period and a price or item parent
        assert line["invoice"] == invoice["id"]
        assert line["currency"] == invoice["currency"]
        assert line["period"]["start"] <= line["period"]["end"]
        parent = line["parent"]
        assert parent["type"] in {"subscription_item_details", "invoice_item_details"}
        assert parent[parent["type"]] is not None
        if line["amount"] < 0:
            assert parent[parent["type"]]["proration"] is True
        assert line["pricing"]["price_details"]["price"].startswith("price_")


# ----------------------------------------------------------------------------------------- credit notes


@pytest.mark.parametrize("name", CREDIT_NOTES)
def test_credit_note_lines_and_taxes_add_up_to_its_total(name):
    # GIVEN a credit note sample
    note = _obj(name)
    lines = note["lines"]["data"]

    # WHEN its lines and their taxes are summed
    subtotal = sum(line["amount"] for line in lines)
    discount = sum(line["discount_amount"] for line in lines)
    exclusive = _tax_by_behaviour(note["total_taxes"], "exclusive")
    inclusive = _tax_by_behaviour(note["total_taxes"], "inclusive")

    # THEN subtotal, per-rate taxes and total agree, and amount is the total credited
    assert note["subtotal"] == subtotal
    assert note["discount_amount"] == discount
    assert _totals_by_key(note["total_taxes"]) == _sum_taxes(lines)
    assert note["total"] == subtotal - discount + exclusive
    assert note["total_excluding_tax"] == subtotal - discount - inclusive
    assert note["amount"] == note["total"]
    assert note["lines"]["has_more"] is False


@pytest.mark.parametrize("name", CREDIT_NOTES)
def test_credit_note_settlement_matches_its_type(name):
    # GIVEN a credit note sample
    note = _obj(name)
    refunded = sum(refund["amount_refunded"] for refund in note["refunds"])
    out_of_band = note["out_of_band_amount"] or 0

    # WHEN what is not refunded nor settled out of band is taken to be credited to the customer balance
    to_balance = note["amount"] - refunded - out_of_band

    # THEN a pre-payment note only reduces the open invoice, a post-payment note is fully settled
    if note["type"] == "pre_payment":
        assert note["refunds"] == []
        assert note["out_of_band_amount"] is None
        assert note["customer_balance_transaction"] is None
        assert note["pre_payment_amount"] == note["amount"]
        assert note["post_payment_amount"] == 0
    else:
        assert note["type"] == "post_payment"
        assert to_balance >= 0
        assert (to_balance > 0) == (note["customer_balance_transaction"] is not None)
        assert note["post_payment_amount"] == note["amount"]
        assert note["pre_payment_amount"] == 0
        assert all(refund["refund"].startswith("re_") for refund in note["refunds"])


@pytest.mark.parametrize("name", CREDIT_NOTES)
def test_credit_note_belongs_to_a_sampled_invoice_of_the_same_customer(name):
    # GIVEN a credit note sample and the invoice samples
    note = _obj(name)
    invoices = [_obj(n) for n in INVOICES if _obj(n)["id"] == note["invoice"]]

    # WHEN / THEN it credits lines of one sampled invoice, of the same customer and currency
    assert invoices, note["invoice"]
    invoice = invoices[-1]
    assert (note["customer"], note["currency"]) == (invoice["customer"], invoice["currency"])
    line_ids = {line["id"] for line in invoice["lines"]["data"]}
    for line in note["lines"]["data"]:
        if line["type"] == "invoice_line_item":
            assert line["invoice_line_item"] in line_ids
    if note["type"] == "pre_payment":
        assert invoice["status"] == "open"
        assert note["amount"] <= invoice["amount_remaining"]
    else:
        assert invoice["status"] == "paid"
    assert note["created"] >= invoice["status_transitions"]["finalized_at"]


# ----------------------------------------------------------------------------------------- invoice payments


@pytest.mark.parametrize("name", INVOICE_PAYMENTS)
def test_invoice_payment_amounts_are_integers_in_minor_units(name):
    # GIVEN an invoice payment sample
    payment = _obj(name)

    # WHEN / THEN its amounts are ints and its payment reference matches its type
    assert _all_ints(payment, "amount_paid", "amount_requested", "created")
    assert payment["id"].startswith("inpay_")
    assert payment["invoice"].startswith("in_")
    kind = payment["payment"]["type"]
    assert kind in {"payment_intent", "payment_record", "charge"}
    assert payment["payment"][kind].startswith(
        {"payment_intent": "pi_", "payment_record": "pr_", "charge": "ch_"}[kind]
    )
    if payment["status"] == "paid":
        assert type(payment["status_transitions"]["paid_at"]) is int
        assert payment["amount_paid"] > 0


def test_invoice_payments_settle_the_sampled_invoices_they_pay():
    # GIVEN the paid invoice payments grouped by invoice
    paid: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for name in INVOICE_PAYMENTS:
        if _obj(name)["status"] == "paid":
            paid[_obj(name)["invoice"]].append(_obj(name))
    invoices = {_obj(n)["id"]: _obj(n) for n in INVOICES}
    settled = {_obj(n)["id"] for n in INVOICES if _obj(n)["status"] == "paid"}

    for invoice_id, payments in paid.items():
        # WHEN they are summed against the invoice sample they pay
        assert invoice_id in invoices, invoice_id
        invoice = invoices[invoice_id]
        total_paid = sum(p["amount_paid"] for p in payments)
        overpaid = any(p["amount_paid"] > p["amount_requested"] for p in payments)

        # THEN they pay exactly its amount due (more only when a payment is an overpayment)
        assert all(p["currency"] == invoice["currency"] for p in payments)
        if overpaid:
            assert total_paid > invoice["amount_due"]
        elif invoice_id in settled:
            assert total_paid == invoice["amount_due"]
        else:  # no settled sample: paid in full, or in part before a write-off
            assert total_paid <= invoice["amount_due"]
        if invoice["status"] == "paid":
            assert invoice["amount_paid"] == total_paid
            assert invoice["status_transitions"]["paid_at"] == max(p["status_transitions"]["paid_at"] for p in payments)


# ----------------------------------------------------------------------------------------- cross-sample


def test_invoices_carry_the_legal_entity_of_their_sampled_customer():
    # GIVEN the customer samples by id
    customers = {_obj(n)["id"]: _obj(n) for n in _of_kind("customer")}

    for name in INVOICES:
        invoice = _obj(name)
        customer = customers.get(invoice["customer"])
        if customer is None:
            continue
        # WHEN / THEN the invoice's legal_entity metadata is the customer's (or absent on both)
        assert invoice["metadata"].get("legal_entity") == customer["metadata"].get("legal_entity"), name
        assert invoice["created"] >= customer["created"], name


def _catalogue(names: list[str]) -> dict[str, tuple[dict[str, Any], int]]:
    """Catalogue samples by object id: (object, event created)."""
    return {_obj(name)["id"]: (_obj(name), SAMPLES[name]["created"]) for name in names}


def _first_invoice_use() -> dict[str, int]:
    """Per price and product id: the creation time of the earliest invoice sample with a line using it."""
    first: dict[str, int] = {}
    for name in INVOICES:
        invoice = _obj(name)
        for line in invoice["lines"]["data"]:
            details = line["pricing"]["price_details"]
            for ref in (details["price"], details["product"]):
                first[ref] = min(first.get(ref, invoice["created"]), invoice["created"])
    return first


# ----------------------------------------------------------------------------------------- catalogue


def test_every_catalogue_object_has_exactly_one_created_sample():
    # GIVEN the price and product samples
    ids = Counter(_obj(name)["id"] for name in PRICES + PRODUCTS)

    # WHEN / THEN each price or product id is created once, by an event of its own kind
    assert {object_id: n for object_id, n in ids.items() if n > 1} == {}
    assert all(SAMPLES[name]["type"] == "price.created" for name in PRICES)
    assert all(SAMPLES[name]["type"] == "product.created" for name in PRODUCTS)


@pytest.mark.parametrize("name", PRICES)
def test_price_sample_is_shaped_like_a_stripe_price(name):
    # GIVEN a price sample
    price = _obj(name)

    # WHEN / THEN its type goes with its recurring terms and its amount is an int in minor units
    assert price["id"].startswith("price_")
    assert price["product"].startswith("prod_")
    assert price["currency"] == price["currency"].lower()
    assert price["billing_scheme"] == "per_unit"
    assert type(price["unit_amount"]) is int
    assert price["unit_amount_decimal"] == str(price["unit_amount"])
    assert price["tax_behavior"] in {"exclusive", "inclusive", "unspecified"}
    if price["type"] == "recurring":
        assert price["recurring"]["usage_type"] in {"licensed", "metered"}
        assert (price["recurring"]["meter"] is not None) == (price["recurring"]["usage_type"] == "metered")
    else:
        assert price["type"] == "one_time"
        assert price["recurring"] is None


@pytest.mark.parametrize("name", PRICES)
def test_price_sample_belongs_to_a_product_sample_created_before_it(name):
    # GIVEN a price sample and the product samples
    price = _obj(name)
    products = _catalogue(PRODUCTS)

    # WHEN / THEN its product is sampled and was created first
    assert price["product"] in products, price["product"]
    product, product_created = products[price["product"]]
    assert product_created <= SAMPLES[name]["created"]
    assert product["created"] <= price["created"]


@pytest.mark.parametrize("name", INVOICES)
def test_invoice_lines_reference_sampled_prices_and_products(name):
    # GIVEN an invoice sample and the catalogue samples
    invoice = _obj(name)
    if invoice["currency"] == "zzz":
        pytest.skip("the unknown-currency sample is refused before any catalogue lookup; Stripe has no such price")
    prices = _catalogue(PRICES)
    products = _catalogue(PRODUCTS)

    for line in invoice["lines"]["data"]:
        details = line["pricing"]["price_details"]
        # WHEN the line's price and product are looked up
        assert details["price"] in prices, (line["id"], details["price"])
        assert details["product"] in products, (line["id"], details["product"])
        price, _ = prices[details["price"]]

        # THEN the price is of the line's product, in the invoice's currency, at the line's unit amount
        assert price["product"] == details["product"], line["id"]
        assert price["currency"] == invoice["currency"], line["id"]
        assert price["unit_amount_decimal"] == line["pricing"]["unit_amount_decimal"], line["id"]
        if not line["parent"][line["parent"]["type"]].get("proration"):
            assert line["amount"] == price["unit_amount"] * line["quantity"], line["id"]
        # AND a subscription line is billed at a recurring price, an invoice item at a one-time price
        expected_type = "recurring" if line["parent"]["type"] == "subscription_item_details" else "one_time"
        assert price["type"] == expected_type, line["id"]


def test_catalogue_samples_are_created_before_the_invoices_that_use_them():
    # GIVEN the first invoice using each price and product
    first_use = _first_invoice_use()

    for object_id, (obj, event_created) in {**_catalogue(PRICES), **_catalogue(PRODUCTS)}.items():
        if object_id not in first_use:
            continue
        # WHEN / THEN its created event comes first, so the master data is known when the invoice posts
        assert event_created < first_use[object_id], object_id
        assert obj["created"] < first_use[object_id], object_id


def test_subscription_items_use_the_sampled_prices():
    # GIVEN the subscription samples and the price samples
    prices = _catalogue(PRICES)

    for name in _of_kind("subscription"):
        for item in _obj(name)["items"]["data"]:
            # WHEN / THEN the embedded price is the sampled one
            assert item["price"]["id"] in prices, (name, item["price"]["id"])
            price, _ = prices[item["price"]["id"]]
            for field in ("product", "currency", "unit_amount", "type", "recurring"):
                assert item["price"][field] == price[field], (name, field)


@pytest.mark.parametrize("name", INVOICE_PAYMENTS)
def test_invoice_payment_pays_a_sampled_invoice_within_its_amount_due(name):
    # GIVEN an invoice payment sample and the invoice samples of its invoice
    payment = _obj(name)
    invoices = [_obj(n) for n in INVOICES if _obj(n)["id"] == payment["invoice"]]
    assert invoices, payment["invoice"]
    invoice = invoices[-1]

    # WHEN an overpayment's excess (paid beyond what was requested) is set aside
    excess = max(payment["amount_paid"] - payment["amount_requested"], 0)

    # THEN the payment is in the invoice's currency and pays no more than the amount due, after finalisation
    assert payment["currency"] == invoice["currency"]
    assert payment["amount_requested"] <= invoice["amount_due"]
    assert payment["amount_paid"] - excess <= invoice["amount_due"]
    if excess:
        assert invoice.get("amount_overpaid", 0) in {0, excess}
    assert payment["created"] >= invoice["created"]
    if payment["status"] == "paid":
        assert payment["status_transitions"]["paid_at"] > invoice["status_transitions"]["finalized_at"]
        assert SAMPLES[name]["created"] >= payment["status_transitions"]["paid_at"]


# ----------------------------------------------------------------------------------------- refunds

REFUND_STATUSES = {"pending", "requires_action", "succeeded", "failed", "canceled"}
NOT_REFUNDED = {"failed", "canceled"}


def _payments_by_intent() -> dict[str, dict[str, Any]]:
    """Paid invoice payment samples by the payment intent they were paid with."""
    return {
        _obj(n)["payment"]["payment_intent"]: _obj(n)
        for n in INVOICE_PAYMENTS
        if _obj(n)["payment"]["type"] == "payment_intent" and _obj(n)["status"] == "paid"
    }


def _latest_refunds(names: list[str]) -> dict[str, dict[str, Any]]:
    """Each refund's state in the latest of the given samples that carries it."""
    latest: dict[str, tuple[int, dict[str, Any]]] = {}
    for name in names:
        refund = _obj(name)
        if refund["id"] not in latest or latest[refund["id"]][0] <= SAMPLES[name]["created"]:
            latest[refund["id"]] = (SAMPLES[name]["created"], refund)
    return {refund_id: refund for refund_id, (_, refund) in latest.items()}


@pytest.mark.parametrize("name", REFUNDS)
def test_refund_amounts_are_integers_in_minor_units(name):
    # GIVEN a refund sample
    event, refund = SAMPLES[name], _obj(name)

    # WHEN / THEN it is a refund event of a charge and payment intent, in integer minor units
    assert event["type"] in {"refund.created", "refund.updated"}
    assert refund["id"].startswith("re_")
    assert _all_ints(refund, "amount", "created")
    assert refund["amount"] > 0
    assert refund["currency"] == refund["currency"].lower()
    assert refund["status"] in REFUND_STATUSES
    assert refund["charge"].startswith("ch_")
    assert refund["payment_intent"].startswith("pi_")
    assert event["created"] >= refund["created"]
    assert (refund["status"] == "failed") == bool(refund.get("failure_reason"))


@pytest.mark.parametrize("name", _params(REFUNDS, UNLINKED_REFUNDS))
def test_refund_refunds_a_sampled_invoice_payment_in_its_currency(name):
    # GIVEN a refund sample and the invoice payments by payment intent
    refund = _obj(name)
    payments = _payments_by_intent()
    invoices = {_obj(n)["id"]: _obj(n) for n in INVOICES}

    # WHEN its payment intent is looked up
    assert refund["payment_intent"] in payments, refund["payment_intent"]
    payment = payments[refund["payment_intent"]]

    # THEN it refunds that payment, in its currency, after it was paid, to the invoice's customer
    assert refund["currency"] == payment["currency"]
    assert refund["created"] > payment["status_transitions"]["paid_at"]
    assert refund["customer"] == invoices[payment["invoice"]]["customer"]


def test_the_unlinked_refund_refunds_no_sampled_invoice_payment():
    # GIVEN the unlinked refund sample
    refund = _obj(next(iter(UNLINKED_REFUNDS)))

    # WHEN / THEN no invoice payment sample was paid with its payment intent, nor names its charge
    assert refund["payment_intent"] not in _payments_by_intent()
    assert all(_obj(n)["payment"].get("charge") != refund["charge"] for n in INVOICE_PAYMENTS)


def test_refunds_of_a_payment_never_exceed_what_it_paid_but_the_over_refund_does():
    # GIVEN every refund's latest state, grouped by the payment intent refunded
    payments = _payments_by_intent()
    linked = [n for n in REFUNDS if n not in UNLINKED_REFUNDS]
    within = [n for n in linked if n not in OVER_REFUNDS]

    def refunded(names: list[str]) -> dict[str, int]:
        totals: dict[str, int] = defaultdict(int)
        for refund in _latest_refunds(names).values():
            if refund["status"] not in NOT_REFUNDED:
                totals[refund["payment_intent"]] += refund["amount"]
        return totals

    # WHEN / THEN the refunds stay within each payment, and the over-refund sample takes its payment above it
    assert all(total <= payments[pi]["amount_paid"] for pi, total in refunded(within).items())
    for name in OVER_REFUNDS:
        pi = _obj(name)["payment_intent"]
        assert refunded(linked)[pi] > payments[pi]["amount_paid"], name


@pytest.mark.parametrize("name", [n for n in REFUNDS if SAMPLES[n]["type"] == "refund.updated"])
def test_refund_update_follows_its_created_sample(name):
    # GIVEN a refund.updated sample and the refund.created sample of the same refund
    updated = _obj(name)
    created = [n for n in REFUNDS if SAMPLES[n]["type"] == "refund.created" and _obj(n)["id"] == updated["id"]]
    assert len(created) == 1, updated["id"]

    # WHEN / THEN the refund is the same (amount, currency, charge, intent, creation) and the update comes later
    original = _obj(created[0])
    for field in ("amount", "currency", "charge", "payment_intent", "customer", "created"):
        assert updated[field] == original[field], field
    assert SAMPLES[name]["created"] > SAMPLES[created[0]]["created"]
    assert set(SAMPLES[name]["data"]["previous_attributes"]) >= {"status"}


@pytest.mark.parametrize("name", [n for n in CHARGES if SAMPLES[n]["type"] == "charge.refunded"])
def test_charge_refunded_embeds_the_sampled_refunds_of_its_payment(name):
    # GIVEN a charge.refunded sample and the refund.created samples by refund id
    charge = _obj(name)
    refunds = charge["refunds"]["data"]
    created = {_obj(n)["id"]: _obj(n) for n in REFUNDS if SAMPLES[n]["type"] == "refund.created"}

    # WHEN / THEN each embedded refund is a sampled one (so it posts once) of this charge
    assert refunds and charge["refunds"]["has_more"] is False
    for refund in refunds:
        assert created.get(refund["id"]) == refund, refund["id"]
        assert (refund["charge"], refund["payment_intent"]) == (charge["id"], charge["payment_intent"])
    # AND the charge's refunded amount is theirs, and it pays a sampled invoice payment
    assert charge["amount_refunded"] == sum(r["amount"] for r in refunds if r["status"] not in NOT_REFUNDED)
    assert charge["refunded"] is (charge["amount_refunded"] == charge["amount"])
    payment = _payments_by_intent()[charge["payment_intent"]]
    assert (charge["amount"], charge["currency"]) == (payment["amount_paid"], payment["currency"])
    assert "invoice" not in charge  # from basil on a charge names no invoice


@pytest.mark.parametrize("name", CREDIT_NOTES)
def test_credit_note_refunds_are_sampled_refunds_of_its_invoice_payments(name):
    # GIVEN a credit note sample, the refund samples and the invoice payments by payment intent
    note = _obj(name)
    refunds = {_obj(n)["id"]: _obj(n) for n in REFUNDS}
    payments = _payments_by_intent()

    for row in note["refunds"]:
        # WHEN / THEN the refund it names is sampled, for the amount it refunded, of a payment of its invoice
        refund = refunds.get(row["refund"])
        assert refund is not None, row["refund"]
        assert refund["amount"] == row["amount_refunded"]
        assert refund["currency"] == note["currency"]
        assert payments[refund["payment_intent"]]["invoice"] == note["invoice"]
        assert refund["amount"] <= payments[refund["payment_intent"]]["amount_paid"]
