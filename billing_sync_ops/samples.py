"""Stripe sample events for the bench, the tests and the local tools, built from the `events/` samples.

The samples live in ``events/stripe_<scenario>.json`` at the repository root. Every builder returns a
fresh deep copy, so callers may mutate the result freely.

Invoice arithmetic (integer minor units), as produced by :func:`invoice_event`:

* line ``amount`` is the pre-discount amount (inclusive tax included, exclusive tax excluded);
* ``subtotal`` = sum of line ``amount``;
* ``total_discount_amounts`` = per-discount sums of line ``discount_amounts``;
* ``total_taxes`` = per-rate sums of line ``taxes``;
* ``total`` = subtotal - discounts + exclusive taxes; ``amount_due`` = total.
"""

from __future__ import annotations

import copy
import hashlib
import json
import string
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"

_ALNUM = string.digits + string.ascii_uppercase + string.ascii_lowercase

# (amount, discount, exclusive_tax) in minor units
LineSpec = tuple[int, int, int]


def load_event(name: str) -> dict[str, Any]:
    """Load ``events/<name>.json`` (``name`` with or without ``.json``) as a fresh deep copy."""
    file_name = name if name.endswith(".json") else f"{name}.json"
    with (EVENTS_DIR / file_name).open(encoding="utf-8") as fh:
        return json.load(fh)


def with_event_id(event: dict[str, Any], event_id: str) -> dict[str, Any]:
    """Return a copy of ``event`` with a different Stripe event id."""
    out = copy.deepcopy(event)
    out["id"] = event_id
    return out


def event_payload(event: dict[str, Any]) -> bytes:
    """Serialise an event the way it is POSTed (compact JSON, UTF-8)."""
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _token(*seed: object, length: int) -> str:
    """``length`` deterministic alphanumeric characters derived from ``seed``."""
    digest = int.from_bytes(hashlib.sha512("|".join(map(str, seed)).encode()).digest(), "big")
    chars = []
    for _ in range(length):
        digest, rem = divmod(digest, len(_ALNUM))
        chars.append(_ALNUM[rem])
    return "".join(chars)


def _derived_id(prefix: str, *seed: object) -> str:
    """A deterministic, Stripe-looking id (``<prefix>_1Q...``) derived from ``seed``."""
    return f"{prefix}_1Q{_token(prefix, *seed, length=22)}"


def _sum_totals(invoice: dict[str, Any]) -> None:
    """Recompute every invoice-level amount from the lines (in place)."""
    lines = invoice["lines"]["data"]
    subtotal = sum(line["amount"] for line in lines)

    discounts: dict[str, int] = {}
    for line in lines:
        for item in line.get("discount_amounts") or []:
            discounts[item["discount"]] = discounts.get(item["discount"], 0) + item["amount"]

    taxes: dict[tuple[str, str], dict[str, Any]] = {}
    for line in lines:
        for tax in line.get("taxes") or []:
            key = (tax["tax_rate_details"]["tax_rate"], tax["tax_behavior"])
            agg = taxes.get(key)
            if agg is None:
                taxes[key] = copy.deepcopy(tax)
            else:
                agg["amount"] += tax["amount"]
                agg["taxable_amount"] += tax["taxable_amount"]

    total_taxes = list(taxes.values())
    discount_total = sum(discounts.values())
    exclusive = sum(t["amount"] for t in total_taxes if t["tax_behavior"] == "exclusive")
    inclusive = sum(t["amount"] for t in total_taxes if t["tax_behavior"] == "inclusive")
    total = subtotal - discount_total + exclusive

    invoice["subtotal"] = subtotal
    invoice["subtotal_excluding_tax"] = subtotal - inclusive
    invoice["total_discount_amounts"] = [{"amount": a, "discount": d} for d, a in discounts.items()]
    invoice["total_taxes"] = total_taxes
    invoice["total"] = total
    invoice["total_excluding_tax"] = subtotal - discount_total - inclusive
    invoice["amount_due"] = total
    if invoice.get("status") == "paid":
        invoice["amount_paid"] = total
        invoice["amount_remaining"] = 0
    else:
        invoice["amount_paid"] = 0
        invoice["amount_remaining"] = total
    invoice["lines"]["total_count"] = len(lines)


def _build_lines(invoice: dict[str, Any], specs: Iterable[LineSpec]) -> list[dict[str, Any]]:
    """Lines shaped like the sample's first line, with the given (amount, discount, exclusive_tax)."""
    template = invoice["lines"]["data"][0]
    discount_id = invoice["total_discount_amounts"][0]["discount"]
    tax_template = invoice["total_taxes"][0]
    lines = []
    for index, (amount, discount, tax) in enumerate(specs):
        line = copy.deepcopy(template)
        line["id"] = _derived_id("il", invoice["id"], index)
        line["amount"] = amount
        line["subtotal"] = amount
        line["description"] = f"Growth plan (line {index + 1})"
        line["quantity"] = 1
        line["quantity_decimal"] = "1"
        line["pricing"]["unit_amount_decimal"] = str(amount)
        line["discountable"] = True
        line["discount_amounts"] = [{"amount": discount, "discount": discount_id}] if discount else []
        if tax:
            line["taxes"] = [
                dict(
                    copy.deepcopy(tax_template),
                    amount=tax,
                    tax_behavior="exclusive",
                    taxable_amount=amount - discount,
                )
            ]
        else:
            line["taxes"] = []
        lines.append(line)
    return lines


