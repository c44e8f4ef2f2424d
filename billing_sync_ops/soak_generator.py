"""Seeded, coherent Stripe event streams for the soak, built from the `events/` samples.

Per customer, in one currency (USD, EUR or JPY; the sample rates convert the last two): `customer.created`
(sometimes a later `customer.updated`), sometimes a subscription (`customer.subscription.created`, then
perhaps `.updated` and `.deleted`), then invoices whose amounts add up to the minor unit (lines with
discounts, exclusive tax and now and then a negative proration line), each with a fate:

- paid by `invoice_payment.paid` (at times after an `invoice.payment_failed`; with `invoice.paid` and the
  basil `charge.succeeded`, which names no invoice, beside it), then perhaps refunded in part or in full
  (`refund.created`, at times pending and then `refund.updated` to succeeded, or succeeded and later
  failed; `charge.refunded` beside it) or disputed (`charge.dispute.created`, then `.closed` won or lost);
- voided, marked uncollectible, credited before payment by a `credit_note.created` and paid for the rest,
  or left open.

Every few customers, Stripe pays out what the USD payments and refunds so far settled, less its fees:
`payout.paid` (now and then followed by `payout.failed`), its balance transactions served by the soak's
Stripe API double (`GeneratedStream.api_objects`). The catalogue (`product.created`, `price.created`,
now and then `product.updated`) and a sprinkling of types billing-sync does not use
(`payment_method.attached`, recorded IGNORED) complete the mix.
"""

from __future__ import annotations

import copy
import random
import string
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from billing_sync_ops.samples import (
    CATALOGUE_OF_BUILT_INVOICES,
    LineSpec,
    invoice_event,
    invoice_paid_event,
    invoice_payment_event,
    load_event,
)
from billing_sync_ops.stripe_objects import balance_transaction, card_fee, payout_list

_ALNUM = string.ascii_letters + string.digits
CURRENCIES = (("usd", 7), ("eur", 2), ("jpy", 1))
"""A customer's currency and its weight; the stack's entities keep USD books, so EUR and JPY are translated."""
API_VERSION = "2025-10-29.clover"
PAYOUT_EVERY = (4, 12)
"""A payout settles once this many USD payments (at least) wait for one."""
BAD_TOTALS_EVERY = 50
"""The seventh invoice and every fiftieth after it: totals that do not add up (parked VALIDATION)."""
OVER_REFUND_EVERY = 10
"""The third refund and every tenth after it: more than was paid (the saga parks it VALIDATION)."""
PRICE_UPDATE_EVERY = 40
"""The invoiced price gets a new nickname after the second customer and every fortieth after it."""
FAILED_PAYOUT_EVERY = 8
"""The bank returns the second payout and every eighth after it."""


@dataclass
class GeneratedStream:
    """The events in the order Stripe created them (the truth the deliveries are shuffled from), and what
    Stripe's API answers about them (charges and each payout's balance transactions)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    api_objects: list[dict[str, Any]] = field(default_factory=list)

    def kinds(self) -> dict[str, int]:
        return dict(sorted(Counter(event["type"] for event in self.events).items()))


@dataclass
class _Scenario:
    """One customer's events, and the balance transactions they leave for a payout to settle."""

    events: list[dict[str, Any]] = field(default_factory=list)
    charges: list[dict[str, Any]] = field(default_factory=list)
    settlements: list[dict[str, Any]] = field(default_factory=list)


