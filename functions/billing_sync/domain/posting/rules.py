"""The registry of posting rules: for each canonical type, what it waits for and what it books.

The posting service, the bus rule's detail types (infra) and the README's table all derive from
`POSTING_RULES`; a new document kind is one accounting module, one normaliser module and one line here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from billing_sync.domain import accounting
from billing_sync.domain.accounting.disputes import withdrawal
from billing_sync.domain.errors import DependencyPendingError, EventValidationError, NothingToPostError
from billing_sync.domain.events import (
    CreditNoteIssuedEvent,
    CustomerUpsertedEvent,
    DisputeClosedEvent,
    DisputeCreatedEvent,
    EventType,
    InvoiceIssuedEvent,
    InvoicePaidEvent,
    InvoiceVoidedEvent,
    InvoiceWrittenOffEvent,
    PaymentFailedEvent,
    PaymentSettledEvent,
    PayoutFailedEvent,
    PayoutPaidEvent,
    PriceUpsertedEvent,
    ProductUpsertedEvent,
    RefundIssuedEvent,
    SubscriptionAmendedEvent,
    SubscriptionCancelledEvent,
    SubscriptionCreatedEvent,
    SubscriptionRenewedEvent,
)
from billing_sync.domain.journal import DocumentKind, ErpCustomer, ErpDocument
from billing_sync.domain.ports import BalanceTransaction
from billing_sync.domain.posting.resolver import Resolver, customer_key, payments_key, record_key

REFUND_SAGA_WORKFLOW = "refund_saga"
"""The workflow (Step Functions state machine) that books refund.issued."""


class RuleKind(StrEnum):
    DOCUMENT = "document"  # claimed, then one or more ERP documents
    MASTER_DATA = "master_data"  # newest version wins; no journal
    RECORD = "record"  # kept in lineage only; no journal
    SAGA = "saga"  # claimed, then booked step by step by a workflow that records the outcome


@dataclass(frozen=True)
class MasterDataUpdate:
    kind: str  # customer, product, price, subscription
    record_id: str
    data: dict[str, Any]
    customer: ErpCustomer | None = None


@dataclass(frozen=True)
class Plan:
    """What posting an event does. `provides` are the keys whose waiters are released afterwards, besides
    what each document releases (resolver.released_by)."""

    documents: tuple[ErpDocument, ...] = ()
    master_data: MasterDataUpdate | None = None
    links: tuple[MasterDataUpdate, ...] = ()  # recorded after the documents: what a later refund looks up
    provides: tuple[str, ...] = ()
    note: str | None = None
    workflow: str | None = None  # a saga to start (by name) instead of posting documents here
    settlements: Mapping[str, BalanceTransaction] = field(default_factory=dict)  # by document external id: the
    # Stripe balance transaction that converted the cash, whose rate and amount translate it


@dataclass(frozen=True)
class PostingRule:
    event_type: EventType
    kind: RuleKind
    waits_for: str
    books: str
    plan: Callable[[Any, Resolver], Plan] = field(repr=False)


def _invoice(event: InvoiceIssuedEvent, world: Resolver) -> Plan:
    invoice = event.data
    accounting.check_invoice_totals(invoice)  # an invoice that cannot add up is parked at once, not held
    customer_entity = world.require_customer(event.source, invoice.customer_id)
    if customer_entity != event.legal_entity:
        raise EventValidationError(
            f"invoice {invoice.invoice_id} is for legal entity {event.legal_entity}, but its customer "
            f"{invoice.customer_id} belongs to {customer_entity}"
        )
    if not invoice.lines_complete:
        invoice = world.complete_invoice(event.source, invoice)
        accounting.check_invoice_totals(invoice)  # the lines read from the API must add up to the invoice too
        event = event.model_copy(update={"data": invoice})
    classes = world.line_classes(event.source, invoice)
    return Plan(documents=(accounting.invoice_document(event, world.mapping, line_classes=classes),))


def _payment(event: PaymentSettledEvent, world: Resolver) -> Plan:
    invoice = world.require_invoice(event.source, event.data.invoice_id)
    document = accounting.payment_document(event, world.mapping, invoice=invoice)
    settlements: dict[str, BalanceTransaction] = {}
    # Cash Stripe converted carries its own rate and exact amount (realised FX against the invoice's rate);
    # without the Stripe API the rate table's rate on the settlement date stands in.
    functional = world.mapping.entity(document.legal_entity).functional_currency
    if event.data.charge_id and event.data.currency != functional:
        settlement = world.charge_settlement(event.source, event.data.charge_id)
        if settlement is not None:
            settlements[document.external_id] = settlement
    return Plan(documents=(document,), settlements=settlements)  # what it releases: resolver.released_by


def _invoice_paid(event: InvoicePaidEvent, world: Resolver) -> Plan:
    paid = event.data
    if paid.amount_paid == 0:
        raise NothingToPostError(f"invoice {paid.invoice_id} is paid with nothing to pay")
    invoice = world.require_invoice(event.source, paid.invoice_id)
    received = world.erp.applied_total(invoice.external_id, DocumentKind.PAYMENT)
    if received < paid.amount_paid:
        raise DependencyPendingError(
            f"invoice {invoice.external_id} is paid {paid.amount_paid} at the source but payments of "
            f"{received} are booked",
            key=payments_key(invoice.external_id),
        )
    return Plan(note=f"complete: payments booked {received} cover amount paid {paid.amount_paid}")


def _credit_note(event: CreditNoteIssuedEvent, world: Resolver) -> Plan:
    note = event.data
    invoice = world.require_invoice_document(event.source, note.invoice_id)
    document = accounting.credit_note_document(event, world.mapping, invoice=invoice)
    # A refund the saga booked before this credit note arrived got its own credit memo: void it, so the
    # revenue is given back once whatever the order of arrival.
    voids = tuple(
        accounting.credit_memo_void(memo, source_event_id=event.event_id, on=document.posting_date)
        for refund_id in note.refund_ids
        if (memo := world.erp.get_document(accounting.refund_credit_memo_external_id(event.source, refund_id)))
    )
    links = tuple(
        MasterDataUpdate("refund_credit_note", refund_id, {"credit_memo_external_id": document.external_id})
        for refund_id in note.refund_ids
    )
    provides = tuple(record_key("refund_credit_note", event.source, refund_id) for refund_id in note.refund_ids)
    return Plan(documents=(document, *voids), links=links, provides=provides)


def _void(event: InvoiceVoidedEvent, world: Resolver) -> Plan:
    invoice = world.require_invoice_document(event.source, event.data.invoice_id)
    return Plan(documents=(accounting.void_document(event, invoice=invoice, mapping=world.mapping),))


def _write_off(event: InvoiceWrittenOffEvent, world: Resolver) -> Plan:
    invoice = world.require_invoice(event.source, event.data.invoice_id)
    return Plan(documents=(accounting.write_off_document(event, world.mapping, invoice=invoice),))


def _refund(event: RefundIssuedEvent, world: Resolver) -> Plan:
    return Plan(workflow=REFUND_SAGA_WORKFLOW)


def _customer(event: CustomerUpsertedEvent, world: Resolver) -> Plan:
    customer = accounting.erp_customer(event, world.mapping)
    return Plan(
        master_data=MasterDataUpdate("customer", event.data.customer_id, event.data.model_dump(mode="json"), customer),
        provides=(customer_key(event.source, event.data.customer_id),),
    )


def _product(event: ProductUpsertedEvent, world: Resolver) -> Plan:
    product = event.data
    return Plan(
        master_data=MasterDataUpdate("product", product.product_id, product.model_dump(mode="json")),
        provides=(record_key("product", event.source, product.product_id),),
    )


def _price(event: PriceUpsertedEvent, world: Resolver) -> Plan:
    price = event.data
    return Plan(
        master_data=MasterDataUpdate("price", price.price_id, price.model_dump(mode="json")),
        provides=(record_key("price", event.source, price.price_id),),
    )


SubscriptionEvent = (
    SubscriptionCreatedEvent | SubscriptionAmendedEvent | SubscriptionRenewedEvent | SubscriptionCancelledEvent
)


def _subscription(event: SubscriptionEvent, world: Resolver) -> Plan:
    subscription = event.data
    return Plan(
        master_data=MasterDataUpdate(
            "subscription",
            subscription.subscription_id,
            {**subscription.model_dump(mode="json"), "event_type": event.event_type},
        ),
        note="recorded: subscription contract data; no journal",
    )


def _payment_failed(event: PaymentFailedEvent, world: Resolver) -> Plan:
    failed = event.data
    return Plan(note=f"recorded: payment attempt {failed.attempt_count} failed ({failed.failure_code}); no journal")


def _payout(event: PayoutPaidEvent | PayoutFailedEvent, world: Resolver) -> Plan:
    """Fees and the bank deposit, once every balance transaction the payout settles is matched to a posted
    document and they net to the payout; a failed payout also reverses the deposit (see accounting.payouts)."""
    payout = event.data
    transactions = world.payout_transactions(event.source, payout.payout_id)
    settled = [txn for txn in transactions if not (txn.type == "payout" and txn.source == payout.payout_id)]
    if foreign := sorted({txn.currency for txn in settled} - {payout.currency}):
        raise EventValidationError(f"payout {payout.payout_id} in {payout.currency} settles transactions in {foreign}")
    net = sum(txn.net for txn in settled)
    if net != payout.amount:
        raise EventValidationError(
            f"payout {payout.payout_id} pays {payout.amount} {payout.currency} but the {len(settled)} balance "
            f"transactions it settles net {net}: a difference of {payout.amount - net}"
        )
    missing = []
    for txn in settled:
        target = accounting.settlement_target(event.source, txn, payout_id=payout.payout_id)
        if target is None:
            continue
        found = world.settled_document(target)
        if found is None:
            missing.append(target)
        elif found.currency == txn.currency and found.total is not None and found.total != abs(txn.amount):
            raise EventValidationError(
                f"balance transaction {txn.id} moved {txn.amount} {txn.currency} but {found.external_id} is "
                f"booked for {found.total}: clearing would not net to zero"
            )
    if missing:
        raise DependencyPendingError(
            f"payout {payout.payout_id} settles {len(missing)} balance transaction(s) with no posted document: "
            + "; ".join(target.describe() for target in missing),
            key=world.settlement_key(missing[0]),
        )
    fees = tuple(doc for txn in settled if (doc := accounting.fee_document(event, world.mapping, txn=txn)))
    documents = (*fees, accounting.payout_document(event, world.mapping))
    if isinstance(event, PayoutFailedEvent):
        documents += (accounting.payout_reversal(event, world.mapping),)
    return Plan(documents=documents)


def _dispute_created(event: DisputeCreatedEvent, world: Resolver) -> Plan:
    dispute = event.data
    if withdrawal(dispute) is None:
        raise NothingToPostError(f"dispute {dispute.dispute_id} ({dispute.status}) withdrew no funds")
    payment = world.require_payment(dispute.payment_intent_id, dispute.charge_id)
    return Plan(documents=(accounting.dispute_document(event, world.mapping, payment=payment),))


def _dispute_closed(event: DisputeClosedEvent, world: Resolver) -> Plan:
    """The outcome; when dispute.created has not posted yet, its document is booked from this event's funds."""
    dispute = event.data
    if dispute.status not in ("won", "lost") or withdrawal(dispute) is None:
        raise NothingToPostError(f"dispute {dispute.dispute_id} closed as {dispute.status} with no funds withdrawn")
    payment = world.require_payment(dispute.payment_intent_id, dispute.charge_id)
    disputed = world.erp.get_document(accounting.dispute_external_id(event.source, dispute.dispute_id))
    opened: tuple[ErpDocument, ...] = ()
    if disputed is None:
        disputed = accounting.dispute_document(event, world.mapping, payment=payment)
        opened = (disputed,)
    return Plan(documents=(*opened, accounting.dispute_closure(event, world.mapping, disputed=disputed)))


