"""Accounting defaults: canonical events become balanced ERP documents.

invoice.issued   Dr Accounts receivable (total) + Dr Discounts
                 Cr Deferred revenue (service period ends after the invoice date) or Revenue, per line,
                    net of inclusive tax
                 Cr Tax payable (exclusive + inclusive tax)
payment.settled  Dr Payment clearing; Cr Accounts receivable (fees, when known: Dr Processing fees,
                 Cr Payment clearing), in the legal entity of the invoice it pays
A document with no value (a $0 invoice, a zero payment) has nothing to book and is recorded as IGNORED.
"""

from __future__ import annotations

from collections.abc import Iterator

from billing_sync.domain.errors import EventValidationError, NothingToPostError
from billing_sync.domain.events import (
    CustomerUpsertedEvent,
    InvoiceIssued,
    InvoiceIssuedEvent,
    PaymentSettledEvent,
)
from billing_sync.domain.journal import DocumentKind, DocumentLine, ErpCustomer, ErpDocument, JournalLine
from billing_sync.domain.mapping import AccountMapping, AccountRole, MappingContext


def invoice_external_id(source: str, invoice_id: str) -> str:
    return f"{source}-invoice-{invoice_id}"


def payment_external_id(source: str, payment_id: str) -> str:
    return f"{source}-payment-{payment_id}"


def customer_external_id(source: str, customer_id: str) -> str:
    return f"{source}-customer-{customer_id}"


def check_invoice_totals(invoice: InvoiceIssued) -> None:
    """Raises EventValidationError unless lines, discounts and tax add up to the invoice total."""
    problems: list[str] = []
    line_sum = sum(line.amount for line in invoice.lines)
    if line_sum != invoice.subtotal:
        problems.append(f"lines sum to {line_sum} but subtotal is {invoice.subtotal}")
    for label, line_total, declared in (
        ("discounts", sum(line.discount for line in invoice.lines), invoice.discount_total),
        ("exclusive tax", sum(line.tax_exclusive for line in invoice.lines), invoice.tax_exclusive_total),
        ("inclusive tax", sum(line.tax_inclusive for line in invoice.lines), invoice.tax_inclusive_total),
    ):
        if line_total != declared:
            problems.append(f"line {label} sum to {line_total} but the invoice declares {declared}")
    expected_total = invoice.subtotal - invoice.discount_total + invoice.tax_exclusive_total
    if expected_total != invoice.total:
        problems.append(
            f"subtotal {invoice.subtotal} - discounts {invoice.discount_total} + exclusive tax "
            f"{invoice.tax_exclusive_total} = {expected_total}, but total is {invoice.total}"
        )
    for line in invoice.lines:
        if line.discount > line.amount or line.tax_inclusive > line.amount - line.discount:
            problems.append(f"line {line.line_id}: discount or inclusive tax exceeds the line amount")
    if problems:
        raise EventValidationError(f"invoice {invoice.invoice_id} does not add up: " + "; ".join(problems))


def check_entity_currency(mapping: AccountMapping, legal_entity: str, currency: str) -> str:
    """Returns the entity's subsidiary; raises EventValidationError for an unknown entity or currency."""
    entity = mapping.legal_entities.get(legal_entity)
    if entity is None:
        raise EventValidationError(f"legal entity {legal_entity!r} is not known to mapping {mapping.version}")
    if currency not in entity.currencies:
        raise EventValidationError(f"legal entity {legal_entity} does not transact in {currency}")
    return entity.subsidiary


