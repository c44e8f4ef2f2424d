"""Finance KPIs, computed from plain inputs (pure): what the KPI function emits as CloudWatch metrics.

- invoice completeness: billed invoices posted vs billed, by count and by amount (per currency; the
  amount figure is the lowest currency's, so one currency short is never hidden by another's volume);
- posting latency p50/p95/max: billing event received -> ERP acknowledgement (lineage `received` and
  `posted` checkpoints), nearest-rank percentiles in milliseconds;
- unapplied cash: customer credit balances plus payments applied to no invoice, per currency;
- deferred revenue variance: billing's closing deferred revenue minus the ERP's, per currency;
- exceptions: open ones by category and the oldest one's age;
- reconciliation differences by class (every class but `matched`);
- after a reconciliation run, `reconciliation_kpis` turns its summary into the deferred revenue variance and
  the differences by class (the reconcile function publishes them, the CLI prints them).

Metric names are constants here so the dashboard and alarms (infra) use the names the handler emits.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

INVOICE_COMPLETENESS_COUNT = "InvoiceCompletenessCountPercent"
INVOICE_COMPLETENESS_AMOUNT = "InvoiceCompletenessAmountPercent"
INVOICES_BILLED = "InvoicesBilled"
INVOICES_POSTED = "InvoicesPosted"
POSTING_LATENCY_P50 = "PostingLatencyP50Ms"
POSTING_LATENCY_P95 = "PostingLatencyP95Ms"
POSTING_LATENCY_MAX = "PostingLatencyMaxMs"
UNAPPLIED_CASH = "UnappliedCashMinorUnits"
DEFERRED_REVENUE_VARIANCE = "DeferredRevenueVarianceMinorUnits"
OPEN_EXCEPTIONS = "OpenExceptions"
OLDEST_EXCEPTION_AGE = "OldestExceptionAgeSeconds"
RECONCILIATION_DIFFERENCES = "ReconciliationDifferences"
KPI_NAMESPACE_DIMENSION = "legal_entity"


@dataclass(frozen=True, slots=True)
class BilledInvoice:
    """An invoice the billing side issued, and whether it reached the ERP."""

    invoice_id: str
    currency: str
    amount: int
    posted: bool


@dataclass(frozen=True, slots=True)
class Completeness:
    billed: int
    posted: int
    billed_amounts: Mapping[str, int]
    posted_amounts: Mapping[str, int]

    @property
    def count_percent(self) -> float:
        """Posted / billed x 100; 100 when nothing was billed (nothing is missing)."""
        return 100.0 if self.billed == 0 else 100.0 * self.posted / self.billed

    @property
    def amount_percent(self) -> float:
        """The lowest per-currency posted / billed amount x 100 (by absolute amount); 100 when nothing was billed."""
        percents = [
            100.0 * abs(self.posted_amounts.get(currency, 0)) / abs(billed)
            for currency, billed in self.billed_amounts.items()
            if billed
        ]
        return min(percents, default=100.0)


def invoice_completeness(invoices: Iterable[BilledInvoice]) -> Completeness:
    """Counts and amounts (minor units per currency) of billed invoices and of those posted; each invoice once."""
    seen: dict[str, BilledInvoice] = {}
    for invoice in invoices:
        seen[invoice.invoice_id] = invoice
    billed: Counter[str] = Counter()
    posted: Counter[str] = Counter()
    for invoice in seen.values():
        billed[invoice.currency] += invoice.amount
        if invoice.posted:
            posted[invoice.currency] += invoice.amount
    return Completeness(
        billed=len(seen),
        posted=sum(1 for invoice in seen.values() if invoice.posted),
        billed_amounts=dict(billed),
        posted_amounts=dict(posted),
    )


def percentile(values: Iterable[int], p: float) -> int | None:
    """The nearest-rank `p`-th percentile (0 < p <= 100) of `values`; None when there are none."""
    if not 0 < p <= 100:
        raise ValueError(f"percentile must be in (0, 100], got {p}")
    ordered = sorted(values)
    if not ordered:
        return None
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


@dataclass(frozen=True, slots=True)
class Latency:
    count: int
    p50_ms: int | None
    p95_ms: int | None
    max_ms: int | None


def posting_latency(pairs: Iterable[tuple[datetime, datetime]]) -> Latency:
    """(received, posted) pairs -> p50, p95 and max in whole milliseconds (a negative span, clock skew, is 0)."""
    spans = [max(0, int((posted - received).total_seconds() * 1000)) for received, posted in pairs]
    return Latency(
        count=len(spans), p50_ms=percentile(spans, 50), p95_ms=percentile(spans, 95), max_ms=max(spans, default=None)
    )


def unapplied_cash(customer_credit: Mapping[str, int], unapplied_payments: Mapping[str, int]) -> dict[str, int]:
    """Per currency, minor units: the customer credit balance (credit-positive) plus payments applied to nothing."""
    currencies = sorted(set(customer_credit) | set(unapplied_payments))
    return {c: customer_credit.get(c, 0) + unapplied_payments.get(c, 0) for c in currencies}


def deferred_revenue_variance(billing_closing: Mapping[str, int], erp_closing: Mapping[str, int]) -> dict[str, int]:
    """Per currency, minor units: billing's closing deferred revenue minus the ERP's (0 when they agree)."""
    currencies = sorted(set(billing_closing) | set(erp_closing))
    return {c: billing_closing.get(c, 0) - erp_closing.get(c, 0) for c in currencies}


@dataclass(frozen=True, slots=True)
class ExceptionSummary:
    by_category: Mapping[str, int]
    oldest_age_seconds: int


def exception_summary(open_exceptions: Iterable[tuple[str, datetime]], *, now: datetime) -> ExceptionSummary:
    """(category, first seen) of each open exception -> count per category and the oldest one's age in seconds."""
    by_category: Counter[str] = Counter()
    oldest: datetime | None = None
    for category, first_seen in open_exceptions:
        by_category[category] += 1
        oldest = first_seen if oldest is None or first_seen < oldest else oldest
    age = 0 if oldest is None else max(0, int((now - oldest).total_seconds()))
    return ExceptionSummary(by_category=dict(sorted(by_category.items())), oldest_age_seconds=age)


