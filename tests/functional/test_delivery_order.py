"""Promise 7: order of arrival does not change the books.

Hundreds of Stripe events are delivered in random order (payments before their invoices, invoices
before their customers, products and prices) with redeliveries. Every event waits by name for what it
needs, is released when that posts, and ends POSTED; each document is booked once; the totals are exact.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing_sync.domain.events import FinanceEvent
from billing_sync.domain.journal import DocumentKind
from billing_sync.domain.lineage import LineageStatus
from billing_sync.domain.posting import PostingStatus
from billing_sync_ops.samples import (
    CATALOGUE_OF_BUILT_INVOICES,
    invoice_event,
    invoice_paid_event,
    invoice_payment_event,
    load_event,
    with_event_id,
)
from tests.functional.posting_harness import WaitingHarness, canonical

CUSTOMERS = 24
INVOICES = 120
RECEIVABLE = "1200 Accounts Receivable"


def world_() -> WaitingHarness:
    return WaitingHarness(catalogue_required=True)


def stripe_history() -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Catalogue, customers, invoices, two partial payments per invoice and the invoice.paid check.

    Returns the Stripe payloads and each invoice's amount due.
    """
    payloads: list[dict[str, Any]] = [load_event(name) for name in CATALOGUE_OF_BUILT_INVOICES]
    customers = [f"cus_Ord{n:04d}Nx4RkL2mQe" for n in range(CUSTOMERS)]
    for n, customer in enumerate(customers):
        event = with_event_id(load_event("stripe_customer_created"), f"evt_1OrdCus{n:04d}Nx4RkL2mQe")
        event["data"]["object"]["id"] = customer
        payloads.append(event)
    due: dict[str, int] = {}
    for n in range(INVOICES):
        invoice = invoice_event(
            invoice_id=f"in_1Ord{n:05d}Nx4RkL2mQe",
            customer_id=customers[n % CUSTOMERS],
            event_id=f"evt_1OrdInv{n:05d}Nx4RkL2mQe",
            lines=[(4900 * (1 + n % 4), 490 * (n % 2), 391 + n % 7), (25000, 0, 2219), (-1650 * (n % 3), 0, 0)],
        )
        amount_due = invoice["data"]["object"]["amount_due"]
        first = amount_due // 3 + n % 5
        payloads += [
            invoice,
            invoice_payment_event(invoice, amount=first),
            invoice_payment_event(invoice, amount=amount_due - first),
            invoice_paid_event(invoice),
        ]
        due[invoice["data"]["object"]["id"]] = amount_due
    return payloads, due


def deliver(world: WaitingHarness, events: list[FinanceEvent], rng: random.Random) -> Counter[PostingStatus]:
    """Plays the queue: every delivery and every released event, picked in random order."""
    pending: list[dict[str, Any] | FinanceEvent] = list(events)
    statuses: Counter[PostingStatus] = Counter()
    while pending or world.queue.messages:
        pending += world.queue.messages
        world.queue.messages.clear()
        item = pending.pop(rng.randrange(len(pending)))
        result = world.service.handle(item) if isinstance(item, dict) else world.service.post(item)
        statuses[result.status] += 1
    return statuses


def ledger_snapshot(world: WaitingHarness) -> dict[str, Any]:
    return {external_id: document.model_dump() for external_id, document in world.erp.documents.items()}


@pytest.mark.parametrize("seed", [7, 2026, 31337])
def test_events_in_any_order_with_redeliveries_all_post_once_with_exact_totals(seed: int) -> None:
    # GIVEN 506 Stripe events and 60 redeliveries of random ones, shuffled
    rng = random.Random(seed)
    payloads, due = stripe_history()
    events = [canonical(payload) for payload in payloads]
    deliveries = events + rng.sample(events, 60)
    rng.shuffle(deliveries)
    world = world_()

    # WHEN they are delivered, each released event picked again at random among what is left
    deliver(world, deliveries, rng)

    # THEN every event ended POSTED, nothing waits and nothing was parked
    statuses = Counter(world.lineage.get(event.event_id).status for event in events)
    assert statuses == Counter({LineageStatus.POSTED: len(events)})
    assert world.room.all_waiting() == []
    assert world.exceptions.records == []
    # AND each invoice and each payment was booked once
    kinds = Counter(document.kind for document in world.erp.documents.values())
    assert kinds == Counter({DocumentKind.INVOICE: INVOICES, DocumentKind.PAYMENT: 2 * INVOICES})
    assert world.erp.create_calls == 3 * INVOICES
    # AND the totals are exact: every receivable is cleared by its payments, cash is what was due
    receivable = Counter[str]()
    cash = 0
    for document in world.erp.documents.values():
        for line in document.journal:
            if line.account == RECEIVABLE:
                invoice = document.external_id if document.kind is DocumentKind.INVOICE else document.applies_to[0]
                receivable[invoice] += line.debit - line.credit
            if line.account == "1150 Payment Clearing":
                cash += line.debit - line.credit
    assert set(receivable.values()) == {0}
    assert cash == sum(due.values())
    invoices_booked = {d.external_id: d.total for d in world.erp.documents.values() if d.kind is DocumentKind.INVOICE}
    assert invoices_booked == {f"stripe-invoice-{invoice_id}": amount for invoice_id, amount in due.items()}


def test_replaying_the_whole_history_in_another_order_leaves_the_ledger_unchanged() -> None:
    # GIVEN the history posted once
    rng = random.Random(11)
    payloads, _ = stripe_history()
    events = [canonical(payload) for payload in payloads]
    world = world_()
    deliver(world, events, rng)
    before = ledger_snapshot(world)
    creates = world.erp.create_calls

    # WHEN every event is delivered again, in another order
    replayed = list(events)
    rng.shuffle(replayed)
    statuses = deliver(world, replayed, rng)

    # THEN documents are duplicates, master data is re-applied as the same version, and the books are the same
    assert statuses[PostingStatus.DUPLICATE] == 4 * INVOICES  # invoice, two payments, the paid check
    assert set(statuses) <= {PostingStatus.DUPLICATE, PostingStatus.POSTED}
    assert ledger_snapshot(world) == before
    assert world.erp.create_calls == creates


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rng=st.randoms(use_true_random=False), replays=st.integers(min_value=1, max_value=3))
def test_any_delivery_order_and_any_number_of_replays_give_the_same_books(rng: random.Random, replays: int) -> None:
    # GIVEN the first invoices of the history, posted in dependency order as the reference books
    payloads, _ = stripe_history()
    events = [canonical(payload) for payload in payloads[: len(CATALOGUE_OF_BUILT_INVOICES) + CUSTOMERS + 4 * 8]]
    reference = world_()
    for event in events:
        reference.service.post(event)
    assert not reference.room.all_waiting()

    # WHEN the same events arrive in a random order, replayed whole a random number of times
    world = world_()
    for _ in range(replays):
        shuffled = list(events)
        rng.shuffle(shuffled)
        deliver(world, shuffled, rng)

    # THEN the books are the ones posted in order
    assert ledger_snapshot(world) == ledger_snapshot(reference)
    assert world.room.all_waiting() == []
