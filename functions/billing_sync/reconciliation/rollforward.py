"""The deferred revenue roll-forward of both sides, per legal entity, currency and period (pure).

`opening + billed - recognised - credited = closing`, in signed minor units; opening is the closing of every
earlier period. The two sides are computed independently, so the `deferred_revenue_*` controls compare them:

- ERP side (`erp_roll_forward`): the ERP's own documents, their journal lines on the deferred revenue accounts
  (credits minus debits), by kind and posting month: invoices are billed, recognition journals (and a void's
  reversal of them) recognised, every other kind credited (the definition of `ops.revenue.deferred_roll_forward`
  and of the running balances).
- Billing side (`billing_roll_forward`): the billing documents alone (invoice lines with their service periods,
  credit note lines with the invoice line they credit), by Stripe's "by day" allocation (`domain.recognition`):
  billed is what an invoice had not earned on its issue day; recognised what each month earned after it, through
  the month's last day (the monthly release), stopping at the last complete month before a void and at a write-off;
  credited what a credit note took off the unearned share of the line it credits (then released negatively over
  the rest of that line's period) and, on a void, the whole deferral reversed (what was recognised is reversed as
  recognised). Dates are the entity's local days, as the documents are booked.

Not modelled on the billing side: a credit note's void and an entity recognising by day within a write-off month
(the ERP releases those days; this side stops at the month before): both would show as a variance.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from billing_sync.domain.journal import DocumentKind, ErpDocument
from billing_sync.domain.mapping import AccountMapping, AccountRole
from billing_sync.domain.recognition import Obligation
from billing_sync.reconciliation.extracts import DeferredRevenueRow, check_period


@dataclass(frozen=True, slots=True)
class ServiceLine:
    """An invoice line: its transaction price (net of discounts and inclusive tax) over `[start, end)`."""

    line_id: str
    price: int
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class InvoiceSchedule:
    """A finalised invoice as the billing side holds it, with the local days it was issued, voided, written off."""

    invoice_id: str
    legal_entity: str
    currency: str
    issued_on: date
    lines: tuple[ServiceLine, ...]
    voided_on: date | None = None
    written_off_on: date | None = None


@dataclass(frozen=True, slots=True)
class CreditedLine:
    """A credit note line: its credited price and the invoice line it credits (None: nothing deferred moves)."""

    invoice_line_id: str | None
    price: int


@dataclass(frozen=True, slots=True)
class CreditNoteSchedule:
    """An issued credit note of `invoice_id`, credited on a local day."""

    credit_note_id: str
    invoice_id: str
    credited_on: date
    lines: tuple[CreditedLine, ...]


def deferred_revenue_accounts(mapping: AccountMapping) -> set[str]:
    """Every account the mapping can book deferred revenue to (its default and any rule's)."""
    role = AccountRole.DEFERRED_REVENUE
    accounts = {rule.accounts[role] for rule in mapping.rules if role in rule.accounts}
    if role in mapping.default_accounts:
        accounts.add(mapping.default_accounts[role])
    return accounts


_Key = tuple[str, str, str]  # legal entity, currency, period
_BILLED, _RECOGNISED, _CREDITED = 0, 1, 2


class _Movements:
    def __init__(self) -> None:
        self.by_key: dict[_Key, list[int]] = defaultdict(lambda: [0, 0, 0])

    def add(self, entity: str, currency: str, day: date, bucket: int, amount: int) -> None:
        if amount:
            self.by_key[(entity, currency.upper(), day.strftime("%Y-%m"))][bucket] += amount

    def rows(self, side: str, periods: Sequence[str]) -> list[DeferredRevenueRow]:
        """One row per entity, currency and requested period where anything is open or moved."""
        rows = []
        for entity, currency in sorted({(entity, currency) for entity, currency, _ in self.by_key}):
            for period in sorted(periods):
                opening = sum(
                    billed - recognised - credited
                    for (e, c, p), (billed, recognised, credited) in self.by_key.items()
                    if e == entity and c == currency and p < period
                )
                billed, recognised, credited = self.by_key.get((entity, currency, period), (0, 0, 0))
                if not (opening or billed or recognised or credited):
                    continue
                rows.append(
                    DeferredRevenueRow(
                        side=side,
                        legal_entity=entity,
                        period=period,
                        currency=currency,
                        opening=opening,
                        billed=billed,
                        recognised=recognised,
                        credited=credited,
                        closing=opening + billed - recognised - credited,
                    )
                )
        return rows


def erp_roll_forward(
    documents: Iterable[ErpDocument], *, accounts: set[str], periods: Sequence[str]
) -> list[DeferredRevenueRow]:
    """The ERP side's rows for `periods` from every ERP document (opening: all earlier posting months)."""
    periods = [check_period(period) for period in periods]
    movements = _Movements()
    for document in documents:
        moved: dict[str, int] = defaultdict(int)
        for line in document.journal:
            if line.account in accounts:
                moved[line.currency] += line.credit - line.debit
        for currency, amount in moved.items():
            if document.kind is DocumentKind.INVOICE:
                movements.add(document.legal_entity, currency, document.posting_date, _BILLED, amount)
            elif document.kind is DocumentKind.RECOGNITION:
                movements.add(document.legal_entity, currency, document.posting_date, _RECOGNISED, -amount)
            else:
                movements.add(document.legal_entity, currency, document.posting_date, _CREDITED, -amount)
    return movements.rows("erp", periods)


def _month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def _month_ends(first: date, last: date) -> Iterator[date]:
    """The last day of each month from `first`'s through `last` (only those on or before `last`)."""
    current = _month_end(first)
    while current <= last:
        yield current
        current = _month_end(current + timedelta(days=1))


def _release(
    movements: _Movements,
    invoice: InvoiceSchedule,
    obligations: Sequence[Obligation],
    booked_on: date,
    *,
    through: date,
    stop: date | None,
) -> int:
    """Add the monthly releases of `obligations` earned after `booked_on`; return what they released in all."""
    if not obligations:
        return 0
    last = min(through, _month_end(max(obligation.end for obligation in obligations)))
    if stop is not None:
        last = min(last, stop)
    released_before = 0
    for end in _month_ends(booked_on, last):
        released = sum(o.earned_through(max(end, booked_on)) - o.earned_through(booked_on) for o in obligations)
        movements.add(invoice.legal_entity, invoice.currency, end, _RECOGNISED, released - released_before)
        released_before = released
    return released_before


def billing_roll_forward(
    invoices: Iterable[InvoiceSchedule],
    credit_notes: Iterable[CreditNoteSchedule],
    *,
    periods: Sequence[str],
) -> list[DeferredRevenueRow]:
    """The billing side's rows for `periods` from the billing documents alone (see the module docstring).

    A credit note whose invoice is not among `invoices`, or a credited line the invoice does not have, moves no
    deferred revenue here (the document comparison reports the credit note). Raises ExtractError for a
    malformed period.
    """
    periods = [check_period(period) for period in periods]
    through = _month_end(date.fromisoformat(f"{max(periods)}-01"))
    notes: dict[str, list[CreditNoteSchedule]] = defaultdict(list)
    for note in credit_notes:
        notes[note.invoice_id].append(note)
    movements = _Movements()
    for invoice in invoices:
        stop = _stop(invoice)
        obligations = [Obligation.over(line.price, line.start, line.end) for line in invoice.lines]
        deferred = sum(o.amount - o.earned_through(invoice.issued_on) for o in obligations)
        movements.add(invoice.legal_entity, invoice.currency, invoice.issued_on, _BILLED, deferred)
        released = _release(movements, invoice, obligations, invoice.issued_on, through=through, stop=stop)
        by_line = {line.line_id: o for line, o in zip(invoice.lines, obligations, strict=True)}
        for note in sorted(notes.get(invoice.invoice_id, ()), key=lambda n: (n.credited_on, n.credit_note_id)):
            credited = 0
            remaining: list[Obligation] = []
            for line in note.lines:
                original = by_line.get(line.invoice_line_id or "")
                if original is None:
                    continue
                unearned = original.unearned_after(note.credited_on)
                share = max(0, min(line.price, unearned)) if line.price >= 0 else min(0, max(line.price, unearned))
                if share:
                    credited += share
                    remaining.append(Obligation(-share, note.credited_on + timedelta(days=1), original.end))
            movements.add(invoice.legal_entity, invoice.currency, note.credited_on, _CREDITED, credited)
            released += _release(movements, invoice, remaining, note.credited_on, through=through, stop=stop)
        if invoice.voided_on is not None and invoice.voided_on <= through:
            # The void reverses the invoice's own deferral (credited; a credit note's stays) and every release so far,
            # the credit notes' included (recognised).
            movements.add(invoice.legal_entity, invoice.currency, invoice.voided_on, _CREDITED, deferred)
            movements.add(invoice.legal_entity, invoice.currency, invoice.voided_on, _RECOGNISED, -released)
    return movements.rows("billing", periods)


def _stop(invoice: InvoiceSchedule) -> date | None:
    """The last day an invoice recognises: the day before its void, or its write-off day."""
    stops = [invoice.voided_on - timedelta(days=1)] if invoice.voided_on else []
    stops += [invoice.written_off_on] if invoice.written_off_on else []
    return min(stops) if stops else None
