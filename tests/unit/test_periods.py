"""Posting periods: the YYYY-MM shape, where a document may post, and what lineage says of a move."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from billing_sync.domain.accounting import invoice_document
from billing_sync.domain.bookkeeping import Bookkeeper
from billing_sync.domain.errors import ExceptionCategory, PeriodClosedError
from billing_sync.domain.journal import ErpDocument
from billing_sync.domain.mapping import AccountMapping
from billing_sync.domain.periods import moved_note, parse_period, place_in_open_period
from billing_sync.settings import DEFAULT_MAPPING_FILE
from billing_sync.sources.stripe import StripeNormaliser
from tests.builders import load_event
from tests.fakes.erp import InMemoryErpClient
from tests.fakes.periods import InMemoryPeriodCalendar

T0 = datetime(2027, 1, 4, 9, tzinfo=UTC)
MAPPING = AccountMapping.model_validate_json(DEFAULT_MAPPING_FILE.read_bytes())


def invoice(sample: str, *, effective: datetime | None = None) -> ErpDocument:
    payload = load_event(sample)
    if effective is not None:
        payload["data"]["object"]["effective_at"] = int(effective.timestamp())
    event = StripeNormaliser(default_legal_entity="US01").normalise(payload, received_at=T0, raw_ref="raw")
    assert event is not None
    return invoice_document(event, MAPPING)  # type: ignore[arg-type]


def closed(entity: str, *periods: str) -> InMemoryPeriodCalendar:
    calendar = InMemoryPeriodCalendar()
    for period in periods:
        calendar.set_closed(entity, period, closed=True, at=T0, by="controller")
    return calendar


@pytest.mark.parametrize("text", ["2026-01", "2026-12", " 2026-10 "])
def test_a_period_is_a_year_and_a_month(text: str) -> None:
    assert parse_period(text) == text.strip()


@pytest.mark.parametrize("text", ["2026-00", "2026-13", "2026-1", "26-10", "2026/10", "2026-10-01", ""])
def test_anything_else_is_refused_naming_the_shape(text: str) -> None:
    with pytest.raises(ValueError, match="use YYYY-MM"):
        parse_period(text)


def test_a_run_of_closed_months_moves_the_document_past_all_of_them_into_the_next_year() -> None:
    # GIVEN US01 closed November and December; an invoice backdated to Nov 30
    document = invoice("stripe_invoice_finalized", effective=datetime(2026, 11, 30, 12, tzinfo=UTC))
    calendar = closed("US01", "2026-11", "2026-12")

    # WHEN it is placed under the move policy
    placed = place_in_open_period(document, calendar=calendar, policy="move")

    # THEN it posts on Jan 1 of the next year and keeps Nov 30 as its document date
    assert (placed.posting_date, placed.document_date) == (date(2027, 1, 1), date(2026, 11, 30))
    assert moved_note([placed]) == (
        f"{document.external_id} moved from closed period 2026-11 to 2027-01-01 (document date 2026-11-30)"
    )


def test_a_document_in_an_open_period_is_unchanged_and_noted_nowhere() -> None:
    document = invoice("stripe_invoice_finalized")

    placed = place_in_open_period(document, calendar=closed("US01", "2026-10"), policy="move")

    assert placed == document and moved_note([placed]) is None


def test_the_reject_policy_refuses_as_period_closed_naming_entity_and_period() -> None:
    document = invoice("stripe_invoice_finalized_jpy")

    with pytest.raises(PeriodClosedError) as refused:
        place_in_open_period(document, calendar=closed("JP01", "2026-11"), policy="reject")

    assert refused.value.category is ExceptionCategory.PERIOD_CLOSED
    assert "period 2026-11 of JP01, which is closed" in str(refused.value)


def test_another_entitys_closed_period_does_not_move_a_document() -> None:
    document = invoice("stripe_invoice_finalized")

    assert place_in_open_period(document, calendar=closed("JP01", "2026-11"), policy="reject") == document


def test_a_scheduled_document_moves_even_where_the_entity_rejects() -> None:
    # GIVEN JP01 (policy: reject) has closed November
    bookkeeper = Bookkeeper(mapping=MAPPING, erp=InMemoryErpClient(), periods=closed("JP01", "2026-11"))
    document = invoice("stripe_invoice_finalized_jpy")

    # WHEN its invoice is finished as posted, and as a scheduled job's document
    with pytest.raises(PeriodClosedError):
        bookkeeper.finish(document)
    scheduled = bookkeeper.finish(document, scheduled=True)

    # THEN only the scheduled one posts, on Dec 1
    assert (scheduled.posting_date, scheduled.document_date) == (date(2026, 12, 1), date(2026, 11, 2))
