"""invoice.issued: the receivable, revenue earned so far, deferred revenue, tax per rate, customer credit.

    Dr Accounts receivable       total (a negative total: Cr Customer credit instead)
    Dr Customer credit           balance applied (total - amount due); Cr Accounts receivable the same
    per line, at its transaction price (net of discounts and inclusive tax), signed:
        Cr Revenue               the share earned by the posting date (by day, domain.recognition)
        Cr Deferred revenue      the rest
    per tax rate: Cr Tax payable (inclusive and exclusive)

Afterwards the invoice's receivable equals its amount due, and after its payments its amount remaining.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from billing_sync.domain.accounting.books import Books
from billing_sync.domain.accounting.external_ids import customer_external_id, invoice_external_id
from billing_sync.domain.errors import EventValidationError, NothingToPostError
from billing_sync.domain.events import InvoiceIssued, InvoiceIssuedEvent, InvoiceLine, TaxAmount
from billing_sync.domain.journal import DocumentKind, DocumentLine, ErpDocument, JournalLine
from billing_sync.domain.mapping import AccountMapping, AccountRole
from billing_sync.domain.recognition import Obligation


@dataclass(frozen=True)
class LineClass:
    """How a line earns revenue, from its parent and the product and price master data."""

    revenue_class: str
    product_family: str | None = None


def tax_by_rate(taxes: tuple[TaxAmount, ...]) -> dict[tuple[str, bool], int]:
    totals: dict[tuple[str, bool], int] = defaultdict(int)
    for tax in taxes:
        totals[(tax.tax_rate, tax.inclusive)] += tax.amount
    return {key: amount for key, amount in totals.items() if amount}


def check_invoice_totals(invoice: InvoiceIssued) -> None:
    """Raises EventValidationError unless lines, discounts, taxes and balances add up to what is due.

    A truncated line list (`lines_complete` False) is checked for its totals only: its lines are checked
    once the rest of them is read."""
    problems: list[str] = []
    if invoice.lines_complete:
        line_sum = sum(line.amount for line in invoice.lines)
        if line_sum != invoice.subtotal:
            problems.append(f"lines sum to {line_sum} but subtotal is {invoice.subtotal}")
        line_discounts = sum(line.discount for line in invoice.lines)
        if line_discounts != invoice.discount_total:
            problems.append(f"line discounts sum to {line_discounts} but the invoice declares {invoice.discount_total}")
        line_taxes = tax_by_rate(tuple(tax for line in invoice.lines for tax in line.taxes))
        if line_taxes != tax_by_rate(invoice.taxes):
            problems.append(f"line taxes per rate {line_taxes} differ from the invoice's {tax_by_rate(invoice.taxes)}")
    expected_total = invoice.subtotal - invoice.discount_total + invoice.tax_exclusive_total
    if expected_total != invoice.total:
        problems.append(
            f"subtotal {invoice.subtotal} - discounts {invoice.discount_total} + exclusive tax "
            f"{invoice.tax_exclusive_total} = {expected_total}, but total is {invoice.total}"
        )
    expected_due = invoice.total + invoice.starting_balance - invoice.ending_balance
    if expected_due != invoice.amount_due:
        problems.append(
            f"total {invoice.total} + starting balance {invoice.starting_balance} - ending balance "
            f"{invoice.ending_balance} = {expected_due}, but amount due is {invoice.amount_due}"
        )
    if invoice.amount_remaining is not None and invoice.amount_paid + invoice.amount_remaining != invoice.amount_due:
        problems.append(
            f"amount paid {invoice.amount_paid} + remaining {invoice.amount_remaining} != due {invoice.amount_due}"
        )
    if problems:
        raise EventValidationError(f"invoice {invoice.invoice_id} does not add up: " + "; ".join(problems))


def invoice_document(
    event: InvoiceIssuedEvent, mapping: AccountMapping, *, line_classes: Mapping[str, LineClass] | None = None
) -> ErpDocument:
    """The ERP invoice for `event`, booked on its finalisation date.

    `line_classes` (by line id) refines a line's revenue class from master data. Raises
    EventValidationError, MappingError, or NothingToPostError for an invoice with nothing to book.
    """
    invoice = event.data
    check_invoice_totals(invoice)
    books = Books(mapping, event.legal_entity, invoice.currency)
    posting_date = books.local_date(invoice.issued_at)
    classes = line_classes or {}

    def line_class(line: InvoiceLine) -> LineClass:
        return classes.get(line.line_id) or LineClass(line.revenue_class.value)

    def journal() -> Iterator[JournalLine]:
        receivable = books.account(AccountRole.ACCOUNTS_RECEIVABLE)
        customer_credit = books.account(AccountRole.CUSTOMER_CREDIT)
        number = invoice.number or invoice.invoice_id
        if invoice.total >= 0:
            yield from books.debit(receivable, invoice.total, f"{number} total")
        else:
            yield from books.credit(customer_credit, -invoice.total, f"{number} negative total credited")
        applied = max(invoice.total, 0) - invoice.amount_due
        if applied:
            yield from books.debit(customer_credit, applied, f"{number} customer balance applied")
            yield from books.credit(receivable, applied, f"{number} customer balance applied")
        for line in invoice.lines:
            cls = line_class(line)
            keys = {"revenue_class": cls.revenue_class, "product_family": cls.product_family}
            obligation = Obligation.over(line.price, line.period_start, line.period_end)
            earned = obligation.earned_through(posting_date)
            memo = f"{line.line_id} {obligation.start}..{obligation.end}"
            yield from books.credit(books.account(AccountRole.REVENUE, **keys), earned, memo)
            yield from books.credit(books.account(AccountRole.DEFERRED_REVENUE, **keys), line.price - earned, memo)
        for (rate, inclusive), amount in sorted(tax_by_rate(invoice.taxes).items()):
            memo = f"{rate} {'inclusive' if inclusive else 'exclusive'}"
            yield from books.credit(books.account(AccountRole.TAX_PAYABLE, tax_rate=rate), amount, memo)

    entries = tuple(journal())
    if not entries:
        raise NothingToPostError(f"invoice {invoice.invoice_id} has no value to book")
    lines = tuple(
        DocumentLine(
            item=books.item(
                revenue_class=line_class(line).revenue_class, product_family=line_class(line).product_family
            ),
            source_line_id=line.line_id,
            description=line.description,
            amount=line.amount - line.discount,
            discount=line.discount,
            tax=line.tax_exclusive + line.tax_inclusive,
            price=line.price,
            revenue_class=line_class(line).revenue_class,
            service_start=line.period_start,
            service_end=line.period_end,
            obligation=line.price,
        )
        for line in invoice.lines
    )
    return ErpDocument(
        external_id=invoice_external_id(event.source, invoice.invoice_id),
        kind=DocumentKind.INVOICE,
        legal_entity=event.legal_entity,
        subsidiary=books.subsidiary,
        customer_external_id=customer_external_id(event.source, invoice.customer_id),
        currency=invoice.currency,
        posting_date=posting_date,
        total=invoice.total,
        lines=lines,
        journal=entries,
        source_event_id=event.event_id,
        memo=invoice.number,
    )
