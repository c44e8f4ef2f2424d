"""The KPI function on moto: inputs read through the real stores, KPIs computed, EMF metrics emitted per entity."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from billing_sync.aws.exception_store import DynamoExceptionStore
from billing_sync.composition import kpis as kpis_root
from billing_sync.domain import kpis
from billing_sync.domain.errors import ExceptionCategory
from billing_sync.domain.lineage import ExceptionRecord, LineageRecord, LineageStatus
from billing_sync.handlers import publish_kpis
from billing_sync.state.dynamo import DynamoLineageStore
from tests.functional.aws_fixtures import AwsResources
from tests.functional.test_balances_stream import _Context, create_balances_table
from tests.unit.test_balances import posted_ledger

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@pytest.fixture
def kpi_env(aws: AwsResources, monkeypatch: pytest.MonkeyPatch) -> AwsResources:
    create_balances_table(aws.dynamodb)
    monkeypatch.setenv("BALANCES_TABLE_NAME", "balances")
    monkeypatch.setattr(kpis_root, "now", lambda: NOW)
    return aws


def lineage_record(event_id: str, received: datetime, posted: datetime) -> LineageRecord:
    return LineageRecord(
        event_id=event_id,
        source="stripe",
        source_event_id=event_id,
        event_type="invoice.issued",
        status=LineageStatus.POSTED,
        first_seen=received,
        last_seen=posted,
        checkpoints={"received": received, "posted": posted},
    )


def test_kpis_from_balances_lineage_and_exceptions(kpi_env: AwsResources) -> None:
    # GIVEN one posted USD invoice in November in the balances, and a parked November invoice of 7,451
    reader = kpis_root.kpi_reader()
    invoice = next(d for d in posted_ledger().erp.posted_documents() if d.kind == "invoice" and d.currency == "USD")
    reader._balances.apply(invoice)
    DynamoExceptionStore(kpi_env.dynamodb, "exceptions").put(
        ExceptionRecord(
            event_id="evt_parked",
            source="stripe",
            source_event_id="evt_parked",
            event_type="invoice.issued",
            category=ExceptionCategory.MAPPING,
            reason="no account for product",
            attempts=1,
            first_seen=NOW - timedelta(hours=3),
            last_seen=NOW,
            event={"legal_entity": "US01", "data": {"currency": "USD", "total": 7_451}},
        )
    )
    # AND two events posted in the last hour, 2 s and 4 s after they were received
    lineage = DynamoLineageStore(kpi_env.dynamodb, "lineage")
    lineage.record(
        lineage_record("evt_a", NOW - timedelta(minutes=10), NOW - timedelta(minutes=10) + timedelta(seconds=2))
    )
    lineage.record(
        lineage_record("evt_b", NOW - timedelta(minutes=5), NOW - timedelta(minutes=5) + timedelta(seconds=4))
    )
    # WHEN the KPIs are computed
    results = {entity.legal_entity: entity for entity in reader.compute(NOW)}
    # THEN completeness counts the parked invoice as billed, not posted, to the minor unit
    us = results["US01"].completeness
    assert us is not None
    assert (us.billed, us.posted) == (2, 1)
    assert us.billed_amounts == {"USD": invoice.total + 7_451} and us.posted_amounts == {"USD": invoice.total}
    # AND latency and exceptions are cross-entity figures
    everyone = results["ALL"]
    assert everyone.latency is not None and (everyone.latency.p50_ms, everyone.latency.max_ms) == (2000, 4000)
    assert everyone.exceptions is not None and everyone.exceptions.oldest_age_seconds == 3 * 3600


def test_the_handler_emits_emf_with_the_legal_entity_dimension(
    kpi_env: AwsResources, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN metrics enabled
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    # WHEN the schedule invokes the function
    result = publish_kpis.lambda_handler({"scheduled_time": NOW.isoformat()}, _Context())  # type: ignore[arg-type]
    # THEN each data point is an EMF blob naming its metric and entity
    blobs = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    emitted: dict[tuple[str, str], Any] = {}
    dimensions: dict[str, list[str]] = {}
    for blob in blobs:
        for definition in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            emitted[(definition["Name"], blob["legal_entity"])] = blob[definition["Name"]]
            dimensions[definition["Name"]] = sorted(blob["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0])
    assert result["metrics"] == len(blobs)
    assert emitted[(kpis.INVOICE_COMPLETENESS_COUNT, "US01")] == [100.0]
    # AND the dimensions the alarms read: service and legal entity, nothing of higher cardinality
    assert dimensions[kpis.INVOICE_COMPLETENESS_COUNT] == ["legal_entity", "service"]
    assert (kpis.OLDEST_EXCEPTION_AGE, "ALL") in emitted
