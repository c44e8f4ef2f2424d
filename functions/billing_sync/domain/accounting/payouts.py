"""payout.paid / payout.failed: the processor's fees, and the cash leaving the processor's balance for the bank.

    fee (per balance transaction with a fee)   Dr 6100 Processing fees / Cr 1150 Payment clearing   fee
    payout                                      Dr 1000 Bank (per destination) / Cr 1150 Payment clearing   amount
    payout reversal (the bank returned it)      Dr 1150 Payment clearing / Cr 1000 Bank                  amount

All in the settlement currency (the payout's). Every other balance transaction the payout settles is
matched to the document that already put it through clearing (a charge to its payment by reference, a
refund to its refund, a dispute's funds to the dispute document), so that clearing for the payout's
transactions nets to exactly zero: Σ payments - Σ refunds - Σ disputes - Σ fees - payout = Σ net - payout = 0.
A dispute's fee is booked by the dispute document, never again here.

payout.failed books what payout.paid books (same external ids, so each document exists once) and then the
reversal, whatever the order they arrive in. Chosen over "nothing to book before the deposit was booked":
a payout that fails in transit never gets a payout.paid, yet its fees are real, and the funds come back as
a `payout_failure` balance transaction in a later payout, which is matched to this reversal; a failed
payout.paid that arrives late finds every document posted. Bank nets to zero either way.
"""

from __future__ import annotations

from dataclasses import dataclass

from billing_sync.domain.accounting.books import Books
from billing_sync.domain.accounting.external_ids import (
    dispute_closure_external_id,
    dispute_external_id,
    fee_external_id,
    payout_external_id,
    payout_reversal_external_id,
    refund_external_id,
    refund_reversal_external_id,
)
from billing_sync.domain.accounting.payments import payment_reference
from billing_sync.domain.errors import EventValidationError
from billing_sync.domain.events import PayoutFailedEvent, PayoutPaidEvent
from billing_sync.domain.journal import DocumentKind, ErpDocument
from billing_sync.domain.mapping import AccountMapping, AccountRole
from billing_sync.domain.ports import BalanceTransaction

PayoutEvent = PayoutPaidEvent | PayoutFailedEvent

_CHARGE_TYPES = frozenset({"charge", "payment"})
_REFUND_TYPES = frozenset({"refund", "payment_refund"})
_REFUND_FAILURE_TYPES = frozenset({"refund_failure", "payment_failure_refund"})
_DISPUTE_CATEGORIES = frozenset({"dispute", "dispute_reversal"})
_PAYOUT_TYPES = frozenset({"payout"})
_PAYOUT_FAILURE_TYPES = frozenset({"payout_failure"})
FEE_CATEGORY = "fee"  # reporting_category of a balance transaction that is itself a fee (Radar, Billing, ...)


@dataclass(frozen=True)
class SettlementTarget:
    """The posted document a balance transaction must be matched to: by external id, or a payment by reference."""

    txn: BalanceTransaction
    external_id: str | None = None
    references: tuple[str, ...] = ()
    what: str = ""

    def describe(self) -> str:
        return f"{self.txn.id} ({self.txn.type} {self.txn.source}, {self.txn.amount} {self.txn.currency}: {self.what})"


def settlement_target(source: str, txn: BalanceTransaction, *, payout_id: str) -> SettlementTarget | None:
    """What `txn` is matched to; None when it needs no match (the payout itself, a fee booked by its own FEE).

    Raises EventValidationError for a kind of balance transaction nothing here books.
    """
    category = txn.reporting_category or txn.type
    if txn.type in _PAYOUT_TYPES and txn.source == payout_id:
        return None
    if category == FEE_CATEGORY or txn.type == "stripe_fee":
        return None
    if txn.type in _CHARGE_TYPES:
        references = tuple(
            ref
            for ref in (payment_reference(txn.payment_intent, None), payment_reference(None, txn.source))
            if ref is not None
        )
        return SettlementTarget(txn, references=references, what="its payment")
    if txn.source is None:
        raise EventValidationError(f"balance transaction {txn.id} ({txn.type}) names no source to match")
    if txn.type in _REFUND_TYPES:
        return SettlementTarget(txn, external_id=refund_external_id(source, txn.source), what="its refund")
    if txn.type in _REFUND_FAILURE_TYPES:
        return SettlementTarget(txn, external_id=refund_reversal_external_id(source, txn.source), what="its reversal")
    if category in _DISPUTE_CATEGORIES:
        external_id = (
            dispute_external_id(source, txn.source)
            if category == "dispute"
            else dispute_closure_external_id(source, txn.source)
        )
        return SettlementTarget(txn, external_id=external_id, what=f"its {category.replace('_', ' ')} document")
    if txn.type in _PAYOUT_FAILURE_TYPES:
        return SettlementTarget(
            txn, external_id=payout_reversal_external_id(source, txn.source), what="the failed payout's reversal"
        )
    raise EventValidationError(
        f"balance transaction {txn.id} is a {txn.type} ({category}) that no document kind books; "
        "the payout cannot be shown to clear"
    )


