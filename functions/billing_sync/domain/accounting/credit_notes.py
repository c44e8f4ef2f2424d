"""credit_note.issued: revenue and tax given back, and where the credit goes.

per line, at its credited price:
    Dr Deferred revenue      the share of the invoice line not yet earned on the credit date (capped)
    Dr Revenue               the rest (a line without an invoice line: Dr Contra revenue)
per tax rate: Dr Tax payable
Cr Accounts receivable       pre-payment amount (reduces what the invoice still asks)
Cr Customer credit           amount credited to the customer's balance
Cr Refund liability          amount to be refunded (the refund itself is posted by the refund saga)
Cr Undeposited funds         amount settled outside the processor
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any

from billing_sync.domain.accounting.books import Books
from billing_sync.domain.accounting.external_ids import credit_note_external_id
from billing_sync.domain.accounting.invoices import tax_by_rate
from billing_sync.domain.errors import EventValidationError, NothingToPostError
from billing_sync.domain.events import CreditNoteIssued, CreditNoteIssuedEvent, CreditNoteLine
from billing_sync.domain.journal import DocumentKind, DocumentLine, ErpDocument, JournalLine
from billing_sync.domain.mapping import AccountMapping, AccountRole
from billing_sync.domain.recognition import Obligation


def check_credit_note_totals(note: CreditNoteIssued) -> None:
    """Raises EventValidationError unless lines, taxes and the credit's destinations add up to the total."""
    problems: list[str] = []
    line_sum = sum(line.amount for line in note.lines)
    if line_sum != note.subtotal:
        problems.append(f"lines sum to {line_sum} but subtotal is {note.subtotal}")
    line_taxes = tax_by_rate(tuple(tax for line in note.lines for tax in line.taxes))
    if line_taxes != tax_by_rate(note.taxes):
        problems.append(f"line taxes per rate {line_taxes} differ from the credit note's {tax_by_rate(note.taxes)}")
    expected_total = note.subtotal - note.discount_total + note.tax_exclusive_total
    if expected_total != note.total:
        problems.append(f"subtotal - discounts + exclusive tax = {expected_total}, but total is {note.total}")
    destinations = note.pre_payment_amount + note.refund_amount + note.credit_balance_amount + note.out_of_band_amount
    if destinations != note.total:
        problems.append(
            f"pre-payment {note.pre_payment_amount} + refund {note.refund_amount} + credit balance "
            f"{note.credit_balance_amount} + out of band {note.out_of_band_amount} = {destinations}, "
            f"but total is {note.total}"
        )
    if problems:
        raise EventValidationError(f"credit note {note.credit_note_id} does not add up: " + "; ".join(problems))


def credit_note_document(event: CreditNoteIssuedEvent, mapping: AccountMapping, *, invoice: ErpDocument) -> ErpDocument:
    """The ERP credit memo applied to `invoice` (as posted), in the invoice's entity.

    Raises EventValidationError (totals, currency, an unknown invoice line), MappingError or
    NothingToPostError for a zero credit note.
    """
    note = event.data
    check_credit_note_totals(note)
    if note.total == 0:
        raise NothingToPostError(f"credit note {note.credit_note_id} credits nothing")
    if invoice.currency != note.currency:
        raise EventValidationError(
            f"credit note {note.credit_note_id} is in {note.currency} but its invoice is in {invoice.currency}"
        )
    books = Books(mapping, invoice.legal_entity, note.currency)
    credit_day = books.local_date(note.issued_at)
    invoice_lines = {line.source_line_id: line for line in invoice.lines if line.source_line_id}
    deferred_shares: dict[str, int] = {}

    def journal() -> Iterator[JournalLine]:
        for line in note.lines:
            memo = f"{note.credit_note_id} {line.line_id}"
            if line.invoice_line_id is None:
                yield from books.debit(books.account(AccountRole.CONTRA_REVENUE), line.price, memo)
                continue
            original = invoice_lines.get(line.invoice_line_id)
            if original is None or original.service_start is None or original.service_end is None:
                raise EventValidationError(
                    f"credit note {note.credit_note_id} credits line {line.invoice_line_id}, which invoice "
                    f"{invoice.external_id} does not have"
                )
            original_price = original.price if original.price is not None else original.amount
            obligation = Obligation.over(original_price, original.service_start, original.service_end)
            unearned = obligation.unearned_after(credit_day)
            deferred = max(0, min(line.price, unearned)) if line.price >= 0 else min(0, max(line.price, unearned))
            deferred_shares[line.line_id] = deferred
            keys = {"revenue_class": original.revenue_class}
            yield from books.debit(books.account(AccountRole.DEFERRED_REVENUE, **keys), deferred, memo)
            yield from books.debit(books.account(AccountRole.REVENUE, **keys), line.price - deferred, memo)
        for (rate, inclusive), amount in sorted(tax_by_rate(note.taxes).items()):
            memo = f"{rate} {'inclusive' if inclusive else 'exclusive'}"
            yield from books.debit(books.account(AccountRole.TAX_PAYABLE, tax_rate=rate), amount, memo)
        number = note.number or note.credit_note_id
        yield from books.credit(books.account(AccountRole.ACCOUNTS_RECEIVABLE), note.pre_payment_amount, number)
        yield from books.credit(books.account(AccountRole.CUSTOMER_CREDIT), note.credit_balance_amount, number)
        yield from books.credit(books.account(AccountRole.REFUND_LIABILITY), note.refund_amount, number)
        yield from books.credit(books.account(AccountRole.UNDEPOSITED_FUNDS), note.out_of_band_amount, number)

    entries = tuple(journal())

    def obligation(line: CreditNoteLine) -> dict[str, Any]:
        """The deferred share credited is a negative obligation over the rest of the line's service period."""
        original = invoice_lines.get(line.invoice_line_id) if line.invoice_line_id else None
        if original is None or not deferred_shares.get(line.line_id):
            return {}
        return {
            "service_start": datetime.combine(credit_day + timedelta(days=1), time(), tzinfo=UTC),
            "service_end": original.service_end,
            "revenue_class": original.revenue_class,
            "obligation": -deferred_shares[line.line_id],
        }

    return ErpDocument(
        external_id=credit_note_external_id(event.source, note.credit_note_id),
        kind=DocumentKind.CREDIT_MEMO,
        legal_entity=invoice.legal_entity,
        subsidiary=books.subsidiary,
        customer_external_id=invoice.customer_external_id,
        currency=note.currency,
        posting_date=credit_day,
        total=note.total,
        lines=tuple(
            DocumentLine(
                item=(
                    invoice_lines[line.invoice_line_id].item
                    if line.invoice_line_id in invoice_lines
                    else books.item(revenue_class="one_off")
                ),
                source_line_id=line.line_id,
                description=line.description,
                amount=line.amount - line.discount,
                discount=line.discount,
                tax=sum(tax.amount for tax in line.taxes),
                price=line.price,
                **obligation(line),
            )
            for line in note.lines
        ),
        applies_to=(invoice.external_id,),
        journal=entries,
        source_event_id=event.event_id,
        memo=note.reason,
    )
