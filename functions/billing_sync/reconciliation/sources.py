"""Build both sides' extracts from the ports: the billing source's list API, the ERP and lineage.

- Billing side: every invoice (not draft), paid invoice payment, credit note and refund the source's list API
  (`SourceReader.list_created`) holds for the window, with its amounts, lines and status (`in_list_api`),
  joined with the events received: a document is `in_events` when the raw payload of an accepted event
  (lineage record -> raw archive) carried it, and `event_ids` names those events (the one that posted it first).
  Lines are what posting books: an invoice line's amount less its discounts, a credit note line's likewise.
- ERP side: every document `ErpClient.posted_documents()` returns, with its ERP id (`find_document`). An
  invoice's `amount_remaining` is what its receivable still holds (its own journal and those of the documents
  applied to it, on the entity's receivable account); its status is `void` when a void applies to it, else
  `paid` when nothing remains, else `open`. The port has no due date: an ERP invoice ages by its billing
  document's (the terms posting gave it).
- Lineage: one row per lineage record, partitioned like the document it posted.
- Deferred revenue: the roll-forward of both sides (`rollforward.py`): the billing side from every invoice and
  credit note the list API holds since `DEFERRED_HISTORY_START` (the opening needs all of them), the ERP side from
  every ERP document's lines on the mapping's deferred revenue accounts.
- Balance transactions: the list API's for the window; the payout that settled each from the payouts' lists.

A document's period is the month of its date in its legal entity's time zone (the mapping's), the date posting
books it on. The list API is read over the periods plus a margin either side, so a document dated near a period
boundary in another time zone, or created in Stripe a few days before it was finalised, is still seen.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from billing_sync.domain.accounting.books import Books
from billing_sync.domain.errors import BillingSyncError
from billing_sync.domain.journal import DocumentKind, ErpDocument
from billing_sync.domain.lineage import LineageRecord
from billing_sync.domain.mapping import AccountMapping, AccountRole
from billing_sync.domain.ports import ErpClient, SourceReader
from billing_sync.reconciliation.extracts import (
    BalanceTransactionRow,
    BillingDocumentRow,
    BillingLineRow,
    ErpDocumentRow,
    ErpLineRow,
    Extracts,
    LineageRow,
    check_period,
    erp_document_rows,
    erp_external_id,
)
from billing_sync.reconciliation.rollforward import (
    CreditedLine,
    CreditNoteSchedule,
    InvoiceSchedule,
    ServiceLine,
    billing_roll_forward,
    deferred_revenue_accounts,
    erp_roll_forward,
)
from billing_sync.sources.stripe.invoices import invoice_line, tax_amounts
from billing_sync.sources.stripe.wire import StripeCreditNoteLine, StripeInvoiceLine

SOURCE = "stripe"
DEFERRED_HISTORY_START = datetime(2010, 1, 1, tzinfo=UTC)
"""Where the list API is read from for the billing side's opening deferred revenue (before Stripe billed anyone)."""
LIST_MARGIN = timedelta(days=7)
"""How far beyond the periods the list API is read (time zones, drafts finalised days after creation)."""

COLLECTIONS = ("invoices", "invoice_payments", "credit_notes", "refunds", "balance_transactions")

_KIND_OF_OBJECT = {"invoice": "invoice", "invoice_payment": "payment", "credit_note": "credit_note", "refund": "refund"}
_RECONCILED_ERP_KINDS = {DocumentKind.INVOICE, DocumentKind.PAYMENT, DocumentKind.CREDIT_MEMO, DocumentKind.REFUND}
_VOIDS = {DocumentKind.INVOICE_VOID: DocumentKind.INVOICE, DocumentKind.CREDIT_MEMO_VOID: DocumentKind.CREDIT_MEMO}

RawEvent = Callable[[LineageRecord], Mapping[str, Any] | None]
"""The raw source payload of an accepted event (from the raw archive), None when it cannot be read."""


def period_bounds(period: str) -> tuple[datetime, datetime]:
    """[first instant, first instant of the next month) of `period` in UTC; raises ExtractError."""
    check_period(period)
    year, month = int(period[:4]), int(period[5:])
    start = datetime(year, month, 1, tzinfo=UTC)
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)
    return start, end


def list_window(periods: Sequence[str], margin: timedelta = LIST_MARGIN) -> tuple[datetime, datetime]:
    """The window of creation times to read from the list API for `periods` (with `margin` either side)."""
    bounds = [period_bounds(period) for period in periods]
    return min(start for start, _ in bounds) - margin, max(end for _, end in bounds) + margin


