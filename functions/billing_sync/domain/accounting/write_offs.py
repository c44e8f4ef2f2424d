"""invoice.written_off: Dr Bad-debt expense, Cr Accounts receivable for what remains open.

What remains open is the source's figure when the invoice was marked uncollectible (its amount
remaining), so the entry does not depend on the order in which its payments arrive.
"""

from __future__ import annotations

from billing_sync.domain.accounting.books import Books
from billing_sync.domain.accounting.external_ids import write_off_external_id
from billing_sync.domain.errors import EventValidationError, NothingToPostError
from billing_sync.domain.events import InvoiceWrittenOffEvent
from billing_sync.domain.journal import DocumentKind, ErpDocument, ErpRef
from billing_sync.domain.mapping import AccountMapping, AccountRole


def write_off_document(event: InvoiceWrittenOffEvent, mapping: AccountMapping, *, invoice: ErpRef) -> ErpDocument:
    """Raises NothingToPostError when nothing remains open, EventValidationError or MappingError."""
    written_off = event.data
    if written_off.amount == 0:
        raise NothingToPostError(f"invoice {written_off.invoice_id} has nothing open to write off")
    if invoice.currency is not None and invoice.currency != written_off.currency:
        raise EventValidationError(
            f"write-off of {written_off.invoice_id} is in {written_off.currency}, the invoice in {invoice.currency}"
        )
    books = Books(mapping, invoice.legal_entity or event.legal_entity, written_off.currency)
    memo = f"{written_off.invoice_id} uncollectible"
    return ErpDocument(
        external_id=write_off_external_id(event.source, written_off.invoice_id),
        kind=DocumentKind.WRITE_OFF,
        legal_entity=books.legal_entity,
        subsidiary=books.subsidiary,
        customer_external_id=invoice.customer_external_id or "",
        currency=written_off.currency,
        posting_date=books.local_date(written_off.written_off_at),
        total=written_off.amount,
        applies_to=(invoice.external_id,),
        journal=(
            *books.debit(books.account(AccountRole.BAD_DEBT), written_off.amount, memo),
            *books.credit(books.account(AccountRole.ACCOUNTS_RECEIVABLE), written_off.amount, memo),
        ),
        source_event_id=event.event_id,
        memo=memo,
    )
