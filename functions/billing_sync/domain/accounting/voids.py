"""invoice.voided: a reversing document of the invoice as posted, dated the void date. Nothing is deleted."""

from __future__ import annotations

from billing_sync.domain.accounting.external_ids import void_external_id
from billing_sync.domain.errors import DocumentConflictError
from billing_sync.domain.events import InvoiceVoidedEvent
from billing_sync.domain.journal import DocumentKind, ErpDocument
from billing_sync.domain.mapping import AccountMapping


def void_document(event: InvoiceVoidedEvent, *, invoice: ErpDocument, mapping: AccountMapping) -> ErpDocument:
    """Every line of the invoice's journal, debit and credit swapped; raises DocumentConflictError when
    the voided invoice's total is not the total that was posted."""
    voided = event.data
    if voided.total != invoice.total or voided.currency != invoice.currency:
        raise DocumentConflictError(
            f"invoice {voided.invoice_id} was posted for {invoice.total} {invoice.currency} but is voided for "
            f"{voided.total} {voided.currency}"
        )
    return ErpDocument(
        external_id=void_external_id(event.source, voided.invoice_id),
        kind=DocumentKind.INVOICE_VOID,
        legal_entity=invoice.legal_entity,
        subsidiary=invoice.subsidiary,
        customer_external_id=invoice.customer_external_id,
        currency=invoice.currency,
        posting_date=mapping.entity(invoice.legal_entity).local_date(voided.voided_at),
        total=invoice.total,
        applies_to=(invoice.external_id,),
        journal=tuple(line.reversed(f"void {line.memo or invoice.external_id}") for line in invoice.journal),
        source_event_id=event.event_id,
        memo=f"void of {invoice.memo or invoice.external_id}",
    )