def invoice_document(event: InvoiceIssuedEvent, mapping: AccountMapping) -> ErpDocument:
    """The ERP invoice for `event`; raises EventValidationError or MappingError."""
    invoice = event.data
    check_invoice_totals(invoice)
    if invoice.subtotal == 0 and invoice.tax_exclusive_total == 0:
        raise NothingToPostError(f"invoice {invoice.invoice_id} has no value to book")
    subsidiary = check_entity_currency(mapping, event.legal_entity, invoice.currency)
    entity_context = MappingContext(legal_entity=event.legal_entity)

    def account(role: AccountRole, revenue_class: str | None = None) -> str:
        return mapping.account(role, entity_context.model_copy(update={"revenue_class": revenue_class}))

    def journal() -> Iterator[JournalLine]:
        currency = invoice.currency
        if invoice.total:
            yield JournalLine(account=account(AccountRole.ACCOUNTS_RECEIVABLE), currency=currency, debit=invoice.total)
        if invoice.discount_total:
            yield JournalLine(account=account(AccountRole.DISCOUNTS), currency=currency, debit=invoice.discount_total)
        invoice_day = invoice.issued_at.date()
        for line in invoice.lines:
            net = line.amount - line.tax_inclusive
            if not net:
                continue
            deferred = line.period_end.date() > invoice_day
            role = AccountRole.DEFERRED_REVENUE if deferred else AccountRole.REVENUE
            yield JournalLine(
                account=account(role, line.revenue_class.value),
                currency=currency,
                credit=net,
                memo=f"{line.line_id} {line.period_start.date()}..{line.period_end.date()}",
            )
        tax = invoice.tax_exclusive_total + invoice.tax_inclusive_total
        if tax:
            yield JournalLine(account=account(AccountRole.TAX_PAYABLE), currency=currency, credit=tax)

    lines = tuple(
        DocumentLine(
            item=mapping.item(entity_context.model_copy(update={"revenue_class": line.revenue_class.value})),
            description=line.description,
            amount=line.amount - line.discount,
            tax=line.tax_exclusive + line.tax_inclusive,
        )
        for line in invoice.lines
    )
    return ErpDocument(
        external_id=invoice_external_id(event.source, invoice.invoice_id),
        kind=DocumentKind.INVOICE,
        legal_entity=event.legal_entity,
        subsidiary=subsidiary,
        customer_external_id=customer_external_id(event.source, invoice.customer_id),
        currency=invoice.currency,
        posting_date=invoice.issued_at.date(),
        total=invoice.total,
        lines=lines,
        journal=tuple(journal()),
        source_event_id=event.event_id,
        memo=invoice.number,
    )


def payment_document(event: PaymentSettledEvent, mapping: AccountMapping, *, legal_entity: str) -> ErpDocument:
    """The ERP customer payment applied to its invoice, booked in the invoice's `legal_entity`.

    Raises NothingToPostError for a zero payment, EventValidationError or MappingError.
    """
    payment = event.data
    if payment.amount == 0:
        raise NothingToPostError(f"payment for invoice {payment.invoice_id} settles a zero amount")
    subsidiary = check_entity_currency(mapping, legal_entity, payment.currency)
    context = MappingContext(legal_entity=legal_entity)
    clearing = mapping.account(AccountRole.PAYMENT_CLEARING, context)
    journal = [
        JournalLine(account=clearing, currency=payment.currency, debit=payment.amount),
        JournalLine(
            account=mapping.account(AccountRole.ACCOUNTS_RECEIVABLE, context),
            currency=payment.currency,
            credit=payment.amount,
        ),
    ]
    if payment.fee:
        journal += [
            JournalLine(
                account=mapping.account(AccountRole.PROCESSING_FEES, context),
                currency=payment.currency,
                debit=payment.fee,
            ),
            JournalLine(account=clearing, currency=payment.currency, credit=payment.fee),
        ]
    return ErpDocument(
        external_id=payment_external_id(event.source, payment.payment_id),
        kind=DocumentKind.PAYMENT,
        legal_entity=legal_entity,
        subsidiary=subsidiary,
        customer_external_id=customer_external_id(event.source, payment.customer_id),
        currency=payment.currency,
        posting_date=payment.settled_at.date(),
        total=payment.amount,
        applies_to=(invoice_external_id(event.source, payment.invoice_id),),
        journal=tuple(journal),
        source_event_id=event.event_id,
    )


def erp_customer(event: CustomerUpsertedEvent, mapping: AccountMapping) -> ErpCustomer:
    """The ERP customer record; raises EventValidationError for an unknown legal entity."""
    entity = mapping.legal_entities.get(event.legal_entity)
    if entity is None:
        raise EventValidationError(f"legal entity {event.legal_entity!r} is not known to mapping {mapping.version}")
    return ErpCustomer(
        external_id=customer_external_id(event.source, event.data.customer_id),
        name=event.data.name,
        email=event.data.email,
        subsidiary=entity.subsidiary,
        currency=event.data.default_currency,
    )
