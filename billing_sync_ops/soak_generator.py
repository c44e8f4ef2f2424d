"""Seeded, coherent Stripe event streams for the soak, built from the `events/` samples.

Per customer: `customer.created` (sometimes a later `customer.updated`), then invoices whose amounts add
up to the minor unit (lines with discounts, exclusive tax and now and then a negative proration line),
each with a fate: paid in full by `invoice_payment.paid` (sometimes refunded in part or in full by
`refund.created`), voided, marked uncollectible, credited before payment by a `credit_note.created` and
paid for the rest, or left open. The catalogue (`product.created`, `price.created`) and a sprinkling of
types billing-sync does not use (`payment_method.attached`, recorded IGNORED) complete the mix.
"""

from __future__ import annotations

import copy
import random
import string
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from billing_sync_ops.samples import (
    CATALOGUE_OF_BUILT_INVOICES,
    LineSpec,
    invoice_event,
    invoice_payment_event,
    load_event,
)

_ALNUM = string.ascii_letters + string.digits


@dataclass
class GeneratedStream:
    """The events in the order Stripe created them (the truth the deliveries are shuffled from)."""

    events: list[dict[str, Any]] = field(default_factory=list)

    def kinds(self) -> dict[str, int]:
        return dict(sorted(Counter(event["type"] for event in self.events).items()))


