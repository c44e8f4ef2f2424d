"""dispute.created / dispute.closed: a chargeback's funds leave the processor's balance, then come back or are lost.

    dispute (funds withdrawn)   Dr 1170 Disputed funds (amount) + Dr 6100 Processing fees (dispute fee)
                                Cr 1150 Payment clearing (amount + fee)
    won  (funds reinstated)     Dr 1150 Payment clearing / Cr 1170 Disputed funds (amount)
                                and, when Stripe returned the fee: Cr 6100 Processing fees
    lost                        Dr 6520 Dispute losses / Cr 1170 Disputed funds (amount)

Booked from the dispute's own balance transactions, in their (settlement) currency, in the legal entity
of the disputed payment and applied to it. An inquiry that withdrew nothing books nothing.
"""

from __future__ import annotations

from billing_sync.domain.accounting.books import Books
from billing_sync.domain.accounting.external_ids import dispute_closure_external_id, dispute_external_id
from billing_sync.domain.errors import EventValidationError, NothingToPostError
from billing_sync.domain.events import DisputeChanged, DisputeClosedEvent, DisputeCreatedEvent, DisputeFunds
from billing_sync.domain.journal import DocumentKind, ErpDocument, ErpRef
from billing_sync.domain.mapping import AccountMapping, AccountRole

WITHDRAWAL = "dispute"
REINSTATEMENT = "dispute_reversal"


def withdrawal(dispute: DisputeChanged) -> DisputeFunds | None:
    """The balance transaction that took the disputed funds (and the fee), if any."""
    return next(
        (funds for funds in dispute.funds if funds.amount < 0 and funds.reporting_category != REINSTATEMENT), None
    )


def reinstatement(dispute: DisputeChanged) -> DisputeFunds | None:
    return next(
        (funds for funds in dispute.funds if funds.amount > 0 or funds.reporting_category == REINSTATEMENT), None
    )


def dispute_document(
    event: DisputeCreatedEvent | DisputeClosedEvent, mapping: AccountMapping, *, payment: ErpRef
) -> ErpDocument:
    """Raises NothingToPostError (nothing withdrawn), EventValidationError or MappingError."""
    dispute = event.data
    funds = withdrawal(dispute)
    if funds is None:
        raise NothingToPostError(f"dispute {dispute.dispute_id} ({dispute.status}) withdrew no funds")
    books = Books(mapping, payment.legal_entity or event.legal_entity, funds.currency)
    amount, fee = -funds.amount, funds.fee
    reason = dispute.reason or "no reason"
    memo = f"dispute {dispute.dispute_id} of {dispute.charge_id} ({reason}): {funds.balance_transaction_id}"
    clearing = books.account(AccountRole.PAYMENT_CLEARING)
    return ErpDocument(
        external_id=dispute_external_id(event.source, dispute.dispute_id),
        kind=DocumentKind.DISPUTE,
        legal_entity=books.legal_entity,
        subsidiary=books.subsidiary,
        customer_external_id=payment.customer_external_id or "",
        currency=funds.currency,
        posting_date=books.local_date(funds.created),
        total=amount,
        applies_to=(payment.external_id,),
        journal=(
            *books.debit(books.account(AccountRole.DISPUTED_FUNDS), amount, memo),
            *books.debit(books.account(AccountRole.PROCESSING_FEES), fee, f"{memo} dispute fee"),
            *books.credit(clearing, amount + fee, memo),
        ),
        source_event_id=event.event_id,
        memo=memo,
    )


def dispute_closure(event: DisputeClosedEvent, mapping: AccountMapping, *, disputed: ErpDocument) -> ErpDocument:
    """Won: the reinstated funds (and fee) back into clearing; lost: the loss. Raises NothingToPostError for
    another closing status (an inquiry closed), EventValidationError (a win with no reinstatement)."""
    dispute = event.data
    books = Books(mapping, disputed.legal_entity, disputed.currency)
    disputed_funds = books.account(AccountRole.DISPUTED_FUNDS)
    amount = disputed.total
    if dispute.status == "won":
        funds = reinstatement(dispute)
        if funds is None:
            raise EventValidationError(f"dispute {dispute.dispute_id} is won but carries no reinstated funds")
        if funds.currency != disputed.currency or funds.amount != amount:
            raise EventValidationError(
                f"dispute {dispute.dispute_id} reinstates {funds.amount} {funds.currency} but "
                f"{disputed.external_id} withdrew {amount} {disputed.currency}"
            )
        memo = f"dispute {dispute.dispute_id} won: {funds.balance_transaction_id}"
        journal = (
            *books.debit(books.account(AccountRole.PAYMENT_CLEARING), funds.net, memo),
            *books.credit(disputed_funds, amount, memo),
            *books.credit(books.account(AccountRole.PROCESSING_FEES), -funds.fee, f"{memo} dispute fee returned"),
        )
        on = funds.created
    elif dispute.status == "lost":
        memo = f"dispute {dispute.dispute_id} lost"
        journal = (
            *books.debit(books.account(AccountRole.DISPUTE_LOSSES), amount, memo),
            *books.credit(disputed_funds, amount, memo),
        )
        on = event.occurred_at
    else:
        raise NothingToPostError(f"dispute {dispute.dispute_id} closed as {dispute.status}: no funds moved")
    return ErpDocument(
        external_id=dispute_closure_external_id(event.source, dispute.dispute_id),
        kind=DocumentKind.DISPUTE_REVERSAL,
        legal_entity=books.legal_entity,
        subsidiary=books.subsidiary,
        customer_external_id=disputed.customer_external_id,
        currency=disputed.currency,
        posting_date=books.local_date(on),
        total=amount,
        applies_to=(disputed.external_id,),
        journal=journal,
        source_event_id=event.event_id,
        memo=memo,
    )
