"""KW01 recognises revenue by day: one release per day, the same monthly totals, once, with catch-up."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime
from typing import Any

from billing_sync.domain.journal import DocumentKind
from billing_sync.domain.mapping import AccountMapping
from billing_sync.domain.recognition_job import RecognitionService
from tests.builders import load_event
from tests.functional.posting_harness import PostingHarness, canonical, mapping

KW_INVOICE = "stripe-invoice-in_1QbO58Nx4RkL2mQefvDdNQvC"
DEFERRED = "2400 Deferred Revenue"
AMOUNT = 12500  # 12.500 KWD


def kwd_support_contract() -> dict[str, Any]:
    """The KWD invoice (finalised Nov 5 08:05 UTC) with its line serving [Nov 1, Jan 5): 65 days, 4 before posting."""
    payload = load_event("stripe_invoice_finalized_kwd")
    [line] = payload["data"]["object"]["lines"]["data"]
    assert line["amount"] == AMOUNT
    line["period"] = {
        "start": int(datetime(2026, 11, 1, tzinfo=UTC).timestamp()),
        "end": int(datetime(2027, 1, 5, tzinfo=UTC).timestamp()),
    }
    return payload


def posted_contract() -> PostingHarness:
    harness = PostingHarness()
    harness.service.post(canonical("stripe_customer_created_kw"))
    harness.service.post(canonical(kwd_support_contract()))
    assert KW_INVOICE in harness.erp.documents
    return harness


def deferred(harness: PostingHarness) -> int:
    return sum(
        line.credit - line.debit
        for document in harness.erp.documents.values()
        for line in document.journal
        if line.account == DEFERRED and line.currency == "KWD"
    )


def monthly(entity_mapping: AccountMapping) -> AccountMapping:
    """The same mapping with KW01 recognising by month, as a reference for the monthly totals."""
    kw01 = entity_mapping.legal_entities["KW01"].model_copy(update={"recognition_period": "month"})
    return entity_mapping.model_copy(update={"legal_entities": {**entity_mapping.legal_entities, "KW01": kw01}})


def test_kw01_releases_one_journal_per_day_summing_to_the_monthly_schedule() -> None:
    # GIVEN the KWD contract posted on Nov 5: Nov 1-5 earned at posting (catch-up), the rest deferred
    harness = posted_contract()
    deferred_at_posting = deferred(harness)
    assert 0 < deferred_at_posting < AMOUNT

    # WHEN recognition runs through Dec 31
    daily = RecognitionService(erp=harness.erp, mapping=mapping(), clock=harness.clock).run(date(2026, 12, 31))

    # THEN one release per day from Nov 6 (the days before were booked at posting) to Dec 31
    days = [release.month for release in daily]
    assert days[0] == "2026-11-06" and days[-1] == "2026-12-31" and len(days) == 25 + 31
    documents = {d.external_id: d for d in harness.erp.documents.values() if d.kind is DocumentKind.RECOGNITION}
    assert f"{KW_INVOICE}-recognition-2026-11-06" in documents
    assert documents[f"{KW_INVOICE}-recognition-2026-12-31"].posting_date == date(2026, 12, 31)
    # AND each day moves 192 or 193 fils (12500 over 65 days)
    assert {release.amount for release in daily} <= {12500 // 65, 12500 // 65 + 1}
    # AND by month they are exactly what monthly recognition of the same contract releases
    by_month: dict[str, int] = defaultdict(int)
    for release in daily:
        by_month[release.month[:7]] += release.amount
    reference = posted_contract()
    months = RecognitionService(erp=reference.erp, mapping=monthly(mapping()), clock=reference.clock).run(
        date(2026, 12, 31)
    )
    assert dict(by_month) == {release.month: release.amount for release in months}


def test_daily_recognition_is_idempotent_and_a_late_run_catches_up_to_the_end_of_service() -> None:
    # GIVEN November recognised by day
    harness = posted_contract()
    deferred_at_posting = deferred(harness)
    job = RecognitionService(erp=harness.erp, mapping=mapping(), clock=harness.clock)
    november = job.run(date(2026, 11, 30))

    # WHEN it runs again through November, then late through February
    again = job.run(date(2026, 11, 30))
    late = job.run(date(2027, 2, 28))

    # THEN the second run posts nothing twice
    assert [r.created for r in november] == [True] * 25 and [r.created for r in again] == [False] * 25
    # AND the late run posts every day since (Dec 1 .. Jan 4, the last day served) and nothing after
    created = [r.month for r in late if r.created]
    assert created[0] == "2026-12-01" and created[-1] == "2027-01-04" and len(created) == 31 + 4
    # AND everything deferred at posting has been released, to the fils
    assert sum(r.amount for r in november) + sum(r.amount for r in late if r.created) == deferred_at_posting
    assert deferred(harness) == 0