def read_billing_objects(
    reader: SourceReader, start: datetime, end: datetime, collections: Sequence[str] = COLLECTIONS
) -> dict[str, list[dict[str, Any]]]:
    """Every object of each of `collections` created in [start, end), an invoice's truncated lines completed.

    Raises what the reader raises (StripeApiUnavailableError, StripeApiAccessError, StripeApiResponseError).
    """
    found = {collection: reader.list_created(collection, start, end) for collection in collections}
    for invoice in found.get("invoices", ()):
        lines = invoice.get("lines") or {}
        if lines.get("has_more"):
            complete = reader.invoice_lines(str(invoice["id"]))
            if complete is not None:
                invoice["lines"] = {**lines, "data": complete, "has_more": False}
    return found


def delivered_documents(records: Iterable[LineageRecord], raw_event: RawEvent) -> dict[str, list[str]]:
    """External id -> the accepted events whose raw payload carried that billing document (oldest first)."""
    delivered: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for record in records:
        if record.source != SOURCE:
            continue
        payload = raw_event(record)
        if payload is None:
            continue
        for kind, document_id in _documents_in(payload):
            delivered[erp_external_id(SOURCE, kind, document_id)].append((record.first_seen, record.event_id))
    return {external_id: [event_id for _, event_id in sorted(events)] for external_id, events in delivered.items()}


def _documents_in(payload: Mapping[str, Any]) -> Iterable[tuple[str, str]]:
    found = (payload.get("data") or {}).get("object") or {}
    kind = _KIND_OF_OBJECT.get(str(found.get("object")))
    if kind is not None and isinstance(found.get("id"), str):
        yield kind, found["id"]
    if found.get("object") == "charge":
        for refund in (found.get("refunds") or {}).get("data") or ():
            if isinstance(refund, Mapping) and isinstance(refund.get("id"), str):
                yield "refund", refund["id"]


class _Calendar:
    """Each entity's local date (the mapping's time zone; UTC for an entity the mapping does not know)."""

    def __init__(self, mapping: AccountMapping) -> None:
        self.mapping = mapping

    def period(self, legal_entity: str, moment: datetime) -> str:
        return self.day(legal_entity, moment).strftime("%Y-%m")

    def day(self, legal_entity: str, moment: datetime) -> date:
        entity = self.mapping.legal_entities.get(legal_entity)
        return entity.local_date(moment) if entity is not None else moment.astimezone(UTC).date()

    def receivable(self, legal_entity: str, currency: str) -> str | None:
        try:
            return Books(self.mapping, legal_entity, currency).account(AccountRole.ACCOUNTS_RECEIVABLE)
        except BillingSyncError:
            return None


