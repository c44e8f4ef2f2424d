"""The revenue recognition job: releases deferred revenue month by month, by day within the month.

Every invoice line with a service period is an obligation: its transaction price, released over the
period by the daily allocation of `domain.recognition` from the invoice's posting date on (what was
earned by then was booked as revenue at posting). A credit note's deferred share is a negative
obligation over the rest of the line's period. For each source document and each month that has
ended by `through`, one journal (Dr Deferred revenue / Cr Revenue per obligation, signed) is posted
with the external id `<source document>-recognition-<YYYY-MM>`: running the job twice posts nothing
twice, and a late run catches up every month since the posting. An entity whose `recognition_period`
is `day` gets one journal per day instead (`<source document>-recognition-<YYYY-MM-DD>`), summing to
the same monthly amounts. Each journal goes through the Bookkeeper as a scheduled document: one dated
in a closed period posts on the first day of the first open period and keeps its external id.

A voided invoice stops recognising on its void date and what its releases recognised is reversed
(`<invoice>-recognition-void`); a written-off invoice stops on its write-off date.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from billing_sync.domain.accounting.books import Books
from billing_sync.domain.bookkeeping import Bookkeeper
from billing_sync.domain.errors import NothingToPostError
from billing_sync.domain.journal import DocumentKind, DocumentLine, ErpDocument, JournalLine
from billing_sync.domain.mapping import AccountMapping, AccountRole
from billing_sync.domain.ports import ErpClient
from billing_sync.domain.recognition import Obligation, utc_date


@dataclass(frozen=True)
class Release:
    source: str  # external id of the invoice or credit memo whose obligations are released
    month: str  # the release's period: YYYY-MM, or YYYY-MM-DD for an entity that recognises by day
    amount: int  # signed: what moves from deferred revenue to revenue
    document_id: str | None = None
    created: bool = False


def month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def _months(first: date, last: date) -> Iterator[date]:
    """The end of each month from `first`'s month to `last`'s month."""
    current = month_end(first)
    while current <= last:
        yield current
        current = month_end(current + timedelta(days=1))


def _days(first: date, last: date) -> Iterator[date]:
    current = first
    while current <= last:
        yield current
        current += timedelta(days=1)


def booked_on(document: ErpDocument) -> date:
    """The day whose earned share the document booked as revenue: its own date, even when it posted later
    (moved out of a closed period), since the catch-up was computed on that date."""
    return document.document_date or document.posting_date


def released_through(line: DocumentLine, booked_on: date, day: date) -> int:
    """What the recognition job has released of `line` by the end of `day` (0 before its posting)."""
    if line.obligation is None or line.service_start is None or line.service_end is None:
        return 0
    obligation = Obligation.over(line.obligation, line.service_start, line.service_end)
    return obligation.earned_through(max(day, booked_on)) - obligation.earned_through(booked_on)


class RecognitionService:
    def __init__(
        self,
        *,
        erp: ErpClient,
        mapping: AccountMapping,
        clock: Callable[[], datetime],
        bookkeeper: Bookkeeper | None = None,
    ) -> None:
        self._erp = erp
        self._mapping = mapping
        self._clock = clock
        self._bookkeeper = bookkeeper or Bookkeeper(mapping=mapping, erp=erp)

    def run(self, through: date, *, progress: Callable[[int, int], None] | None = None) -> list[Release]:
        """Posts every month that ended on or before `through` and is not posted yet (ErpClient errors raise)."""
        invoices = list(self._erp.list_documents(DocumentKind.INVOICE))
        releases: list[Release] = []
        for done, invoice in enumerate(invoices, start=1):
            releases += self.run_invoice(invoice, through)
            if progress is not None:
                progress(done, len(invoices))
        return releases

    def run_invoice(self, invoice: ErpDocument, through: date) -> list[Release]:
        applied = self._erp.applied_to(invoice.external_id)
        stop = _stop_date(applied)
        releases: list[Release] = []
        sources = [invoice, *(d for d in applied if d.kind is DocumentKind.CREDIT_MEMO)]
        for source in sources:
            releases += self._release(source, invoice, through=min(through, stop) if stop else through)
        voided = next((d for d in applied if d.kind is DocumentKind.INVOICE_VOID), None)
        if voided is not None:
            # Read again: the releases this run just posted up to the void are reversed too.
            releases += self._reverse_releases(invoice, self._erp.applied_to(invoice.external_id), voided)
        return releases

    def schedule(self, invoice_external_id: str) -> list[dict[str, object]]:
        """Per obligation of the invoice (and its credit memos): amount, period and release per month."""
        invoice = self._erp.get_document(invoice_external_id)
        if invoice is None:
            return []
        applied = self._erp.applied_to(invoice_external_id)
        rows: list[dict[str, object]] = []
        for source in [invoice, *(d for d in applied if d.kind is DocumentKind.CREDIT_MEMO)]:
            for line in source.lines:
                if line.obligation is None or line.service_start is None or line.service_end is None:
                    continue
                obligation = Obligation.over(line.obligation, line.service_start, line.service_end)
                rows.append(
                    {
                        "source": source.external_id,
                        "line": line.source_line_id,
                        "amount": line.obligation,
                        "currency": source.currency,
                        "period": [obligation.start.isoformat(), obligation.end.isoformat()],
                        "recognised_at_posting": obligation.earned_through(booked_on(source)),
                        "by_month": {f"{y:04d}-{m:02d}": amount for (y, m), amount in obligation.by_month().items()},
                    }
                )
        return rows

    # ---- posting ----

    def _release(self, source: ErpDocument, invoice: ErpDocument, *, through: date) -> list[Release]:
        lines = [line for line in source.lines if line.obligation is not None and line.service_end is not None]
        if not lines:
            return []
        last_service_day = max(utc_date(line.service_end) for line in lines if line.service_end)  # type: ignore[arg-type]
        start = booked_on(source)
        daily = self._mapping.entity(source.legal_entity).recognition_period == "day"
        ends = (
            _days(start, min(through, last_service_day))
            if daily
            else _months(start, min(through, month_end(last_service_day)))
        )
        releases = []
        for end in ends:
            previous = end - timedelta(days=1) if daily else end.replace(day=1) - timedelta(days=1)
            amounts = [
                (line, released_through(line, start, end) - released_through(line, start, previous)) for line in lines
            ]
            if not any(amount for _, amount in amounts):
                continue
            period = end.isoformat() if daily else f"{end.year:04d}-{end.month:02d}"
            # Placed like any document, but always moved out of a closed period: the external id keeps the
            # period it recognises, so a run after the move finds it posted.
            document = self._bookkeeper.finish(self._journal(source, invoice, amounts, end, period), scheduled=True)
            ref = self._erp.create_document(document)
            releases.append(
                Release(source.external_id, period, sum(a for _, a in amounts), ref.document_id, ref.created)
            )
        return releases

    def _journal(
        self, source: ErpDocument, invoice: ErpDocument, amounts: list[tuple[DocumentLine, int]], end: date, month: str
    ) -> ErpDocument:
        books = Books(self._mapping, source.legal_entity, source.currency)

        def journal() -> Iterator[JournalLine]:
            for line, amount in amounts:
                keys = {"revenue_class": line.revenue_class}
                memo = f"{line.source_line_id} {month}"
                yield from books.debit(books.account(AccountRole.DEFERRED_REVENUE, **keys), amount, memo)
                yield from books.credit(books.account(AccountRole.REVENUE, **keys), amount, memo)

        entries = tuple(journal())
        if not entries:
            raise NothingToPostError(f"nothing to release for {source.external_id} in {month}")
        return ErpDocument(
            external_id=f"{source.external_id}-recognition-{month}",
            kind=DocumentKind.RECOGNITION,
            legal_entity=source.legal_entity,
            subsidiary=source.subsidiary,
            customer_external_id=source.customer_external_id,
            currency=source.currency,
            posting_date=end,
            total=sum(amount for _, amount in amounts),
            applies_to=(invoice.external_id,),
            journal=entries,
            source_event_id=source.source_event_id,
            memo=f"revenue recognised in {month} for {source.external_id}",
        )

    def _reverse_releases(self, invoice: ErpDocument, applied: list[ErpDocument], voided: ErpDocument) -> list[Release]:
        released = [d for d in applied if d.kind is DocumentKind.RECOGNITION]
        if not released:
            return []
        reversal = ErpDocument(
            external_id=f"{invoice.external_id}-recognition-void",
            kind=DocumentKind.RECOGNITION,
            legal_entity=invoice.legal_entity,
            subsidiary=invoice.subsidiary,
            customer_external_id=invoice.customer_external_id,
            currency=invoice.currency,
            posting_date=voided.posting_date,
            total=-sum(d.total for d in released),
            applies_to=(invoice.external_id,),
            journal=tuple(line.reversed(f"void {line.memo}") for document in released for line in document.journal),
            source_event_id=voided.source_event_id,
            memo=f"releases of {invoice.external_id} reversed by its void",
        )
        ref = self._erp.create_document(reversal)
        return [Release(invoice.external_id, "void", reversal.total, ref.document_id, ref.created)]


def _stop_date(applied: list[ErpDocument]) -> date | None:
    """The last day an invoice recognises: the day before its void, or its write-off date."""
    stops = [booked_on(d) - timedelta(days=1) for d in applied if d.kind is DocumentKind.INVOICE_VOID]
    stops += [booked_on(d) for d in applied if d.kind is DocumentKind.WRITE_OFF]
    return min(stops) if stops else None