_RECEIVABLE = "Dr Accounts receivable"
POSTING_RULES: dict[EventType, PostingRule] = {
    rule.event_type: rule
    for rule in (
        PostingRule(EventType.CUSTOMER_UPSERTED, RuleKind.MASTER_DATA, "-", "ERP customer record", _customer),
        PostingRule(EventType.PRODUCT_UPSERTED, RuleKind.MASTER_DATA, "-", "master data (product family)", _product),
        PostingRule(EventType.PRICE_UPSERTED, RuleKind.MASTER_DATA, "-", "master data (usage type)", _price),
        PostingRule(
            EventType.INVOICE_ISSUED,
            RuleKind.DOCUMENT,
            "customer; each line's price and product",
            f"{_RECEIVABLE} total (negative total: Cr Customer credit); Dr Customer credit / Cr Accounts "
            "receivable balance applied; per line Cr Revenue (earned by day) and Cr Deferred revenue (rest), "
            "net of discounts; per tax rate Cr Tax payable",
            _invoice,
        ),
        PostingRule(
            EventType.PAYMENT_SETTLED,
            RuleKind.DOCUMENT,
            "its invoice",
            "Dr Payment clearing (outside Stripe: Undeposited funds); Cr Accounts receivable; overpaid: "
            "Cr Customer credit",
            _payment,
        ),
        PostingRule(
            EventType.INVOICE_PAID,
            RuleKind.RECORD,
            "its invoice and payments adding up to amount paid",
            "no journal: checks the payments booked cover the invoice's amount paid",
            _invoice_paid,
        ),
        PostingRule(
            EventType.CREDIT_NOTE_ISSUED,
            RuleKind.DOCUMENT,
            "its invoice",
            "per line Dr Deferred revenue (unearned share) / Dr Revenue (rest); per tax rate Dr Tax payable; "
            "Cr Accounts receivable (pre-payment), Cr Customer credit, Cr Refunds payable, Cr Undeposited funds "
            "(out of band)",
            _credit_note,
        ),
        PostingRule(
            EventType.INVOICE_VOIDED,
            RuleKind.DOCUMENT,
            "its invoice",
            "the invoice's journal reversed, dated the void date",
            _void,
        ),
        PostingRule(
            EventType.INVOICE_WRITTEN_OFF,
            RuleKind.DOCUMENT,
            "its invoice",
            "Dr Bad debt; Cr Accounts receivable for the amount remaining",
            _write_off,
        ),
        PostingRule(
            EventType.REFUND_ISSUED,
            RuleKind.SAGA,
            "the payment it refunds (in the saga's wait loop)",
            "through the refund saga: a credit memo when no credit note carries the refund (Dr Contra revenue, "
            "Cr Refunds payable); the refund (Dr Refunds payable, Cr Payment clearing); a refund failed after it "
            "succeeded is reversed",
            _refund,
        ),
        PostingRule(EventType.PAYMENT_FAILED, RuleKind.RECORD, "-", "no journal: recorded in lineage", _payment_failed),
        PostingRule(
            EventType.PAYOUT_PAID,
            RuleKind.DOCUMENT,
            "the payout's balance transactions from the Stripe API, each matched to its posted payment, refund or "
            "dispute document",
            "per balance transaction with a fee: Dr Processing fees / Cr Payment clearing; Dr Bank (per destination) "
            "/ Cr Payment clearing for the payout",
            _payout,
        ),
        PostingRule(
            EventType.PAYOUT_FAILED,
            RuleKind.DOCUMENT,
            "as payout.paid",
            "as payout.paid (each document once), then the deposit reversed: Dr Payment clearing / Cr Bank",
            _payout,
        ),
        PostingRule(
            EventType.DISPUTE_CREATED,
            RuleKind.DOCUMENT,
            "the disputed payment",
            "Dr Disputed funds (amount), Dr Processing fees (dispute fee) / Cr Payment clearing; an inquiry that "
            "withdrew nothing: no journal",
            _dispute_created,
        ),
        PostingRule(
            EventType.DISPUTE_CLOSED,
            RuleKind.DOCUMENT,
            "the disputed payment",
            "won: Dr Payment clearing / Cr Disputed funds (and Cr Processing fees for a returned fee); lost: "
            "Dr Dispute losses / Cr Disputed funds",
            _dispute_closed,
        ),
        *(
            PostingRule(
                event_type, RuleKind.MASTER_DATA, "-", "no journal: contract data in master data", _subscription
            )
            for event_type in (
                EventType.SUBSCRIPTION_CREATED,
                EventType.SUBSCRIPTION_AMENDED,
                EventType.SUBSCRIPTION_RENEWED,
                EventType.SUBSCRIPTION_CANCELLED,
            )
        ),
    )
}

POSTED_EVENT_TYPES: tuple[str, ...] = tuple(sorted(rule.event_type.value for rule in POSTING_RULES.values()))
"""Canonical types the posting pipeline handles; the bus rule routes exactly these."""