def _instant(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if isinstance(value, int) else None


def _first_instant(*values: Any) -> datetime:
    """The first of `values` that is a Unix time (the last is the object's `created`, always one)."""
    for value in values:
        if isinstance(value, int) and value:
            return datetime.fromtimestamp(value, tz=UTC)
    raise ValueError(f"no time among {values!r}")


def _transition(found: Mapping[str, Any], name: str) -> Any:
    return (found.get("status_transitions") or {}).get(name)


@dataclass(frozen=True)
class _Billed:
    kind: str
    found: Mapping[str, Any]
    moment: datetime
    currency: str
    total: int
    amount_remaining: int
    status: str
    due: datetime | None
    lines: tuple[tuple[str, int], ...]


def _billed(kind: str, found: Mapping[str, Any], erp_ids: set[str]) -> _Billed | None:
    """What one listed object bills, or None when it books nothing (a draft, an unpaid payment, a failed refund)."""
    currency = str(found.get("currency", "")).upper()
    created = found["created"]
    if kind == "invoice":
        if found.get("status") in (None, "draft"):
            return None
        issued = _first_instant(found.get("effective_at"), _transition(found, "finalized_at"), created)
        lines = tuple(
            (str(line["id"]), line["amount"] - sum(d["amount"] for d in line.get("discount_amounts") or ()))
            for line in (found.get("lines") or {}).get("data") or ()
        )
        remaining = found.get("amount_remaining")
        return _Billed(
            kind,
            found,
            issued,
            currency,
            found["total"],
            remaining if isinstance(remaining, int) else 0,
            str(found["status"]),
            _instant(found.get("due_date")),
            lines,
        )
    if kind == "payment":
        if found.get("status") != "paid":
            return None
        paid = _first_instant(_transition(found, "paid_at"), created)
        return _Billed(kind, found, paid, currency, found["amount_paid"], 0, "succeeded", None, ())
    if kind == "credit_note":
        issued = _first_instant(found.get("effective_at"), created)
        lines = tuple(
            (str(line["id"]), line["amount"] - (line.get("discount_amount") or 0))
            for line in (found.get("lines") or {}).get("data") or ()
        )
        status = "void" if found.get("status") == "void" else "issued"
        return _Billed(kind, found, issued, currency, found["total"], 0, status, None, lines)
    status = str(found.get("status"))
    if status in ("failed", "canceled") and erp_external_id(SOURCE, "refund", found["id"]) not in erp_ids:
        return None
    return _Billed(kind, found, _first_instant(created), currency, found["amount"], 0, status, None, ())


class _Entities:
    """The legal entity of a billing document: where the ERP booked it, else its invoice's, else the
    invoice's `legal_entity` metadata (as the normaliser reads it), else the default."""

    def __init__(self, objects: Mapping[str, list[dict[str, Any]]], erp: Mapping[str, str], default: str) -> None:
        self._erp = erp
        self._default = default
        self._invoices = {found["id"]: found for found in objects.get("invoices", ())}
        self._payment_invoice = {
            str(payment["payment"]["payment_intent"]): str(payment.get("invoice"))
            for payment in objects.get("invoice_payments", ())
            if isinstance(payment.get("payment"), Mapping) and payment["payment"].get("payment_intent")
        }

    def of(self, kind: str, found: Mapping[str, Any]) -> str:
        booked = self._erp.get(erp_external_id(SOURCE, kind, found["id"]))
        if booked:
            return booked
        if kind == "invoice":
            return str((found.get("metadata") or {}).get("legal_entity") or self._default)
        invoice_id = (
            found.get("invoice") if kind != "refund" else self._payment_invoice.get(str(found.get("payment_intent")))
        )
        if isinstance(invoice_id, str):
            booked = self._erp.get(erp_external_id(SOURCE, "invoice", invoice_id))
            invoice = self._invoices.get(invoice_id)
            if booked:
                return booked
            if invoice is not None:
                return self.of("invoice", invoice)
        return self._default


def billing_rows(
    objects: Mapping[str, list[dict[str, Any]]],
    *,
    delivered: Mapping[str, Sequence[str]],
    erp_entities: Mapping[str, str],
    mapping: AccountMapping,
    default_legal_entity: str,
) -> tuple[list[BillingDocumentRow], list[BillingLineRow]]:
    """The billing documents the list API holds (`in_list_api`), marked `in_events` where delivered.

    `erp_entities` maps an external id to the entity the ERP booked it in. Raises ExtractError on a broken row.
    """
    calendar = _Calendar(mapping)
    entities = _Entities(objects, erp_entities, default_legal_entity)
    documents: list[BillingDocumentRow] = []
    lines: list[BillingLineRow] = []
    seen: set[str] = set()
    for collection, kind in (
        ("invoices", "invoice"),
        ("invoice_payments", "payment"),
        ("credit_notes", "credit_note"),
        ("refunds", "refund"),
    ):
        for found in objects.get(collection, ()):
            billed = _billed(kind, found, set(erp_entities))
            external_id = erp_external_id(SOURCE, kind, found["id"])
            if billed is None or external_id in seen:
                continue
            seen.add(external_id)
            entity = entities.of(kind, found)
            period = calendar.period(entity, billed.moment)
            events = tuple(delivered.get(external_id, ()))
            documents.append(
                BillingDocumentRow(
                    source=SOURCE,
                    document_id=str(found["id"]),
                    kind=kind,
                    external_id=external_id,
                    legal_entity=entity,
                    period=period,
                    currency=billed.currency,
                    total=billed.total,
                    amount_remaining=billed.amount_remaining,
                    status=billed.status,
                    document_date=calendar.day(entity, billed.moment),
                    due_date=calendar.day(entity, billed.due) if billed.due else None,
                    event_ids=events,
                    in_events=bool(events),
                    in_list_api=True,
                )
            )
            lines.extend(
                BillingLineRow(
                    source=SOURCE,
                    document_id=str(found["id"]),
                    external_id=external_id,
                    line_id=line_id,
                    legal_entity=entity,
                    period=period,
                    amount=amount,
                )
                for line_id, amount in billed.lines
            )
    return documents, lines


def deferred_schedules(
    objects: Mapping[str, list[dict[str, Any]]],
    *,
    erp_entities: Mapping[str, str],
    mapping: AccountMapping,
    default_legal_entity: str,
) -> tuple[list[InvoiceSchedule], list[CreditNoteSchedule]]:
    """The finalised invoices (lines at their transaction price over their service periods; void and write-off
    days) and issued credit notes the list API holds, on their entity's local days, for the roll-forward.

    A voided credit note is left out. Raises pydantic's ValidationError for a line Stripe's wire shape rejects.
    """
    calendar = _Calendar(mapping)
    entities = _Entities(objects, erp_entities, default_legal_entity)
    invoices: dict[str, InvoiceSchedule] = {}
    for found in objects.get("invoices", ()):
        billed = _billed("invoice", found, set())
        if billed is None or found["id"] in invoices:
            continue
        entity = entities.of("invoice", found)
        lines = []
        for raw in (found.get("lines") or {}).get("data") or ():
            line = invoice_line(StripeInvoiceLine.model_validate(raw))
            lines.append(ServiceLine(line.line_id, line.price, line.period_start, line.period_end))
        voided = _instant(_transition(found, "voided_at"))
        written_off = _instant(_transition(found, "marked_uncollectible_at"))
        invoices[found["id"]] = InvoiceSchedule(
            invoice_id=str(found["id"]),
            legal_entity=entity,
            currency=billed.currency,
            issued_on=calendar.day(entity, billed.moment),
            lines=tuple(lines),
            voided_on=calendar.day(entity, voided) if voided else None,
            written_off_on=calendar.day(entity, written_off) if written_off else None,
        )
    notes: dict[str, CreditNoteSchedule] = {}
    for found in objects.get("credit_notes", ()):
        billed = _billed("credit_note", found, set())
        invoice = invoices.get(str(found.get("invoice")))
        if billed is None or billed.status == "void" or invoice is None or found["id"] in notes:
            continue
        credited = []
        for raw in (found.get("lines") or {}).get("data") or ():
            wire = StripeCreditNoteLine.model_validate(raw)
            taxes = tax_amounts(wire.taxes if wire.taxes is not None else wire.tax_amounts)
            inclusive = sum(tax.amount for tax in taxes if tax.inclusive)
            credited.append(CreditedLine(wire.invoice_line_item, wire.amount - wire.discount_amount - inclusive))
        notes[found["id"]] = CreditNoteSchedule(
            credit_note_id=str(found["id"]),
            invoice_id=invoice.invoice_id,
            credited_on=calendar.day(invoice.legal_entity, billed.moment),
            lines=tuple(credited),
        )
    return list(invoices.values()), list(notes.values())


def erp_rows(
    erp: ErpClient,
    documents: Sequence[ErpDocument],
    *,
    mapping: AccountMapping,
    due_dates: Mapping[str, date | None] | None = None,
) -> tuple[list[ErpDocumentRow], list[ErpLineRow]]:
    """Every ERP document as extract rows, with its ERP id, status and (invoices) amount remaining.

    The ERP port carries no due date: an invoice ages by `due_dates[external_id]` (its billing document's, the
    terms posting gave it), else it is current.

    Raises what the ERP client raises (ErpTransientError, ErpRejectedError) and ExtractError on a broken row.
    """
    calendar = _Calendar(mapping)
    applied: dict[str, list[ErpDocument]] = defaultdict(list)
    for document in documents:
        for target in document.applies_to:
            applied[target].append(document)
    rows: list[ErpDocumentRow] = []
    lines: list[ErpLineRow] = []
    for document in documents:
        erp_document_id = document.external_id
        if document.kind in _RECONCILED_ERP_KINDS:
            ref = erp.find_document(document.external_id)
            erp_document_id = ref.document_id if ref is not None else document.external_id
        status, remaining = _erp_status(document, applied.get(document.external_id, []), calendar)
        row, row_lines = erp_document_rows(
            document,
            erp_document_id=erp_document_id,
            status=status,
            amount_remaining=remaining,
            due_date=(due_dates or {}).get(document.external_id),
        )
        rows.append(row)
        lines.extend(row_lines)
    return rows, lines


def _erp_status(document: ErpDocument, applied: list[ErpDocument], calendar: _Calendar) -> tuple[str, int]:
    voided = any(_VOIDS.get(other.kind) is document.kind for other in applied)
    if document.kind is DocumentKind.CREDIT_MEMO:
        return ("void" if voided else "posted"), 0
    if document.kind is not DocumentKind.INVOICE:
        return "posted", 0
    if voided:
        return "void", 0
    account = calendar.receivable(document.legal_entity, document.currency)
    remaining = max(document.total, 0)
    if account is not None:
        remaining = sum(
            line.debit - line.credit
            for each in (document, *applied)
            for line in each.journal
            if line.account == account and line.currency == document.currency
        )
    return ("paid" if remaining <= 0 else "open"), max(remaining, 0)


def lineage_rows(
    records: Iterable[LineageRecord], *, erp_documents: Sequence[ErpDocumentRow], default_legal_entity: str
) -> list[LineageRow]:
    """One row per lineage record, in the entity and period of the document it posted (else the default entity
    and the month it was first seen)."""
    by_event = {row.source_event_id: row for row in erp_documents}
    rows = []
    for record in records:
        posted = by_event.get(record.event_id)
        entity = posted.legal_entity if posted else default_legal_entity
        period = posted.period if posted else record.first_seen.astimezone(UTC).strftime("%Y-%m")
        rows.append(
            LineageRow(
                event_id=record.event_id,
                status=record.status.value,
                erp_document_ids=tuple(record.erp_document_ids),
                legal_entity=entity,
                period=period,
            )
        )
    return rows


def balance_transaction_rows(
    reader: SourceReader, listed: Sequence[Mapping[str, Any]], *, mapping: AccountMapping, legal_entity: str
) -> list[BalanceTransactionRow]:
    """The listed balance transactions, each with the payout that settled it (read from each listed payout's
    own list). Raises what the reader raises."""
    calendar = _Calendar(mapping)
    settled_by: dict[str, str] = {}
    for txn in listed:
        if txn.get("type") == "payout" and isinstance(txn.get("source"), str):
            for settled in reader.payout_balance_transactions(txn["source"]) or ():
                settled_by[settled.id] = txn["source"]
    rows = []
    for txn in listed:
        source = txn.get("source")
        source_id = source.get("id") if isinstance(source, Mapping) else source
        moment = _first_instant(txn["created"])
        rows.append(
            BalanceTransactionRow(
                balance_transaction_id=str(txn["id"]),
                type=str(txn["type"]),
                source_id=str(source_id or ""),
                payout_id=source_id if txn.get("type") == "payout" else settled_by.get(str(txn["id"])),
                legal_entity=legal_entity,
                period=calendar.period(legal_entity, moment),
                currency=str(txn["currency"]).upper(),
                amount=txn["amount"],
                fee=txn["fee"],
                net=txn["net"],
            )
        )
    return rows


def build_extracts(
    *,
    reader: SourceReader,
    erp: ErpClient,
    lineage: Iterable[LineageRecord],
    raw_event: RawEvent,
    mapping: AccountMapping,
    periods: Sequence[str],
    default_legal_entity: str,
) -> Extracts:
    """Both sides' extracts for `periods` (each YYYY-MM): the list API over the periods' window, every ERP
    document and every lineage record. Raises ExtractError and what the ports raise."""
    start, end = list_window(periods)
    objects = read_billing_objects(reader, start, end)
    documents = list(erp.posted_documents())
    records = list(lineage)
    delivered = delivered_documents(records, raw_event)
    for document in documents:
        events = delivered.get(document.external_id)
        if events and document.source_event_id in events:  # the event that posted it leads, for its lineage link
            events.remove(document.source_event_id)
            events.insert(0, document.source_event_id)
    billing, billing_lines = billing_rows(
        objects,
        delivered=delivered,
        erp_entities={document.external_id: document.legal_entity for document in documents},
        mapping=mapping,
        default_legal_entity=default_legal_entity,
    )
    due_dates = {row.external_id: row.due_date for row in billing if row.due_date}
    erp_documents, erp_lines = erp_rows(erp, documents, mapping=mapping, due_dates=due_dates)
    # The opening deferred balance needs every invoice and credit note ever billed, not only the window's.
    history = read_billing_objects(reader, DEFERRED_HISTORY_START, start, ("invoices", "credit_notes"))
    invoices, credit_notes = deferred_schedules(
        {name: [*history.get(name, ()), *objects[name]] for name in ("invoices", "invoice_payments", "credit_notes")},
        erp_entities={document.external_id: document.legal_entity for document in documents},
        mapping=mapping,
        default_legal_entity=default_legal_entity,
    )
    return Extracts(
        billing_documents=billing,
        billing_document_lines=billing_lines,
        erp_documents=erp_documents,
        erp_document_lines=erp_lines,
        lineage=lineage_rows(records, erp_documents=erp_documents, default_legal_entity=default_legal_entity),
        balance_transactions=balance_transaction_rows(
            reader, objects["balance_transactions"], mapping=mapping, legal_entity=default_legal_entity
        ),
        deferred_revenue=[
            *billing_roll_forward(invoices, credit_notes, periods=periods),
            *erp_roll_forward(documents, accounts=deferred_revenue_accounts(mapping), periods=periods),
        ],
    )


def raw_event_from_bytes(body: bytes | None) -> Mapping[str, Any] | None:
    """A raw archived payload as JSON, None when absent or not a JSON object."""
    if body is None:
        return None
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    return payload if isinstance(payload, Mapping) else None