def reconciliation_differences(counts: Mapping[str, int]) -> dict[str, int]:
    """`Reconciliation.counts` without `matched`: the differences an accountant must look at, by class."""
    return {cls: count for cls, count in counts.items() if cls != "matched"}


@dataclass(frozen=True, slots=True)
class Metric:
    """One data point: name, CloudWatch unit, value and its extra dimensions (beyond the legal entity).

    Money (unapplied cash, deferred revenue variance) is integer minor units with a currency dimension;
    only ratios and durations are fractional."""

    name: str
    unit: str
    value: int | float
    dimensions: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EntityKpis:
    """Every KPI of one legal entity; `None`/empty inputs emit nothing for that KPI."""

    legal_entity: str
    completeness: Completeness | None = None
    latency: Latency | None = None
    unapplied_cash: Mapping[str, int] = field(default_factory=dict)
    deferred_revenue_variance: Mapping[str, int] = field(default_factory=dict)
    exceptions: ExceptionSummary | None = None
    reconciliation_differences: Mapping[str, int] = field(default_factory=dict)


def kpi_metrics(kpis: EntityKpis) -> list[Metric]:
    """The data points of one entity, in a fixed order (currency and category as low-cardinality dimensions)."""
    points: list[Metric] = []
    if kpis.completeness is not None:
        c = kpis.completeness
        points += [
            Metric(INVOICES_BILLED, "Count", c.billed),
            Metric(INVOICES_POSTED, "Count", c.posted),
            Metric(INVOICE_COMPLETENESS_COUNT, "Percent", c.count_percent),
            Metric(INVOICE_COMPLETENESS_AMOUNT, "Percent", c.amount_percent),
        ]
    if kpis.latency is not None and kpis.latency.count:
        latency = kpis.latency
        points += [
            Metric(POSTING_LATENCY_P50, "Milliseconds", float(latency.p50_ms or 0)),
            Metric(POSTING_LATENCY_P95, "Milliseconds", float(latency.p95_ms or 0)),
            Metric(POSTING_LATENCY_MAX, "Milliseconds", float(latency.max_ms or 0)),
        ]
    points += [Metric(UNAPPLIED_CASH, "Count", v, {"currency": c}) for c, v in kpis.unapplied_cash.items()]
    points += [
        Metric(DEFERRED_REVENUE_VARIANCE, "Count", v, {"currency": c})
        for c, v in kpis.deferred_revenue_variance.items()
    ]
    if kpis.exceptions is not None:
        points += [Metric(OPEN_EXCEPTIONS, "Count", n, {"category": c}) for c, n in kpis.exceptions.by_category.items()]
        points.append(Metric(OLDEST_EXCEPTION_AGE, "Seconds", kpis.exceptions.oldest_age_seconds))
    points += [
        Metric(RECONCILIATION_DIFFERENCES, "Count", n, {"class": c}) for c, n in kpis.reconciliation_differences.items()
    ]
    return points


DEFERRED_REVENUE_CLOSING_CONTROL = "deferred_revenue_closing"
"""The control whose sides are billing's and the ERP's closing deferred revenue (reconciliation/sql/controls.sql)."""


def reconciliation_kpis(
    counts: Mapping[str, int], controls: Iterable[Mapping[str, Any]], *, differences_entity: str
) -> list[EntityKpis]:
    """The KPIs of one reconciliation run, from its summary (`counts` per class, `controls` as dicts).

    Differences by class go under `differences_entity` (the entity reconciled, or the all-entities dimension the
    KPI function uses); each entity gets its deferred revenue variance per currency from the closing control.
    """
    billing: dict[str, dict[str, int]] = {}
    erp: dict[str, dict[str, int]] = {}
    for control in controls:
        if control["control"] != DEFERRED_REVENUE_CLOSING_CONTROL:
            continue
        entity, currency = str(control["legal_entity"]), str(control["currency"])
        billing.setdefault(entity, {})[currency] = int(control["left_amount"])
        erp.setdefault(entity, {})[currency] = int(control["right_amount"])
    results = {
        entity: EntityKpis(entity, deferred_revenue_variance=deferred_revenue_variance(billing[entity], erp[entity]))
        for entity in sorted(billing)
    }
    differences = reconciliation_differences(counts)
    known = results.get(differences_entity)
    results[differences_entity] = EntityKpis(
        differences_entity,
        deferred_revenue_variance=known.deferred_revenue_variance if known else {},
        reconciliation_differences=differences,
    )
    return list(results.values())


def metric_rows(results: Iterable[EntityKpis]) -> list[dict[str, Any]]:
    """Every data point of `results` as a plain row (name, unit, value, legal_entity and its dimensions): what the
    CLI prints and a run returns, the same figures the metrics carry."""
    return [
        {
            "name": point.name,
            "unit": point.unit,
            "value": point.value,
            KPI_NAMESPACE_DIMENSION: entity.legal_entity,
            **point.dimensions,
        }
        for entity in results
        for point in kpi_metrics(entity)
    ]
