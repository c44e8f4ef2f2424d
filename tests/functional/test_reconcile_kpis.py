"""The reconcile function publishes the run's KPIs (differences by class, deferred revenue variance) as the KPI
function's EMF metrics, and the CLI prints the same figures."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from billing_sync.composition import reconciliation as reconciliation_root
from billing_sync.domain import kpis
from billing_sync.reconciliation.engine import CLASSES, ControlResult, Reconciliation
from billing_sync.reconciliation.extracts import DeferredRevenueRow, ErpDocumentRow, Extracts
from billing_sync.reconciliation.report import ReportPaths
from billing_sync_ops.ops.reconcile import PeriodOutcome, render, summary_payload
from tests.functional.aws_fixtures import AwsResources
from tests.functional.test_lineage_reconciliation_status import CONTEXT, posted  # noqa: F401 (fixture)

PERIOD = "2026-10"


def deferred(side: str, closing: int, currency: str = "USD") -> DeferredRevenueRow:
    return DeferredRevenueRow(
        side=side,
        legal_entity="US01",
        period=PERIOD,
        currency=currency,
        opening=closing,
        billed=0,
        recognised=0,
        credited=0,
        closing=closing,
    )


def erp_invoice(external_id: str) -> ErpDocumentRow:
    return ErpDocumentRow(
        erp_document_id=external_id,
        external_id=external_id,
        kind="invoice",
        legal_entity="US01",
        period=PERIOD,
        currency="USD",
        total=10_000,
        amount_remaining=10_000,
        status="open",
        document_date=date(2026, 10, 5),
        due_date=None,
        source_event_id=f"evt_{external_id}",
    )


@dataclass(frozen=True)
class KnownExtracts:
    """Two ERP invoices Stripe never billed; deferred revenue 241.88 USD in billing vs 219.50 USD in the ERP."""

    billing_side_built: bool = True

    def build(self, period: str, entity: str | None) -> Extracts:
        return Extracts(
            erp_documents=(erp_invoice("stripe-invoice-in_a"), erp_invoice("stripe-invoice-in_b")),
            deferred_revenue=(deferred("billing", 24_188), deferred("erp", 21_950), deferred("billing", 500, "EUR")),
        )


def emf_points(out: str) -> dict[tuple[str, str, str], tuple[float, list[str]]]:
    """(metric, legal entity, class or currency) -> (value, sorted dimension names) of every EMF blob printed."""
    points = {}
    for line in out.splitlines():
        if '"_aws"' not in line:
            continue
        blob = json.loads(line)
        directive = blob["_aws"]["CloudWatchMetrics"][0]
        for definition in directive["Metrics"]:
            name = definition["Name"]
            extra = blob.get("class") or blob.get("currency") or ""
            value = blob[name][0] if isinstance(blob[name], list) else blob[name]
            points[(name, blob.get("legal_entity", ""), extra)] = (value, sorted(directive["Dimensions"][0]))
    return points


def test_the_reconcile_function_publishes_differences_by_class_and_deferred_variance(
    posted: AwsResources,  # noqa: F811 (fixture)
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN metrics enabled and a run whose extracts are known
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    monkeypatch.setattr(reconciliation_root, "extract_builder", cache(KnownExtracts))  # reset() clears it

    # WHEN October is reconciled for every entity
    from billing_sync.handlers import reconcile

    result: dict[str, Any] = reconcile.lambda_handler({"period": PERIOD}, CONTEXT)

    # THEN each class of difference is a data point under the all-entities dimension, as the KPI function's
    points = emf_points(capsys.readouterr().out)
    assert result["documents"]["missing_in_billing"] == 2
    for cls in CLASSES[1:]:
        expected = 2 if cls == "missing_in_billing" else 0
        assert points[(kpis.RECONCILIATION_DIFFERENCES, "ALL", cls)] == (
            expected,
            ["class", "legal_entity", "service"],
        )
    # AND the deferred revenue variance per entity and currency is billing's closing minus the ERP's
    assert points[(kpis.DEFERRED_REVENUE_VARIANCE, "US01", "USD")] == (2_238, ["currency", "legal_entity", "service"])
    assert points[(kpis.DEFERRED_REVENUE_VARIANCE, "US01", "EUR")][0] == 500
    # AND the KPI blobs are exactly these (the run's own counters are one blob apart)
    kpi_names = {kpis.RECONCILIATION_DIFFERENCES, kpis.DEFERRED_REVENUE_VARIANCE}
    assert sum(1 for name, _, _ in points if name in kpi_names) == len(CLASSES) - 1 + 2


def known_outcome(tmp_path: Path, entity: str | None) -> PeriodOutcome:
    controls = (
        ControlResult(
            "deferred_revenue_closing",
            "US01",
            "USD",
            PERIOD,
            "",
            "billing_closing",
            24_188,
            "erp_closing",
            21_950,
            2_238,
        ),
        ControlResult(
            "billed_vs_erp_invoices", "US01", "USD", PERIOD, "", "billed", 0, "erp_invoices", 20_000, -20_000
        ),
    )
    counts = dict.fromkeys(CLASSES, 0) | {"matched": 3, "missing_in_billing": 2}
    result = Reconciliation(period=PERIOD, entity=entity, counts=counts, documents={}, controls=controls)
    return PeriodOutcome(result, ReportPaths(tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "r.html"))


def test_the_cli_prints_the_figures_the_function_publishes(tmp_path: Path) -> None:
    # GIVEN a known result for US01
    outcome = known_outcome(tmp_path, "US01")

    # WHEN the CLI summarises it
    payload = summary_payload(outcome)

    # THEN --json carries each data point the function emits, with its value and dimensions
    rows = {(row["name"], row.get("class") or row.get("currency")): row for row in payload["kpis"]}
    assert rows[(kpis.DEFERRED_REVENUE_VARIANCE, "USD")] == {
        "name": kpis.DEFERRED_REVENUE_VARIANCE,
        "unit": "Count",
        "value": 2_238,
        "legal_entity": "US01",
        "currency": "USD",
    }
    assert rows[(kpis.RECONCILIATION_DIFFERENCES, "missing_in_billing")]["value"] == 2
    assert rows[(kpis.RECONCILIATION_DIFFERENCES, "missing_in_billing")]["legal_entity"] == "US01"
    assert (kpis.RECONCILIATION_DIFFERENCES, "matched") not in rows
    # AND the human summary prints them, money in major units
    text = render({**payload, "differences": [], "reports": {"html": "r.html"}})
    assert f"KPI {kpis.DEFERRED_REVENUE_VARIANCE} US01: 22.38 USD" in text
    assert f"KPI {kpis.RECONCILIATION_DIFFERENCES} US01 missing_in_billing: 2" in text
    assert f"KPI {kpis.RECONCILIATION_DIFFERENCES} US01 amount_mismatch: 0" in text


def test_the_function_and_the_cli_compute_the_same_data_points(tmp_path: Path) -> None:
    summary = known_outcome(tmp_path, None).result.summary()
    published = kpis.metric_rows(reconciliation_root.reconciliation_kpis_of(summary))
    assert published == summary_payload(known_outcome(tmp_path, None))["kpis"]
    assert {row["legal_entity"] for row in published} == {"ALL", "US01"}


def test_a_run_without_a_billing_side_publishes_no_kpis(
    posted: AwsResources,  # noqa: F811 (fixture)
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN metrics enabled and no Stripe key: the ERP side only, every ERP document missing in billing
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    from billing_sync.handlers import reconcile

    # WHEN October is reconciled
    result = reconcile.lambda_handler({"period": PERIOD}, CONTEXT)

    # THEN no KPI data point claims those as differences (the run's own counters still report them)
    assert result["billing_side_built"] is False and result["documents"]["missing_in_billing"] == 1
    points = emf_points(capsys.readouterr().out)
    assert not any(name in (kpis.RECONCILIATION_DIFFERENCES, kpis.DEFERRED_REVENUE_VARIANCE) for name, _, _ in points)