def fee_amount(txn: BalanceTransaction) -> int:
    """The fee a balance transaction costs in its currency (negative: a fee given back); dispute fees excluded."""
    category = txn.reporting_category or txn.type
    if category in _DISPUTE_CATEGORIES:
        return 0  # the dispute documents book them
    if category == FEE_CATEGORY or txn.type == "stripe_fee":
        return -txn.net
    return txn.fee


def fee_document(event: PayoutEvent, mapping: AccountMapping, *, txn: BalanceTransaction) -> ErpDocument | None:
    """Dr Processing fees / Cr Payment clearing for `txn`'s fee; None when it has none."""
    amount = fee_amount(txn)
    if amount == 0:
        return None
    books = Books(mapping, event.legal_entity, txn.currency)
    details = ", ".join(f"{kind} {value}" for kind, value in txn.fee_details) or f"{txn.type} {txn.net}"
    memo = f"fees on {txn.id} ({txn.type} {txn.source}): {details}"
    return ErpDocument(
        external_id=fee_external_id(event.source, txn.id),
        kind=DocumentKind.FEE,
        legal_entity=books.legal_entity,
        subsidiary=books.subsidiary,
        customer_external_id="",
        currency=txn.currency,
        posting_date=books.local_date(txn.created),
        total=amount,
        journal=(
            *books.debit(books.account(AccountRole.PROCESSING_FEES), amount, memo),
            *books.credit(books.account(AccountRole.PAYMENT_CLEARING), amount, memo),
        ),
        source_event_id=event.event_id,
        memo=memo,
    )


def payout_document(event: PayoutEvent, mapping: AccountMapping) -> ErpDocument:
    """Dr Bank (the destination's) / Cr Payment clearing for the payout amount. Raises MappingError."""
    payout = event.data
    books = Books(mapping, event.legal_entity, payout.currency)
    bank = books.account(AccountRole.BANK, payout_destination=payout.destination)
    memo = f"payout {payout.payout_id} to {payout.destination or 'the default bank account'}"
    return ErpDocument(
        external_id=payout_external_id(event.source, payout.payout_id),
        kind=DocumentKind.PAYOUT,
        legal_entity=books.legal_entity,
        subsidiary=books.subsidiary,
        customer_external_id="",
        currency=payout.currency,
        posting_date=books.local_date(payout.arrival_date),
        total=payout.amount,
        journal=(
            *books.debit(bank, payout.amount, memo),
            *books.credit(books.account(AccountRole.PAYMENT_CLEARING), payout.amount, memo),
        ),
        source_event_id=event.event_id,
        memo=memo,
        reference=f"payout:{payout.payout_id}",
    )


def payout_reversal(event: PayoutFailedEvent, mapping: AccountMapping) -> ErpDocument:
    """Dr Payment clearing / Cr Bank: the deposit the bank returned, back in the processor's balance."""
    payout = event.data
    deposit = payout_document(event, mapping)
    books = Books(mapping, event.legal_entity, payout.currency)
    memo = f"payout {payout.payout_id} failed ({payout.failure_code or 'no code'}): deposit reversed"
    return deposit.model_copy(
        update={
            "external_id": payout_reversal_external_id(event.source, payout.payout_id),
            "applies_to": (deposit.external_id,),
            "posting_date": books.local_date(event.occurred_at),
            "journal": tuple(line.reversed(memo) for line in deposit.journal),
            "memo": memo,
            "reference": None,
        }
    )