def invoice_event(
    *,
    currency: str | None = None,
    lines: Sequence[LineSpec] | None = None,
    invoice_id: str | None = None,
    customer_id: str | None = None,
    event_id: str | None = None,
    metadata: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A coherent ``invoice.finalized`` event based on ``stripe_invoice_finalized.json``.

    ``lines`` is a list of ``(amount, discount, exclusive_tax)`` tuples; the invoice totals are
    recomputed from them. Without any argument the sample is returned unchanged.
    ``metadata`` replaces the invoice metadata (the sample has ``{"legal_entity": "US01"}``).
    """
    event = load_event("stripe_invoice_finalized")
    invoice = event["data"]["object"]

    if invoice_id is not None:
        invoice["id"] = invoice_id
        invoice["lines"]["url"] = f"/v1/invoices/{invoice_id}/lines"
        for index, line in enumerate(invoice["lines"]["data"]):
            line["invoice"] = invoice_id
            line["id"] = _derived_id("il", invoice_id, index)
    if lines is not None:
        invoice["lines"]["data"] = _build_lines(invoice, lines)
    if currency is not None:
        invoice["currency"] = currency
        for line in invoice["lines"]["data"]:
            line["currency"] = currency
    if customer_id is not None:
        invoice["customer"] = customer_id
    if metadata is not None:
        invoice["metadata"] = dict(metadata)
    if event_id is not None:
        event["id"] = event_id
    if lines is not None:
        _sum_totals(invoice)
        invoice["discounts"] = [d["discount"] for d in invoice["total_discount_amounts"]]
    return event


def invoice_paid_event(invoice_event: dict[str, Any], *, event_id: str | None = None) -> dict[str, Any]:
    """The ``invoice.paid`` event for the invoice of an ``invoice.finalized`` event."""
    event = copy.deepcopy(invoice_event)
    invoice = event["data"]["object"]
    finalized_at = invoice["status_transitions"].get("finalized_at") or invoice["created"]
    paid_at = max(finalized_at, event["created"]) + 3
    invoice.update(
        {
            "status": "paid",
            "amount_paid": invoice["total"],
            "amount_remaining": 0,
            "attempted": True,
            "attempt_count": max(1, invoice.get("attempt_count") or 0),
            "auto_advance": False,
            "next_payment_attempt": None,
        }
    )
    invoice["status_transitions"]["paid_at"] = paid_at
    event["type"] = "invoice.paid"
    event["created"] = paid_at + 1
    event["id"] = event_id if event_id is not None else _derived_id("evt", invoice_event["id"], "paid")
    event["data"].pop("previous_attributes", None)
    request = event.get("request") or {}
    if request.get("id"):
        event["request"] = {
            "id": "req_" + _token(request["id"], "paid", length=14),
            "idempotency_key": request.get("idempotency_key"),
        }
    return event


def invoice_payment_event(
    invoice_event: dict[str, Any], *, amount: int | None = None, event_id: str | None = None
) -> dict[str, Any]:
    """An ``invoice_payment.paid`` event paying the invoice of an ``invoice.finalized`` event.

    Based on ``stripe_invoice_payment_paid.json``; ``amount`` defaults to the invoice's amount due.
    """
    event = load_event("stripe_invoice_payment_paid")
    payment = event["data"]["object"]
    invoice = invoice_event["data"]["object"]
    paid = invoice["amount_due"] if amount is None else amount
    finalized_at = invoice["status_transitions"].get("finalized_at") or invoice["created"]
    payment.update(
        id=_derived_id("inpay", invoice["id"], paid),
        invoice=invoice["id"],
        currency=invoice["currency"],
        amount_paid=paid,
        amount_requested=min(paid, invoice["amount_due"]),
        created=finalized_at + 2,
    )
    payment["status_transitions"] = {"paid_at": finalized_at + 2, "canceled_at": None}
    payment["payment"] = {"type": "payment_intent", "payment_intent": _derived_id("pi", invoice["id"], paid)}
    event["created"] = finalized_at + 3
    event["id"] = event_id if event_id is not None else _derived_id("evt", invoice_event["id"], "inpay", paid)
    return event


CATALOGUE_OF_BUILT_INVOICES = ("stripe_product_created_growth_plan", "stripe_price_created_growth_plan")
"""The product and price master data that invoices built by `invoice_event` reference."""