class StripeStreamGenerator:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._serial = 0

    def _id(self, prefix: str) -> str:
        self._serial += 1
        tail = "".join(self._rng.choice(_ALNUM) for _ in range(14))
        return f"{prefix}_1S{self._serial:06d}{tail}"

    def stream(self, events: int) -> GeneratedStream:
        """Exactly `events` events (at least the catalogue): whole scenarios, then customers alone to fill up."""
        generated = GeneratedStream([load_event(name) for name in CATALOGUE_OF_BUILT_INVOICES])
        while True:
            scenario = list(self._customer_scenario())
            if len(generated.events) + len(scenario) > events:
                break
            generated.events.extend(scenario)
        while len(generated.events) < events:
            generated.events.append(self._customer_created(self._id("cus")))
        return generated

    # ---- scenarios ----

    def _customer_scenario(self) -> Iterator[dict[str, Any]]:
        rng = self._rng
        customer_id = self._id("cus")
        yield self._customer_created(customer_id)
        if rng.random() < 0.3:
            updated = load_event("stripe_customer_updated")
            updated["id"] = self._id("evt")
            updated["data"]["object"]["id"] = customer_id
            updated["data"]["object"]["email"] = f"ap+{self._serial}@acme-robotics.example.com"
            yield updated
        if rng.random() < 0.15:
            yield self._product()
        if rng.random() < 0.05:
            ignored = load_event("stripe_payment_method_attached")
            ignored["id"] = self._id("evt")
            ignored["data"]["object"]["id"] = self._id("pm")
            ignored["data"]["object"]["customer"] = customer_id
            yield ignored
        for _ in range(rng.randint(1, 3)):
            yield from self._invoice_scenario(customer_id)

    def _customer_created(self, customer_id: str) -> dict[str, Any]:
        created = load_event("stripe_customer_created")
        created["id"] = self._id("evt")
        created["data"]["object"]["id"] = customer_id
        return created

    def _product(self) -> dict[str, Any]:
        """A product upsert for a product of its own (a new version of master data nobody invoices yet)."""
        product = load_event("stripe_product_created_growth_plan")
        product["id"] = self._id("evt")
        product["data"]["object"]["id"] = self._id("prod")
        product["data"]["object"]["name"] = f"Add-on {self._serial}"
        return product

    def _lines(self) -> list[LineSpec]:
        rng = self._rng
        lines: list[LineSpec] = []
        for _ in range(rng.randint(1, 3)):
            amount = rng.randint(5, 500) * 100 + rng.choice((0, 0, 50, 99))
            discount = amount * rng.choice((0, 0, 0, 10, 20)) // 100
            tax = (amount - discount) * 625 // 10000 if rng.random() < 0.5 else 0
            lines.append((amount, discount, tax))
        if rng.random() < 0.2:
            net = sum(amount - discount for amount, discount, _ in lines)
            lines.append((-max(1, net * rng.randint(5, 40) // 100), 0, 0))  # a proration credit line
        return lines

    def _invoice_scenario(self, customer_id: str) -> Iterator[dict[str, Any]]:
        rng = self._rng
        finalized = invoice_event(
            invoice_id=self._id("in"), customer_id=customer_id, event_id=self._id("evt"), lines=self._lines()
        )
        invoice = finalized["data"]["object"]
        if rng.random() < 0.02:
            # Totals that do not add up (100 more than lines, discounts and tax): parked VALIDATION, nothing follows.
            invoice["total"] += 100
            invoice["amount_due"] += 100
            invoice["amount_remaining"] += 100
            yield finalized
            return
        yield finalized
        fate = rng.random()
        if fate < 0.45:
            payment = invoice_payment_event(finalized, event_id=self._id("evt"))
            yield payment
            if rng.random() < 0.35:
                yield self._refund(payment, customer_id)
        elif fate < 0.6:
            yield self._invoice_update(finalized, "invoice.voided", status="void", transition="voided_at")
        elif fate < 0.75:
            yield self._invoice_update(
                finalized, "invoice.marked_uncollectible", status="uncollectible", transition="marked_uncollectible_at"
            )
        elif fate < 0.9 and invoice["total"] > 100:
            credit = self._credit_note(finalized)
            yield credit
            rest = invoice["total"] - credit["data"]["object"]["total"]
            yield invoice_payment_event(finalized, amount=rest, event_id=self._id("evt"))

    def _invoice_update(self, finalized: dict[str, Any], event_type: str, *, status: str, transition: str) -> dict:
        event = copy.deepcopy(finalized)
        invoice = event["data"]["object"]
        at = (invoice["status_transitions"].get("finalized_at") or invoice["created"]) + self._rng.randint(60, 86400)
        invoice["status"] = status
        invoice["status_transitions"][transition] = at
        event.update(id=self._id("evt"), type=event_type, created=at + 1)
        event["data"].pop("previous_attributes", None)
        return event

    def _credit_note(self, finalized: dict[str, Any]) -> dict[str, Any]:
        """A pre-payment credit note on the first line, without tax: its total reduces the amount due."""
        invoice = finalized["data"]["object"]
        first = invoice["lines"]["data"][0]
        net = first["amount"] - sum(item["amount"] for item in first.get("discount_amounts") or [])
        amount = max(1, min(net, invoice["total"] - 1) * self._rng.randint(10, 60) // 100)
        event = load_event("stripe_credit_note_created_pre_payment")
        note = event["data"]["object"]
        at = (invoice["status_transitions"].get("finalized_at") or invoice["created"]) + 1
        line = copy.deepcopy(note["lines"]["data"][0])
        line.update(
            id=self._id("cnli"),
            amount=amount,
            description=f"Service credit on {first['description']}",
            discount_amount=0,
            discount_amounts=[],
            invoice_line_item=first["id"],
            tax_rates=[],
            taxes=[],
            unit_amount=amount,
            unit_amount_decimal=str(amount),
        )
        line.pop("tax_amounts", None)
        note.update(
            id=self._id("cn"),
            number=f"{invoice.get('number') or 'INV'}-CN-{self._serial}",
            invoice=invoice["id"],
            customer=invoice["customer"],
            currency=invoice["currency"],
            created=at,
            effective_at=at,
            amount=amount,
            subtotal=amount,
            subtotal_excluding_tax=amount,
            total=amount,
            total_excluding_tax=amount,
            total_taxes=[],
            discount_amount=0,
            pre_payment_amount=amount,
            post_payment_amount=0,
            refunds=[],
            metadata=dict(invoice.get("metadata") or {}),
        )
        note.pop("tax_amounts", None)
        note["lines"]["data"] = [line]
        note["lines"]["total_count"] = 1
        note["lines"]["has_more"] = False
        event.update(id=self._id("evt"), created=at)
        return event

    def _refund(self, payment: dict[str, Any], customer_id: str) -> dict[str, Any]:
        paid = payment["data"]["object"]
        roll = self._rng.random()
        if roll < 0.1:
            amount = paid["amount_paid"] + 1  # more than was paid: the saga parks it VALIDATION
        elif roll < 0.45:
            amount = paid["amount_paid"]
        else:
            amount = max(1, paid["amount_paid"] * 3 // 10)
        event = load_event("stripe_refund_created_partial_1")
        refund = event["data"]["object"]
        at = paid["status_transitions"]["paid_at"] + self._rng.randint(3600, 10 * 86400)
        refund.update(
            id=self._id("re"),
            amount=amount,
            currency=paid["currency"],
            payment_intent=paid["payment"]["payment_intent"],
            charge=None,
            balance_transaction=None,
            customer=customer_id,
            created=at,
            status="succeeded",
            metadata={},
        )
        event.update(id=self._id("evt"), created=at + 1)
        return event


@dataclass(frozen=True)
class Delivery:
    """One webhook delivery of a generated event (`copy` of `copies`)."""

    event: dict[str, Any]
    copy: int
    copies: int


def deliveries(stream: GeneratedStream, rng: random.Random, *, max_copies: int = 5) -> list[Delivery]:
    """Each event 1 to `max_copies` times (each count half as likely as the one below), shuffled: any event
    may overtake the ones it depends on, and a later version of an object (customer.updated, invoice.voided)
    may arrive before the earlier one."""
    sent: list[Delivery] = []
    weights = [2 ** (max_copies - copies) for copies in range(1, max_copies + 1)]  # 1 copy most often, 5 at times
    for event in stream.events:
        copies = rng.choices(range(1, max_copies + 1), weights=weights)[0]
        sent.extend(Delivery(event, index + 1, copies) for index in range(copies))
    rng.shuffle(sent)
    return sent
