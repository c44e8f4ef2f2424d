"""The soak's verdict: what the books, lineage and the exception records say about every generated event.

Pure functions over plain data, so a deliberately broken outcome can be fed in and seen counted:

- `lost`: an event the ingest accepted (answered 2xx) that has neither a terminal lineage outcome
  (POSTED, IGNORED, EXCEPTION) nor an exception record, and no ERP document posted from it; or one whose
  lineage says POSTED while a document it names is missing from the ERP.
- `double_posted`: a document created more than once under one external id (counted on the ERP's
  successful creates), or one source document posted as two documents (two documents of one kind for
  the same source object, or from the same event, under different external ids).
- `unbalanced`: a journal whose debits differ from its credits in any transaction currency, or whose
  functional debits differ from its functional credits.
- `unexplained`: a generated event with no terminal lineage outcome and no exception record, whatever
  the ERP holds (accepted or not).
- `books_differ`: a document the run's ledger holds and the ledger of the same events delivered once each,
  in the order Stripe created them, without faults, does not (or the other way round), or holds with
  another kind, currency, total or journal: the order of arrival changed the books.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

TERMINAL_STATUSES = frozenset({"POSTED", "IGNORED", "EXCEPTION"})
_STRIPE_OBJECT_ID = re.compile(r"\b(?:in|inpay|cn|re|cus|po|dp|ch|pi|prod|price|txn)_[A-Za-z0-9]+")
PER_BALANCE_TRANSACTION_KINDS = frozenset({"fee"})
"""Kinds booked once per balance transaction: one event (a payout) books many, each named by its own txn."""


@dataclass(frozen=True)
class JournalEntry:
    account: str
    currency: str
    debit: int
    credit: int
    functional_currency: str | None = None
    functional_debit: int = 0
    functional_credit: int = 0


@dataclass(frozen=True)
class LedgerDocument:
    external_id: str
    document_id: str
    kind: str
    source_event_id: str
    currency: str
    total: int
    journal: tuple[JournalEntry, ...]


@dataclass(frozen=True)
class LineageView:
    status: str
    erp_document_ids: tuple[str, ...] = ()
    category: str | None = None


@dataclass
class Outcome:
    """Everything observed at the end of a run, keyed by canonical event id (`derive_event_id`)."""

    generated: set[str]
    accepted: set[str]
    documents: list[LedgerDocument]
    lineage: dict[str, LineageView]
    exception_records: set[str]  # open exceptions in the store and records waiting in the exception queues
    creates: Counter[str] = field(default_factory=Counter)  # successful creates per external id
    erp_ids: set[str] = field(default_factory=set)  # every id the ERP holds: documents and customers


@dataclass
class Verdict:
    events: int
    lost: list[str]
    double_posted: list[str]
    unbalanced: list[str]
    unexplained: list[str]

    @property
    def clean(self) -> bool:
        return not (self.lost or self.double_posted or self.unbalanced or self.unexplained)

    def counts(self) -> dict[str, int]:
        return {
            "events": self.events,
            "lost": len(self.lost),
            "double_posted": len(self.double_posted),
            "unbalanced": len(self.unbalanced),
            "unexplained": len(self.unexplained),
        }

    def examples(self, limit: int = 20) -> dict[str, list[str]]:
        return {
            name: sorted(found)[:limit]
            for name, found in (
                ("lost", self.lost),
                ("double_posted", self.double_posted),
                ("unbalanced", self.unbalanced),
                ("unexplained", self.unexplained),
            )
            if found
        }


def check(outcome: Outcome) -> Verdict:
    return Verdict(
        events=len(outcome.generated),
        lost=lost_events(outcome),
        double_posted=double_posted(outcome.documents, outcome.creates),
        unbalanced=unbalanced_documents(outcome.documents),
        unexplained=unexplained_events(outcome),
    )


def _terminal(view: LineageView | None) -> bool:
    return view is not None and view.status in TERMINAL_STATUSES


def lost_events(outcome: Outcome) -> list[str]:
    posted_from = {document.source_event_id for document in outcome.documents}
    known_ids = outcome.erp_ids | {document.document_id for document in outcome.documents}
    lost = []
    for event_id in sorted(outcome.accepted):
        view = outcome.lineage.get(event_id)
        if view is not None and view.status == "POSTED":
            if any(document_id not in known_ids for document_id in view.erp_document_ids):
                lost.append(event_id)
            continue
        if _terminal(view) or event_id in outcome.exception_records or event_id in posted_from:
            continue
        lost.append(event_id)
    return lost


def unexplained_events(outcome: Outcome) -> list[str]:
    return sorted(
        event_id
        for event_id in outcome.generated
        if not _terminal(outcome.lineage.get(event_id)) and event_id not in outcome.exception_records
    )


def source_object(external_id: str) -> str | None:
    """The Stripe object a document stands for, read from its external id (`stripe-invoice-in_…`)."""
    found = _STRIPE_OBJECT_ID.findall(external_id)
    return found[-1] if found else None


def double_posted(documents: Iterable[LedgerDocument], creates: Mapping[str, int]) -> list[str]:
    doubles = {f"{external_id} created {count} times" for external_id, count in creates.items() if count > 1}
    by_object: dict[tuple[str, str], set[str]] = defaultdict(set)
    by_event: dict[tuple[str, str], set[str]] = defaultdict(set)
    for document in documents:
        # A reversal (a failed payout's, a failed refund's) is a second document of its kind for one object.
        kind = f"{document.kind} reversal" if "-reversal-" in document.external_id else document.kind
        obj = source_object(document.external_id)
        if obj is not None:
            by_object[(kind, obj)].add(document.external_id)
        if document.kind not in PER_BALANCE_TRANSACTION_KINDS:
            by_event[(kind, document.source_event_id)].add(document.external_id)
    for grouping in (by_object, by_event):
        for (kind, owner), external_ids in grouping.items():
            if len(external_ids) > 1:
                doubles.add(f"{kind} of {owner} posted as {len(external_ids)} documents: {sorted(external_ids)}")
    return sorted(doubles)


def unbalanced_documents(documents: Iterable[LedgerDocument]) -> list[str]:
    found = []
    for document in documents:
        net: Counter[str] = Counter()
        functional: Counter[str] = Counter()
        for line in document.journal:
            net[line.currency] += line.debit - line.credit
            if line.functional_currency is not None:
                functional[line.functional_currency] += line.functional_debit - line.functional_credit
        off = {currency: amount for currency, amount in net.items() if amount}
        off_functional = {currency: amount for currency, amount in functional.items() if amount}
        if off or off_functional:
            found.append(f"{document.external_id}: transaction {off or 0}, functional {off_functional or 0}")
    return sorted(found)


def ledger_document(item: Mapping[str, Any]) -> LedgerDocument:
    """A ledger item as DynamoDB holds it (`DOC#<external id>`), read without the domain's balance check."""

    def number(value: Mapping[str, Any] | None) -> int:
        return int(value["N"]) if value else 0

    journal = []
    for entry in item.get("journal", {}).get("L", []):
        line = entry["M"]
        journal.append(
            JournalEntry(
                account=line["account"]["S"],
                currency=line["currency"]["S"],
                debit=number(line.get("debit")),
                credit=number(line.get("credit")),
                functional_currency=line.get("functional_currency", {}).get("S"),
                functional_debit=number(line.get("functional_debit")),
                functional_credit=number(line.get("functional_credit")),
            )
        )
    return LedgerDocument(
        external_id=item["pk"]["S"].removeprefix("DOC#"),
        document_id=item.get("document_id", {}).get("S", ""),
        kind=item["kind"]["S"],
        source_event_id=item.get("source_event_id", {}).get("S", ""),
        currency=item.get("currency", {}).get("S", ""),
        total=number(item.get("total")),
        journal=tuple(journal),
    )


def _signature(document: LedgerDocument) -> tuple[Any, ...]:
    lines = sorted(
        (
            line.account,
            line.currency,
            line.debit,
            line.credit,
            line.functional_currency or "",
            line.functional_debit,
            line.functional_credit,
        )
        for line in document.journal
    )
    return (document.kind, document.currency, document.total, tuple(lines))


def books_differ(documents: Iterable[LedgerDocument], in_order: Iterable[LedgerDocument]) -> list[str]:
    """Each external id whose document differs between the run's books and the books of the same events
    posted in order (missing on one side, or another kind, currency, total or journal)."""
    ours = {document.external_id: _signature(document) for document in documents}
    theirs = {document.external_id: _signature(document) for document in in_order}
    found = []
    for external_id in sorted(ours.keys() | theirs.keys()):
        if external_id not in theirs:
            found.append(f"{external_id}: booked here, not when the events came in order")
        elif external_id not in ours:
            found.append(f"{external_id}: booked when the events came in order, not here")
        elif ours[external_id] != theirs[external_id]:
            found.append(f"{external_id}: here {ours[external_id]}, in order {theirs[external_id]}")
    return found