class StripeStreamGenerator:
    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self._serial = 0
        self._unsettled: list[dict[str, Any]] = []
        self._payouts = 0
        self._invoices = 0
        self._refunds = 0

    def _id(self, prefix: str) -> str:
        self._serial += 1
        tail = "".join(self._rng.choice(_ALNUM) for _ in range(14))
        return f"{prefix}_1S{self._serial:06d}{tail}"

    def stream(self, events: int) -> GeneratedStream:
        """Exactly `events` events (at least the catalogue): whole scenarios and payouts, then customers alone."""
        generated = GeneratedStream([load_event(name) for name in CATALOGUE_OF_BUILT_INVOICES])
        payout_after = self._rng.randint(*PAYOUT_EVERY)
        scenarios = 0
        while True:
            scenario = self._customer_scenario()
            if len(generated.events) + len(scenario.events) > events:
                break
            generated.events.extend(scenario.events)
            generated.api_objects.extend(scenario.charges)
            scenarios += 1
            if scenarios % PRICE_UPDATE_EVERY == 2 and len(generated.events) < events:
                generated.events.append(self._price_updated())
            self._unsettled.extend(scenario.settlements)
            if sum(txn["type"] == "charge" for txn in self._unsettled) >= payout_after:
                payout = self._payout()
                if payout is not None and len(generated.events) + len(payout[0]) <= events:
                    generated.events.extend(payout[0])
                    generated.api_objects.append(payout[1])
                    self._unsettled = []
                payout_after = self._rng.randint(*PAYOUT_EVERY)
        while len(generated.events) < events:
            generated.events.append(self._customer_created(self._id("cus"), "usd"))
        return generated

    # ---- scenarios ----

    def _customer_scenario(self) -> _Scenario:
        rng = self._rng
        scenario = _Scenario()
        customer_id = self._id("cus")
        currency = rng.choices([code for code, _ in CURRENCIES], weights=[weight for _, weight in CURRENCIES])[0]
        scenario.events.append(self._customer_created(customer_id, currency))
        if rng.random() < 0.3:
            updated = load_event("stripe_customer_updated")
            updated["id"] = self._id("evt")
            updated["data"]["object"]["id"] = customer_id
            updated["data"]["object"]["currency"] = currency
            updated["data"]["object"]["email"] = f"ap+{self._serial}@acme-robotics.example.com"
            scenario.events.append(updated)
        if rng.random() < 0.15:
            scenario.events.extend(self._product())
        if rng.random() < 0.05:
            ignored = load_event("stripe_payment_method_attached")
            ignored["id"] = self._id("evt")
            ignored["data"]["object"]["id"] = self._id("pm")
            ignored["data"]["object"]["customer"] = customer_id
            scenario.events.append(ignored)
        if rng.random() < 0.3:
            scenario.events.extend(self._subscription(customer_id, currency))
        for _ in range(rng.randint(1, 3)):
            self._invoice_scenario(scenario, customer_id, currency)
        return scenario

    def _customer_created(self, customer_id: str, currency: str) -> dict[str, Any]:
        created = load_event("stripe_customer_created")
        created["id"] = self._id("evt")
        created["data"]["object"]["id"] = customer_id
        created["data"]["object"]["currency"] = currency
        return created

    def _product(self) -> list[dict[str, Any]]:
        """A product of its own (master data nobody invoices yet), renamed now and then by `product.updated`."""
        created = load_event("stripe_product_created_growth_plan")
        created["id"] = self._id("evt")
        product = created["data"]["object"]
        product["id"] = self._id("prod")
        product["name"] = f"Add-on {self._serial}"
        if self._rng.random() >= 0.4:
            return [created]
        updated = copy.deepcopy(created)
        at = product["created"] + self._rng.randint(60, 86400)
        updated["data"]["object"].update(name=f"{product['name']} (renamed)", updated=at)
        updated["data"]["previous_attributes"] = {"name": product["name"], "updated": product["updated"]}
        updated.update(id=self._id("evt"), type="product.updated", created=at)
        return [created, updated]

    def _price_updated(self) -> dict[str, Any]:
        """A new nickname for the price every invoice here bills (the amount of a price never changes)."""
        event = load_event("stripe_price_created_growth_plan")
        price = event["data"]["object"]
        previous = price["nickname"]
        price["nickname"] = f"Growth (monthly, rev {self._serial})"
        event["data"]["previous_attributes"] = {"nickname": previous}
        event.update(id=self._id("evt"), type="price.updated", created=event["created"] + self._rng.randint(60, 86400))
        return event

    def _subscription(self, customer_id: str, currency: str) -> list[dict[str, Any]]:
        """Created; perhaps amended (more seats) and cancelled later. Contract data: recorded, no journal."""
        created = load_event("stripe_customer_subscription_created")
        subscription = created["data"]["object"]
        subscription_id = self._id("sub")
        subscription.update(id=subscription_id, customer=customer_id, currency=currency)
        for item in subscription["items"]["data"]:
            item.update(id=self._id("si"), subscription=subscription_id)
        subscription["items"]["url"] = f"/v1/subscription_items?subscription={subscription_id}"
        created["id"] = self._id("evt")
        events = [created]
        at = created["created"]
        if self._rng.random() < 0.5:
            amended = copy.deepcopy(events[-1])
            at += self._rng.randint(3600, 5 * 86400)
            item = amended["data"]["object"]["items"]["data"][0]
            amended["data"]["previous_attributes"] = {"items": copy.deepcopy(amended["data"]["object"]["items"])}
            item["quantity"] += self._rng.randint(1, 5)
            amended.update(id=self._id("evt"), type="customer.subscription.updated", created=at)
            events.append(amended)
        if self._rng.random() < 0.3:
            cancelled = copy.deepcopy(events[-1])
            at += self._rng.randint(3600, 5 * 86400)
            cancelled["data"]["object"].update(status="canceled", canceled_at=at, ended_at=at)
            cancelled["data"].pop("previous_attributes", None)
            cancelled.update(id=self._id("evt"), type="customer.subscription.deleted", created=at)
            events.append(cancelled)
        return events

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

    def _invoice_scenario(self, scenario: _Scenario, customer_id: str, currency: str) -> None:
        rng = self._rng
        events = scenario.events
        finalized = invoice_event(
            currency=currency,
            invoice_id=self._id("in"),
            customer_id=customer_id,
            event_id=self._id("evt"),
            lines=self._lines(),
        )
        invoice = finalized["data"]["object"]
        self._invoices += 1
        if self._invoices % BAD_TOTALS_EVERY == 7:
            # Totals that do not add up (100 more than lines, discounts and tax): parked VALIDATION, nothing follows.
            invoice["total"] += 100
            invoice["amount_due"] += 100
            invoice["amount_remaining"] += 100
            events.append(finalized)
            return
        events.append(finalized)
        fate = rng.random()
        if fate < 0.45:
            if rng.random() < 0.2:
                events.append(self._payment_failed(finalized))
            self._paid(scenario, finalized, amount=invoice["amount_due"])
        elif fate < 0.6:
            events.append(self._invoice_update(finalized, "invoice.voided", status="void", transition="voided_at"))
        elif fate < 0.75:
            events.append(
                self._invoice_update(
                    finalized,
                    "invoice.marked_uncollectible",
                    status="uncollectible",
                    transition="marked_uncollectible_at",
                )
            )
        elif fate < 0.9 and invoice["total"] > 100:
            credit = self._credit_note(finalized)
            events.append(credit)
            self._paid(scenario, finalized, amount=invoice["total"] - credit["data"]["object"]["total"], follow=False)

    def _paid(self, scenario: _Scenario, finalized: dict[str, Any], *, amount: int, follow: bool = True) -> None:
        """The payment, what Stripe sends beside it, and perhaps a refund or a dispute of it."""
        rng = self._rng
        payment = invoice_payment_event(finalized, amount=amount, event_id=self._id("evt"))
        paid = payment["data"]["object"]
        charge = self._charge(paid, finalized["data"]["object"]["customer"])
        scenario.events.append(payment)
        if rng.random() < 0.5:
            scenario.events.append(self._invoice_paid(finalized, amount))
        if rng.random() < 0.4:
            scenario.events.append(self._charge_event(charge, "charge.succeeded", created=charge["created"] + 1))
        settles = paid["currency"] == "usd"
        if settles:
            scenario.charges.append(charge)
            scenario.settlements.append(self._charge_transaction(charge))
        if not follow:
            return
        roll = rng.random()
        if roll < 0.35:
            self._refund(scenario, payment, charge, settles=settles)
        elif roll < 0.42 and settles:
            scenario.events.extend(self._dispute(charge))

    def _payment_failed(self, finalized: dict[str, Any]) -> dict[str, Any]:
        """A first attempt that was declined, a second before the attempt that paid."""
        event = copy.deepcopy(finalized)
        invoice = event["data"]["object"]
        at = (invoice["status_transitions"].get("finalized_at") or invoice["created"]) + 1
        invoice.update(attempted=True, attempt_count=1, next_payment_attempt=at + 3 * 86400)
        invoice["last_finalization_error"] = None
        event.update(id=self._id("evt"), type="invoice.payment_failed", created=at)
        event["data"].pop("previous_attributes", None)
        return event

    def _invoice_paid(self, finalized: dict[str, Any], amount: int) -> dict[str, Any]:
        event = invoice_paid_event(finalized, event_id=self._id("evt"))
        invoice = event["data"]["object"]
        invoice.update(amount_due=amount, amount_paid=amount, amount_remaining=0)
        return event

    def _charge(self, paid: dict[str, Any], customer_id: str) -> dict[str, Any]:
        """The Charge behind an InvoicePayment, as the API returns it (basil on: it names no invoice)."""
        charge = load_event("stripe_charge_succeeded")["data"]["object"]
        charge_id = "ch_" + paid["payment"]["payment_intent"].removeprefix("pi_")
        charge.update(
            id=charge_id,
            amount=paid["amount_paid"],
            amount_captured=paid["amount_paid"],
            amount_refunded=0,
            refunded=False,
            currency=paid["currency"],
            customer=customer_id,
            payment_intent=paid["payment"]["payment_intent"],
            balance_transaction="txn_" + charge_id.removeprefix("ch_"),
            created=paid["status_transitions"]["paid_at"],
            metadata={},
        )
        charge.pop("invoice", None)
        charge.pop("refunds", None)
        return charge

    def _charge_event(self, charge: dict[str, Any], event_type: str, *, created: int) -> dict[str, Any]:
        event = load_event("stripe_charge_succeeded")
        event.update(id=self._id("evt"), type=event_type, created=created, api_version=API_VERSION)
        event["data"] = {"object": copy.deepcopy(charge)}
        return event

    @staticmethod
    def _charge_transaction(charge: dict[str, Any]) -> dict[str, Any]:
        return balance_transaction(
            charge["balance_transaction"],
            type="charge",
            amount=charge["amount"],
            fee=card_fee(charge["amount"]),
            created=charge["created"],
            source=charge["id"],
        )

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

    def _refund(self, scenario: _Scenario, payment: dict[str, Any], charge: dict[str, Any], *, settles: bool) -> None:
        """In part, in full or for more than was paid (the saga parks it VALIDATION); created succeeded, or
        pending and then succeeded, or succeeded and failed later (the saga reverses it)."""
        rng = self._rng
        paid = payment["data"]["object"]
        self._refunds += 1
        roll = rng.random()
        if self._refunds % OVER_REFUND_EVERY == 3:
            amount = paid["amount_paid"] + 1
        elif roll < 0.4:
            amount = paid["amount_paid"]
        else:
            amount = max(1, paid["amount_paid"] * 3 // 10)
        event = load_event("stripe_refund_created_partial_1")
        refund = event["data"]["object"]
        at = paid["status_transitions"]["paid_at"] + rng.randint(3600, 10 * 86400)
        refund_id = self._id("re")
        refund.update(
            id=refund_id,
            amount=amount,
            currency=paid["currency"],
            payment_intent=paid["payment"]["payment_intent"],
            charge=None,
            balance_transaction="txn_" + refund_id.removeprefix("re_"),
            customer=charge["customer"],
            created=at,
            status="succeeded",
            metadata={},
        )
        event.update(id=self._id("evt"), created=at + 1)
        path = rng.random()
        later = at + rng.randint(600, 3 * 86400)
        if path < 0.25:
            refund["status"] = "pending"
            scenario.events.append(event)
            scenario.events.append(self._refund_update(event, "succeeded", later, previous="pending"))
            status = "succeeded"
        elif path < 0.35:
            scenario.events.append(event)
            failed = self._refund_update(event, "failed", later, previous="succeeded")
            failed["data"]["object"].update(
                failure_reason="expired_or_canceled_card", failure_balance_transaction=self._id("txn")
            )
            failed["data"]["previous_attributes"].update(failure_reason=None, failure_balance_transaction=None)
            scenario.events.append(failed)
            status = "failed"
        else:
            scenario.events.append(event)
            status = "succeeded"
        if rng.random() < 0.4:
            refunded = copy.deepcopy(charge)
            refunded.update(amount_refunded=min(amount, charge["amount"]), refunded=amount >= charge["amount"])
            scenario.events.append(self._charge_event(refunded, "charge.refunded", created=at + 2))
        if settles and status == "succeeded" and amount <= paid["amount_paid"]:
            scenario.settlements.append(
                balance_transaction(
                    refund["balance_transaction"], type="refund", amount=-amount, created=at, source=refund_id
                )
            )

    def _refund_update(self, created: dict[str, Any], status: str, at: int, *, previous: str) -> dict[str, Any]:
        event = copy.deepcopy(created)
        event["data"]["object"]["status"] = status
        event["data"]["previous_attributes"] = {"status": previous}
        event.update(id=self._id("evt"), type="refund.updated", created=at)
        return event

    def _dispute(self, charge: dict[str, Any]) -> list[dict[str, Any]]:
        """A chargeback of the whole charge with Stripe's $15 fee, then won (funds reinstated) or lost."""
        rng = self._rng
        dispute_id = self._id("dp")
        opened_at = charge["created"] + rng.randint(86400, 20 * 86400)
        withdrawal = balance_transaction(
            self._id("txn"),
            type="adjustment",
            amount=-charge["amount"],
            fee=1500,
            created=opened_at,
            source=dispute_id,
            reporting_category="dispute",
            description=f"Chargeback withdrawal for {charge['id']}",
        )
        created = load_event("stripe_charge_dispute_created")
        dispute = created["data"]["object"]
        dispute.update(
            id=dispute_id,
            amount=charge["amount"],
            currency=charge["currency"],
            charge=charge["id"],
            payment_intent=charge["payment_intent"],
            created=opened_at,
            status="needs_response",
            metadata={},
            balance_transactions=[withdrawal],
        )
        created.update(id=self._id("evt"), created=opened_at + 1)
        won = rng.random() < 0.5
        closed = load_event("stripe_charge_dispute_closed_won" if won else "stripe_charge_dispute_closed_lost")
        closed_at = opened_at + rng.randint(7 * 86400, 30 * 86400)
        funds = [withdrawal]
        if won:
            funds.append(
                balance_transaction(
                    self._id("txn"),
                    type="adjustment",
                    amount=charge["amount"],
                    created=closed_at,
                    source=dispute_id,
                    reporting_category="dispute_reversal",
                    description=f"Chargeback reversal for {charge['id']}",
                )
            )
        closed["data"]["object"] = dict(
            copy.deepcopy(dispute), status="won" if won else "lost", balance_transactions=funds
        )
        closed.update(id=self._id("evt"), created=closed_at)
        return [created, closed]

    def _payout(self) -> tuple[list[dict[str, Any]], dict[str, Any]] | None:
        """`payout.paid` for what waits to settle, and the API's list of its balance transactions; at times
        the bank returns it (`payout.failed`). None when refunds leave nothing to pay out."""
        net = sum(txn["net"] for txn in self._unsettled)
        if net <= 0:
            return None
        payout_id = self._id("po")
        created_at = max(txn["created"] for txn in self._unsettled) + 86400
        own = balance_transaction(
            "txn_" + payout_id.removeprefix("po_"),
            type="payout",
            amount=-net,
            created=created_at,
            source=payout_id,
            description="STRIPE PAYOUT",
        )
        paid = load_event("stripe_payout_paid")
        payout = paid["data"]["object"]
        payout.update(
            id=payout_id,
            amount=net,
            currency="usd",
            created=created_at,
            arrival_date=created_at + 2 * 86400,
            balance_transaction=own["id"],
            metadata={},
        )
        paid.update(id=self._id("evt"), created=created_at + 2 * 86400 + 60)
        events = [paid]
        self._payouts += 1
        if self._payouts % FAILED_PAYOUT_EVERY == 2:
            failed = load_event("stripe_payout_failed")
            failed["data"]["object"] = dict(
                copy.deepcopy(payout),
                status="failed",
                failure_code="account_closed",
                failure_message="The bank account has been closed.",
            )
            failed.update(id=self._id("evt"), created=paid["created"] + 3 * 86400)
            events.append(failed)
        return events, payout_list(payout_id, [own, *self._unsettled])


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
