"""refund.issued, booked by the refund saga: the refund, its credit memo when no credit note carries it,
the reversal of a refund that failed after it succeeded, and the void that compensates a credit memo.

    credit memo (no credit note carries the refund)   Dr 4950 Contra revenue / Cr 2250 Refunds payable
    refund (succeeded)                                 Dr 2250 Refunds payable / Cr 1150 Payment clearing
    refund reversal (failed or canceled after it succeeded)   Dr 1150 Payment clearing / Cr 2250 Refunds payable
    credit memo void (compensation)                    the credit memo's journal reversed

Every document is booked in the entity and currency of the payment refunded, and applies to it, so the
refunds of one payment are found (and summed) through the ledger's AppliedTo index.
"""

from __future__ import annotations

from datetime import date

from billing_sync.domain.accounting.books import Books
from billing_sync.domain.accounting.external_ids import (
    credit_memo_void_external_id,
    refund_credit_memo_external_id,
    refund_external_id,
    refund_reversal_external_id,
)
from billing_sync.domain.errors import EventValidationError
from billing_sync.domain.events import RefundIssuedEvent
from billing_sync.domain.journal import DocumentKind, ErpDocument, ErpRef, JournalLine
from billing_sync.domain.mapping import AccountMapping, AccountRole


def _books(event: RefundIssuedEvent, mapping: AccountMapping, payment: ErpRef) -> Books:
    refund = event.data
    if payment.currency is not None and payment.currency != refund.currency:
        raise EventValidationError(
            f"refund {refund.refund_id} is in {refund.currency} but the payment it refunds is in {payment.currency}"
        )
    return Books(mapping, payment.legal_entity or event.legal_entity, refund.currency)


def _document(
    event: RefundIssuedEvent,
    books: Books,
    payment: ErpRef,
    *,
    external_id: str,
    kind: DocumentKind,
    journal: tuple[JournalLine, ...],
    memo: str,
) -> ErpDocument:
    refund = event.data
    return ErpDocument(
        external_id=external_id,
        kind=kind,
        legal_entity=books.legal_entity,
        subsidiary=books.subsidiary,
        customer_external_id=payment.customer_external_id or "",
        currency=refund.currency,
        posting_date=books.local_date(refund.refunded_at),
        total=refund.amount,
        applies_to=(payment.external_id,),
        journal=journal,
        source_event_id=event.event_id,
        memo=memo,
    )


def refund_credit_memo(event: RefundIssuedEvent, mapping: AccountMapping, *, payment: ErpRef) -> ErpDocument:
    """Raises EventValidationError (currency) or MappingError."""
    books = _books(event, mapping, payment)
    refund = event.data
    memo = f"credit for refund {refund.refund_id}"
    return _document(
        event,
        books,
        payment,
        external_id=refund_credit_memo_external_id(event.source, refund.refund_id),
        kind=DocumentKind.CREDIT_MEMO,
        journal=(
            *books.debit(books.account(AccountRole.CONTRA_REVENUE), refund.amount, memo),
            *books.credit(books.account(AccountRole.REFUND_LIABILITY), refund.amount, memo),
        ),
        memo=memo,
    )


def refund_document(event: RefundIssuedEvent, mapping: AccountMapping, *, payment: ErpRef) -> ErpDocument:
    books = _books(event, mapping, payment)
    refund = event.data
    memo = f"refund {refund.refund_id} of {payment.external_id}"
    return _document(
        event,
        books,
        payment,
        external_id=refund_external_id(event.source, refund.refund_id),
        kind=DocumentKind.REFUND,
        journal=(
            *books.debit(books.account(AccountRole.REFUND_LIABILITY), refund.amount, memo),
            *books.credit(books.account(AccountRole.PAYMENT_CLEARING), refund.amount, memo),
        ),
        memo=memo,
    )


def refund_reversal(event: RefundIssuedEvent, mapping: AccountMapping, *, payment: ErpRef) -> ErpDocument:
    books = _books(event, mapping, payment)
    refund = event.data
    memo = f"refund {refund.refund_id} {refund.status} after it succeeded"
    return _document(
        event,
        books,
        payment,
        external_id=refund_reversal_external_id(event.source, refund.refund_id),
        kind=DocumentKind.REFUND_REVERSAL,
        journal=(
            *books.debit(books.account(AccountRole.PAYMENT_CLEARING), refund.amount, memo),
            *books.credit(books.account(AccountRole.REFUND_LIABILITY), refund.amount, memo),
        ),
        memo=memo,
    )


def credit_memo_void(credit_memo: ErpDocument, *, source_event_id: str, on: date) -> ErpDocument:
    """The credit memo's journal reversed (compensation); idempotent by its external id."""
    return credit_memo.model_copy(
        update={
            "external_id": credit_memo_void_external_id(credit_memo.external_id),
            "kind": DocumentKind.CREDIT_MEMO_VOID,
            "posting_date": on,
            "applies_to": (credit_memo.external_id,),
            "journal": tuple(
                line.reversed(f"void {line.memo or credit_memo.external_id}") for line in credit_memo.journal
            ),
            "source_event_id": source_event_id,
            "memo": f"void of {credit_memo.external_id}",
        }
    )
