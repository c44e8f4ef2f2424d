"""The recognition job releases deferred revenue by month, once, with catch-up; credits and voids adjust it."""

from __future__ import annotations

from collections import Counter
from datetime import date

from billing_sync.domain.journal import DocumentKind
from billing_sync.domain.recognition_job import RecognitionService
from tests.builders import load_event
from tests.functional.posting_harness import PostingHarness, canonical, mapping

DEFERRED = "2400 Deferred Revenue"
SUBSCRIPTION_REVENUE = "4000 Subscription Revenue"
RENEWAL = "stripe-invoice-in_195RYKNx4RkL2mQeXZrXWZ9C"


def balance(harness: PostingHarness, account: str) -> int:
    return sum(
        line.debit - line.credit
        for d in harness.erp.documents.values()
        for line in d.journal
        if line.account == account
    )


def posted(*samples: str) -> PostingHarness:
    harness = PostingHarness()
    for sample in samples:
        harness.service.post(canonical(sample))
    return harness


def job(harness: PostingHarness) -> RecognitionService:
    return RecognitionService(erp=harness.erp, mapping=mapping(), clock=harness.clock)


def test_a_month_of_service_is_released_once_and_deferred_revenue_ends_at_zero() -> None:
    # GIVEN the May renewal: the seat line 29700 over [May 1, Jun 1), 29700 // 31 = 958 earned at posting
    harness = posted("stripe_customer_created_lifecycle", "stripe_invoice_finalized_renewal_credit_balance")
    assert balance(harness, DEFERRED) == -(29700 - 958)

    # WHEN the job runs through May 31, and again
    first = job(harness).run(date(2026, 5, 31))
    second = job(harness).run(date(2026, 5, 31))

    # THEN May releases the rest of the month (29700 - 958) once; nothing is left deferred
    assert [(r.month, r.amount, r.created) for r in first] == [("2026-05", 29700 - 958, True)]
    assert [r.created for r in second] == [False]
    assert balance(harness, DEFERRED) == 0
    assert balance(harness, SUBSCRIPTION_REVENUE) == -29700
    releases = [d for d in harness.erp.documents.values() if d.kind is DocumentKind.RECOGNITION]
    assert [d.external_id for d in releases] == [f"{RENEWAL}-recognition-2026-05"]


def test_a_late_run_catches_up_every_month_since_posting_and_stops_at_the_period_end() -> None:
    # GIVEN the first lifecycle invoice: the seat line's month after its posting
    harness = posted("stripe_customer_created_lifecycle", "stripe_invoice_finalized_lifecycle_first")
    deferred_at_posting = balance(harness, DEFERRED)
    assert deferred_at_posting < 0

    # WHEN the job first runs long after the service ended
    releases = job(harness).run(date(2026, 12, 31))

    # THEN each month is its own release and together they release exactly what was deferred
    assert sum(r.amount for r in releases) == -deferred_at_posting
    assert len({r.month for r in releases}) == len(releases)
    assert balance(harness, DEFERRED) == 0


def test_a_credit_note_mid_period_adjusts_only_the_remainder() -> None:
    # GIVEN the June invoice (seat line 29700 over [Jun 1, Jul 1)) and a credit note before payment
    harness = posted(
        "stripe_customer_created_lifecycle",
        "stripe_invoice_finalized_june",
        "stripe_credit_note_created_pre_payment",
    )
    # WHEN June is recognised
    releases = job(harness).run(date(2026, 6, 30))

    # THEN the credit's deferred share is released negatively over the rest of June: deferred ends at zero
    sources = Counter(r.source.split("-")[1] for r in releases)
    assert sources == Counter({"invoice": 1, "credit": 1})
    assert balance(harness, DEFERRED) == 0


def test_a_voided_invoice_stops_recognising_and_its_releases_are_reversed() -> None:
    # GIVEN a one-off invoice with a service period, released for a month, then voided
    harness = posted("stripe_customer_created_lifecycle", "stripe_invoice_finalized_renewal_credit_balance")
    job(harness).run(date(2026, 5, 31))
    invoice = harness.erp.documents[RENEWAL]
    void = invoice.model_copy(
        update={
            "external_id": f"stripe-invoice-void-{invoice.external_id}",
            "kind": DocumentKind.INVOICE_VOID,
            "applies_to": (invoice.external_id,),
            "posting_date": date(2026, 6, 3),
            "journal": tuple(
                line.model_copy(update={"debit": line.credit, "credit": line.debit}) for line in invoice.journal
            ),
        }
    )
    harness.erp.create_document(void)

    # WHEN the job runs again
    releases = job(harness).run(date(2026, 6, 30))

    # THEN the May release is reversed and nothing more is recognised: revenue and deferred are back to zero
    assert [(r.month, r.amount) for r in releases if r.created] == [("void", -(29700 - 958))]
    assert balance(harness, SUBSCRIPTION_REVENUE) == 0
    assert balance(harness, DEFERRED) == 0


def test_an_invoice_voided_before_its_first_run_releases_nothing_net() -> None:
    # GIVEN the renewal voided on June 3 before the job ever ran
    harness = posted("stripe_customer_created_lifecycle", "stripe_invoice_finalized_renewal_credit_balance")
    invoice = harness.erp.documents[RENEWAL]
    harness.erp.create_document(
        invoice.model_copy(
            update={
                "external_id": f"stripe-invoice-void-{invoice.external_id}",
                "kind": DocumentKind.INVOICE_VOID,
                "applies_to": (invoice.external_id,),
                "posting_date": date(2026, 6, 3),
                "journal": tuple(
                    line.model_copy(update={"debit": line.credit, "credit": line.debit}) for line in invoice.journal
                ),
            }
        )
    )

    # WHEN the first run covers the void
    job(harness).run(date(2026, 6, 30))

    # THEN what May released is reversed in the same run: nothing of the voided invoice is revenue
    assert balance(harness, SUBSCRIPTION_REVENUE) == 0
    assert balance(harness, DEFERRED) == 0


USAGE_REVENUE = "4200 Usage Revenue"


def test_usage_billed_in_arrears_is_recognised_at_the_point_of_usage() -> None:
    # GIVEN the Acme invoice of Nov 1 whose first line is October's metered usage (price 13230 after its
    # 1470 discount), billed in arrears against the metered price
    payload = load_event("stripe_invoice_finalized")
    usage = payload["data"]["object"]["lines"]["data"][0]
    usage["pricing"]["price_details"] = {"price": "price_128MC4Nx4RkL2mQeNEzBWXaF", "product": "prod_fYrSqjB63Qo4Gi"}
    usage["period"] = {"start": 1790812800, "end": 1793491200}  # [2026-10-01, 2026-11-01)
    harness = posted("stripe_price_created_metered", "stripe_customer_created")
    harness.service.post(canonical(payload))

    # THEN the whole usage line is revenue when it is posted: nothing of it is deferred
    [invoice] = [d for d in harness.erp.documents.values() if d.kind is DocumentKind.INVOICE]
    [line] = [line for line in invoice.lines if line.source_line_id == usage["id"]]
    assert line.revenue_class == "usage" and line.price == 14700 - 1470
    assert balance(harness, USAGE_REVENUE) == -(14700 - 1470)
    assert balance(harness, DEFERRED) == 0  # the invoice's other line is a point-in-time one-off
    # AND the recognition job has nothing left to release for it
    assert job(harness).run(date(2026, 12, 31)) == []
    assert balance(harness, USAGE_REVENUE) == -(14700 - 1470)
