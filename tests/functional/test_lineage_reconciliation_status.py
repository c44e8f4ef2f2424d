"""The scheduled reconcile function on moto publishes extracts and reports to S3, and the lineage trail then carries
each document's reconciliation status from the report it wrote."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest

from billing_sync import composition
from billing_sync.domain.journal import DocumentKind
from billing_sync.domain.lineage import LineageStatus
from billing_sync.erp.ledger import DynamoLedgerErpClient, ledger_document_id
from billing_sync.handlers import reconcile
from billing_sync.handlers.reconcile import ReconcileRequest
from billing_sync.state.dynamo import DynamoLineageStore
from billing_sync_ops.lambda_runtime import LocalLambdaContext
from tests.functional.aws_fixtures import AwsResources
from tests.functional.test_lineage_api import (
    BUCKET,
    INVOICE,
    INVOICE_EVENT,
    document_lineage,
    erp_document,
    lineage_record,
)

CONTEXT = LocalLambdaContext("reconcile", 900)


@pytest.fixture
def posted(aws: AwsResources, monkeypatch: pytest.MonkeyPatch) -> AwsResources:
    # GIVEN an October invoice in the ledger with its POSTED lineage, and an empty reconciliation bucket
    ledger = DynamoLedgerErpClient(aws.dynamodb, "ledger")
    invoice = erp_document(f"stripe-invoice-{INVOICE}", DocumentKind.INVOICE, 10_000, INVOICE_EVENT)
    ledger.create_document(invoice)
    DynamoLineageStore(aws.dynamodb, "lineage").record(
        lineage_record(INVOICE_EVENT, LineageStatus.POSTED, erp_document_ids=(ledger_document_id(invoice.external_id),))
    )
    aws.s3.create_bucket(Bucket=BUCKET)
    for name, value in {
        "LINEAGE_TABLE_NAME": "lineage",
        "LEDGER_TABLE_NAME": "ledger",
        "RECONCILIATION_BUCKET": BUCKET,
    }.items():
        monkeypatch.setenv(name, value)
    composition.reset()
    yield aws
    composition.reset()


def keys(aws: AwsResources, prefix: str) -> list[str]:
    listed = aws.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_the_schedule_reconciles_the_previous_month_and_publishes_to_s3(posted: AwsResources) -> None:
    # WHEN the schedule fires on 2 November
    result: dict[str, Any] = reconcile.lambda_handler(
        {"schedule_arn": "arn:aws:scheduler:::schedule/default/x", "scheduled_time": "2026-11-02T06:00:00Z"}, CONTEXT
    )

    # THEN October is reconciled from the ERP side it can build, and says the billing side is not built yet
    assert result["period"] == "2026-10"
    assert result["billing_side_built"] is False
    assert result["extracts"]["erp_documents"] == 1 and result["extracts"]["lineage"] == 1
    assert result["documents"]["missing_in_billing"] == 1
    # AND the extracts lie in the layout the Glue tables project, the reports next to them
    assert keys(posted, "reconciliation/extracts/erp_documents/legal_entity=US01/period=2026-10/")
    assert keys(posted, "reconciliation/extracts/lineage/legal_entity=US01/period=2026-10/")
    assert set(result["reports"]) == {"json", "csv", "html"}
    assert keys(posted, "reconciliation/reports/2026-10/") == [
        "reconciliation/reports/2026-10/reconciliation-2026-10.csv",
        "reconciliation/reports/2026-10/reconciliation-2026-10.html",
        "reconciliation/reports/2026-10/reconciliation-2026-10.json",
    ]
    # AND the lineage trail now carries the document's class from that report
    status, trail = document_lineage("stripe", INVOICE)
    assert status == 200, trail
    [document] = trail["erp_documents"]
    assert document["reconciliation"]["class"] == "missing_in_billing"
    assert document["reconciliation"]["report"].endswith("reconciliation-2026-10.json")


def test_a_rerun_replaces_the_partitions_it_writes(posted: AwsResources) -> None:
    # GIVEN a first run for October
    reconcile.lambda_handler({"period": "2026-10", "entity": "US01"}, CONTEXT)
    first = keys(posted, "reconciliation/extracts/erp_documents/")

    # WHEN it runs again
    reconcile.lambda_handler({"period": "2026-10", "entity": "US01"}, CONTEXT)

    # THEN the partition holds the second run's files only (Athena would otherwise count documents twice)
    second = keys(posted, "reconciliation/extracts/erp_documents/")
    assert len(second) == len(first) == 1 and second != first


def test_requests_are_validated_and_default_to_the_previous_month() -> None:
    now = datetime(2026, 1, 15, tzinfo=UTC)
    assert ReconcileRequest().target_period(now) == "2025-12"
    assert ReconcileRequest(period="2026-06").target_period(now) == "2026-06"
    with pytest.raises(ValueError, match="YYYY-MM"):
        ReconcileRequest(period="2026-13")
    with pytest.raises(ValueError, match="legal entity"):
        ReconcileRequest(entity="US01; DROP")
    assert json.loads(ReconcileRequest(entity="US01").model_dump_json())["entity"] == "US01"


def athena_rows(*rows: tuple[str, ...]) -> Any:
    from moto.athena.models import QueryResults

    header = {"Data": [{"VarCharValue": f"c{i}"} for i in range(len(rows[0]))]} if rows else {"Data": []}
    return QueryResults(
        rows=[header, *({"Data": [{"VarCharValue": value} for value in row]} for row in rows)], column_info=[]
    )


def test_with_the_athena_engine_the_same_sql_runs_in_the_workgroup(
    posted: AwsResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the function configured for Athena, and Athena answering the count and control queries
    from moto.athena.models import athena_backends
    from moto.core import DEFAULT_ACCOUNT_ID

    athena = boto3.client("athena")
    athena.create_work_group(Name="billing-sync-dev-reconciliation")
    for name, value in {
        "RECONCILIATION_ENGINE": "athena",
        "RECONCILIATION_ATHENA_WORKGROUP": "billing-sync-dev-reconciliation",
        "RECONCILIATION_GLUE_DATABASE": "billing_sync_dev",
    }.items():
        monkeypatch.setenv(name, value)
    composition.reset()
    backend = athena_backends[DEFAULT_ACCOUNT_ID]["us-east-1"]
    # moto hands queued results to queries in the order they start: documents, counts, controls
    backend.query_results_queue.extend(
        [
            athena_rows(),
            athena_rows(("missing_in_billing", "1")),
            athena_rows(("invoices", "US01", "USD", "2026-10", "total", "billed", "0", "ERP", "10000", "-10000")),
        ]
    )

    # WHEN the function runs for October
    result = reconcile.lambda_handler({"period": "2026-10", "entity": "US01"}, CONTEXT)

    # THEN it published the extracts, ran the transpiled SQL in the workgroup and reports what Athena counted
    assert result["engine"] == "athena"
    assert result["documents"]["missing_in_billing"] == 1 and result["documents"]["matched"] == 0
    [control] = result["controls"]
    assert (control["control"], control["variance"]) == ("invoices", -10_000)
    assert keys(posted, "reconciliation/extracts/erp_documents/legal_entity=US01/period=2026-10/")
    executions = list(backend.executions.values())
    assert len(executions) == 3
    assert all('"billing_sync_dev"."' in execution.query for execution in executions)
    assert {getattr(execution.workgroup, "name", execution.workgroup) for execution in executions} == {
        "billing-sync-dev-reconciliation"
    }


def test_with_the_stripe_key_both_sides_are_built_and_only_the_period_is_published(
    posted: AwsResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the Stripe API (a double listing nothing for October), its key in Secrets Manager, the raw archive,
    # and a September invoice in the ledger next to October's
    from datetime import date

    from billing_sync_ops.stripe_double import StripeDouble

    september = erp_document("stripe-invoice-in_1September", DocumentKind.INVOICE, 5_000, "evt_1September")
    DynamoLedgerErpClient(posted.dynamodb, "ledger").create_document(
        september.model_copy(update={"posting_date": date(2026, 9, 20)})
    )
    secret_arn = boto3.client("secretsmanager").create_secret(Name="stripe-key", SecretString="rk_test_double")["ARN"]
    with StripeDouble() as double:
        for name, value in {
            "STRIPE_API_KEY_SECRET_ARN": secret_arn,
            "STRIPE_API_BASE": double.url,
            "RAW_ARCHIVE_BUCKET": posted.bucket,
        }.items():
            monkeypatch.setenv(name, value)
        composition.reset()

        # WHEN the function reconciles October
        result = reconcile.lambda_handler({"period": "2026-10"}, CONTEXT)

    # THEN the billing side was built from Stripe's list API (empty here), so October's invoice is missing in billing
    assert result["billing_side_built"] is True
    assert result["documents"]["missing_in_billing"] == 1
    # AND only October's partitions were written: September's are another run's to replace
    assert keys(posted, "reconciliation/extracts/erp_documents/legal_entity=US01/period=2026-10/")
    assert keys(posted, "reconciliation/extracts/erp_documents/legal_entity=US01/period=2026-09/") == []
