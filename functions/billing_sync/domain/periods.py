"""Posting periods: each entity's calendar months, open until closed, and where a document may post.

A document dated in a closed period follows its entity's policy: `move` posts it on the first day of
the first open period after it and keeps the source's date as `document_date`; `reject` parks it as
PERIOD_CLOSED. Scheduled jobs (recognition, revaluation) always move: they never post into a closed period.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date

from billing_sync.domain.errors import PeriodClosedError
from billing_sync.domain.journal import ErpDocument
from billing_sync.domain.mapping import ClosedPeriodPolicy
from billing_sync.domain.ports import PeriodCalendar

MAX_CLOSED_RUN = 120
"""More closed months in a row than this after a document's date is a calendar error, not a policy."""


_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def parse_period(text: str) -> str:
    """`text` as a period, YYYY-MM; raises ValueError naming the expected shape."""
    value = text.strip()
    if not _PERIOD.match(value):
        raise ValueError(f"{text!r} is not a period: use YYYY-MM, e.g. 2026-10")
    return value


def period_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def first_day_of_next(period: str) -> date:
    year, month = (int(part) for part in period.split("-"))
    return date(year + month // 12, month % 12 + 1, 1)


def place_in_open_period(document: ErpDocument, *, calendar: PeriodCalendar, policy: ClosedPeriodPolicy) -> ErpDocument:
    """`document` as it may post: unchanged in an open period, moved or refused (PeriodClosedError) otherwise."""
    period = period_of(document.posting_date)
    if not calendar.is_closed(document.legal_entity, period):
        return document
    if policy == "reject":
        raise PeriodClosedError(
            f"{document.external_id} is dated {document.posting_date.isoformat()}, in period {period} of "
            f"{document.legal_entity}, which is closed (policy: reject)"
        )
    posting_date = first_day_of_next(period)
    for _ in range(MAX_CLOSED_RUN):
        if not calendar.is_closed(document.legal_entity, period_of(posting_date)):
            return document.model_copy(
                update={"posting_date": posting_date, "document_date": document.document_date or document.posting_date}
            )
        posting_date = first_day_of_next(period_of(posting_date))
    raise PeriodClosedError(f"{document.legal_entity} has no open period within {MAX_CLOSED_RUN} months of {period}")


def moved_note(documents: Iterable[ErpDocument]) -> str | None:
    """What lineage says of documents moved out of a closed period, or None when none was moved."""
    moves = [
        f"{document.external_id} moved from closed period {period_of(document.document_date)} to "
        f"{document.posting_date.isoformat()} (document date {document.document_date.isoformat()})"
        for document in documents
        if document.document_date is not None and period_of(document.document_date) != period_of(document.posting_date)
    ]
    return "; ".join(moves) or None
