"""Closed periods through the posting service and the recognition job: move (US01), reject (JP01), reopen."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from billing_sync.domain.bookkeeping import Bookkeeper
from billing_sync.domain.errors import ExceptionCategory
from billing_sync.domain.journal import DocumentKind
from billing_sync.domain.lineage import LineageStatus
from billing_sync.domain.posting import PostingService
from billing_sync.domain.posting.service import PostingStatus
from billing_sync.domain.recognition_job import RecognitionService
from tests.builders import load_event
from tests.fakes.erp import InMemoryErpClient
from tests.fakes.periods import InMemoryPeriodCalendar
from tests.fakes.stores import InMemoryExceptionQueue, InMemoryLineageStore, InMemoryMasterDataStore
from tests.functional.posting_harness import Clock, canonical, mapping

US_INVOICE = "stripe-invoice-in_1QvDDlNx4RkL2mQejBTD4pmw"
JP_INVOICE = "stripe-invoice-in_1Qm57qNx4RkL2mQeJoYg6HRn"
RENEWAL = "stripe-invoice-in_195RYKNx4RkL2mQeXZrXWZ9C"
CONTROLLER = "arn:aws:iam::123456789012:user/controller"


class Books:
    """A posting service and a recognition job sharing one ledger, one calendar and one Bookkeeper."""

    def __init__(self) -> None:
        self.erp = InMemoryErpClient()
        self.lineage = InMemoryLineageStore()
        self.exceptions = InMemoryExceptionQueue()
        self.calendar = InMemoryPeriodCalendar()
        self.clock = Clock()
        self.bookkeeper = Bookkeeper(mapping=mapping(), erp=self.erp, periods=self.calendar)
        self.service = PostingService(
            erp=self.erp,
            lineage=self.lineage,
            master_data=InMemoryMasterDataStore(),
            exceptions=self.exceptions,
            mapping=mapping(),
            clock=self.clock,
            claim_lease=timedelta(seconds=90),
            bookkeeper=self.bookkeeper,
        )
        self.job = RecognitionService(erp=self.erp, mapping=mapping(), clock=self.clock, bookkeeper=self.bookkeeper)

    def close(self, entity: str, period: str) -> None:
        self.calendar.set_closed(entity, period, closed=True, at=self.clock.now, by=CONTROLLER)

    def reopen(self, entity: str, period: str) -> None:
        self.calendar.set_closed(entity, period, closed=False, at=self.clock.now, by=CONTROLLER)


def backdated(sample: str, moment: datetime) -> dict[str, Any]:
    """The invoice sample effective (backdated) to `moment`, finalised when the sample says."""
    payload = load_event(sample)
    payload["data"]["object"]["effective_at"] = int(moment.timestamp())
    return payload


def test_a_us01_invoice_dated_in_a_closed_month_posts_on_the_first_open_day_keeping_its_date() -> None:
    # GIVEN US01 (policy: move) has closed October, and the US customer is synchronised
    books = Books()
    books.close("US01", "2026-10")
    books.service.post(canonical("stripe_customer_created"))

    # WHEN its invoice, backdated to Oct 31, is posted
    result = books.service.post(
        canonical(backdated("stripe_invoice_finalized", datetime(2026, 10, 31, 18, tzinfo=UTC)))
    )

    # THEN it posts on Nov 1, the first open day, and keeps Oct 31 as its document date
    assert result.status is PostingStatus.POSTED
    invoice = books.erp.documents[US_INVOICE]
    assert (invoice.posting_date, invoice.document_date) == (date(2026, 11, 1), date(2026, 10, 31))
    # AND lineage says it was moved, from where to where
    record = books.lineage.records[result.event_id]
    assert record.status is LineageStatus.POSTED
    assert record.reason == (f"{US_INVOICE} moved from closed period 2026-10 to 2026-11-01 (document date 2026-10-31)")


def test_an_invoice_in_an_open_month_posts_on_its_own_date_with_no_note() -> None:
    # GIVEN US01 has closed October only
    books = Books()
    books.close("US01", "2026-10")
    books.service.post(canonical("stripe_customer_created"))

    # WHEN the November invoice is posted
    result = books.service.post(canonical("stripe_invoice_finalized"))

    # THEN it posts on its date, no document date set, nothing noted
    invoice = books.erp.documents[US_INVOICE]
    assert (invoice.posting_date, invoice.document_date) == (date(2026, 11, 1), None)
    assert books.lineage.records[result.event_id].reason is None


def test_a_jp01_invoice_dated_in_a_closed_month_is_parked_period_closed_and_nothing_posts() -> None:
    # GIVEN JP01 (policy: reject) has closed November, and the JP customer is synchronised
    books = Books()
    books.close("JP01", "2026-11")
    books.service.post(canonical("stripe_customer_created_jp"))

    # WHEN its November yen invoice is posted
    result = books.service.post(canonical("stripe_invoice_finalized_jpy"))

    # THEN it is parked PERIOD_CLOSED with a reason naming the entity and the period, and nothing is booked
    assert (result.status, result.category) == (PostingStatus.EXCEPTION, ExceptionCategory.PERIOD_CLOSED)
    [parked] = books.exceptions.records
    assert parked.category is ExceptionCategory.PERIOD_CLOSED
    assert "period 2026-11 of JP01" in parked.reason and "closed" in parked.reason
    assert JP_INVOICE not in books.erp.documents


def test_reopening_the_period_lets_the_parked_invoice_post_on_its_own_date() -> None:
    # GIVEN the JP01 invoice parked because November was closed
    books = Books()
    books.close("JP01", "2026-11")
    books.service.post(canonical("stripe_customer_created_jp"))
    invoice_event = canonical("stripe_invoice_finalized_jpy")
    assert books.service.post(invoice_event).category is ExceptionCategory.PERIOD_CLOSED

    # WHEN the controller reopens November and the event is redriven
    books.reopen("JP01", "2026-11")
    books.clock.advance(timedelta(minutes=5))
    result = books.service.post(invoice_event)

    # THEN it posts, dated in November (Tokyo's calendar day), with no document date
    assert result.status is PostingStatus.POSTED
    invoice = books.erp.documents[JP_INVOICE]
    assert (invoice.posting_date, invoice.document_date) == (date(2026, 11, 2), None)
    assert books.lineage.records[result.event_id].status is LineageStatus.POSTED


def test_recognition_into_a_closed_month_moves_to_the_first_open_period_and_posts_once() -> None:
    # GIVEN the May renewal posted (seat line 29700 over May, 958 earned at posting), then May closed
    books = Books()
    books.service.post(canonical("stripe_customer_created_lifecycle"))
    books.service.post(canonical("stripe_invoice_finalized_renewal_credit_balance"))
    books.close("US01", "2026-05")

    # WHEN May is recognised, and recognised again
    first = books.job.run(date(2026, 5, 31))
    second = books.job.run(date(2026, 5, 31))

    # THEN May's release posts on Jun 1 under May's external id, once
    assert [(r.month, r.amount, r.created) for r in first] == [("2026-05", 29700 - 958, True)]
    assert [r.created for r in second] == [False]
    releases = [d for d in books.erp.documents.values() if d.kind is DocumentKind.RECOGNITION]
    assert [(d.external_id, d.posting_date, d.document_date) for d in releases] == [
        (f"{RENEWAL}-recognition-2026-05", date(2026, 6, 1), date(2026, 5, 31))
    ]


def test_recognition_moves_even_for_an_entity_whose_policy_rejects() -> None:
    # GIVEN the JP01 yen invoice posted in November (29400 over November), then November closed
    books = Books()
    books.service.post(canonical("stripe_customer_created_jp"))
    books.service.post(canonical("stripe_invoice_finalized_jpy"))
    books.close("JP01", "2026-11")

    # WHEN November is recognised
    [release] = books.job.run(date(2026, 11, 30))

    # THEN the scheduled release is not refused: it posts on Dec 1, keeping November's external id
    document = books.erp.documents[f"{JP_INVOICE}-recognition-2026-11"]
    assert release.created and document.posting_date == date(2026, 12, 1)
