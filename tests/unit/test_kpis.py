"""KPI arithmetic (domain.kpis) on known fixtures, to the minor unit and the millisecond."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing_sync.domain import kpis
from billing_sync.domain.kpis import BilledInvoice, EntityKpis

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def test_nearest_rank_percentiles() -> None:
    # GIVEN 1..20 ms
    values = list(range(20, 0, -1))
    # WHEN / THEN the nearest-rank percentiles
    assert kpis.percentile(values, 50) == 10
    assert kpis.percentile(values, 95) == 19
    assert kpis.percentile(values, 100) == 20
    assert kpis.percentile([7], 95) == 7
    assert kpis.percentile([], 50) is None
    with pytest.raises(ValueError):
        kpis.percentile(values, 0)


def test_posting_latency_from_received_and_posted() -> None:
    # GIVEN events posted 100 ms .. 1000 ms after they were received, and one with a skewed clock
    pairs = [(T0, T0 + timedelta(milliseconds=100 * k)) for k in range(1, 11)] + [(T0, T0 - timedelta(seconds=1))]
    # WHEN
    latency = kpis.posting_latency(pairs)
    # THEN the skewed one counts as 0 ms
    assert (latency.count, latency.p50_ms, latency.p95_ms, latency.max_ms) == (11, 500, 1000, 1000)
    assert kpis.posting_latency([]).p95_ms is None


def test_invoice_completeness_by_count_and_amount() -> None:
    # GIVEN four USD invoices (one not posted, one delivered twice) and one JPY invoice posted
    invoices = [
        BilledInvoice("in_1", "USD", 10_000, posted=True),
        BilledInvoice("in_2", "USD", 2_550, posted=True),
        BilledInvoice("in_2", "USD", 2_550, posted=True),
        BilledInvoice("in_3", "USD", 7_451, posted=False),
        BilledInvoice("in_4", "JPY", 78_000, posted=True),
    ]
    # WHEN
    completeness = kpis.invoice_completeness(invoices)
    # THEN 3 of 4, and USD short by exactly the missing invoice
    assert (completeness.billed, completeness.posted) == (4, 3)
    assert completeness.count_percent == 75.0
    assert completeness.billed_amounts == {"USD": 20_001, "JPY": 78_000}
    assert completeness.posted_amounts == {"USD": 12_550, "JPY": 78_000}
    assert completeness.amount_percent == pytest.approx(100 * 12_550 / 20_001)
    assert kpis.invoice_completeness([]).count_percent == 100.0


def test_unapplied_cash_and_deferred_variance_per_currency() -> None:
    assert kpis.unapplied_cash({"USD": 1_999, "JPY": 500}, {"USD": 1, "KWD": 1_234}) == {
        "JPY": 500,
        "KWD": 1_234,
        "USD": 2_000,
    }
    assert kpis.deferred_revenue_variance({"USD": 10_000}, {"USD": 9_999, "JPY": 3}) == {"JPY": -3, "USD": 1}


def test_exceptions_by_category_and_oldest_age() -> None:
    open_exceptions = [("MAPPING", T0 - timedelta(hours=2)), ("MAPPING", T0), ("ERP_REJECTED", T0 - timedelta(days=1))]
    summary = kpis.exception_summary(open_exceptions, now=T0)
    assert summary.by_category == {"ERP_REJECTED": 1, "MAPPING": 2}
    assert summary.oldest_age_seconds == 86_400
    assert kpis.exception_summary([], now=T0).oldest_age_seconds == 0


def test_reconciliation_differences_leave_out_matched() -> None:
    counts = {"matched": 90, "missing_in_erp": 3, "amount_mismatch": 1, "duplicate_in_erp": 0}
    assert kpis.reconciliation_differences(counts) == {"missing_in_erp": 3, "amount_mismatch": 1, "duplicate_in_erp": 0}


def test_metrics_of_an_entity_carry_the_names_the_dashboard_uses() -> None:
    entity = EntityKpis(
        legal_entity="US01",
        completeness=kpis.invoice_completeness([BilledInvoice("in_1", "USD", 100, posted=False)]),
        latency=kpis.posting_latency([(T0, T0 + timedelta(seconds=2))]),
        unapplied_cash={"USD": 5},
        exceptions=kpis.exception_summary([("MAPPING", T0)], now=T0 + timedelta(seconds=30)),
        reconciliation_differences={"missing_in_erp": 1},
    )
    points = {(m.name, tuple(m.dimensions.items())): m.value for m in kpis.kpi_metrics(entity)}
    assert points[(kpis.INVOICE_COMPLETENESS_COUNT, ())] == 0.0
    assert points[(kpis.POSTING_LATENCY_P95, ())] == 2000
    assert points[(kpis.UNAPPLIED_CASH, (("currency", "USD"),))] == 5
    assert points[(kpis.OLDEST_EXCEPTION_AGE, ())] == 30
    assert points[(kpis.RECONCILIATION_DIFFERENCES, (("class", "missing_in_erp"),))] == 1
