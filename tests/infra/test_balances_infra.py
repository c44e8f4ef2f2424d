"""Running balances and the finance dashboard in the template: the ledger stream, the balances function's
event source mapping (bisect, partial failures, on-failure to the exception queue), the KPI schedule,
the dashboard with the KPI metric names, and the alarms."""

from __future__ import annotations

import json

import pytest

from billing_sync.domain import kpis
from tests.infra.conftest import SynthesisedStack
from tests.infra.test_stack import alarm_topic_id, function_by_module, logical_id_of

pytestmark = pytest.mark.infra


def ledger(synthesised: SynthesisedStack) -> dict:
    return synthesised.resource(logical_id_of(synthesised, "AWS::DynamoDB::Table", "StateTablesLedger"))


def test_the_ledger_streams_new_images(synthesised: SynthesisedStack) -> None:
    assert ledger(synthesised)["Properties"]["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}


def test_the_balances_table_is_keyed_by_pk_and_sk(synthesised: SynthesisedStack) -> None:
    table = synthesised.resource(logical_id_of(synthesised, "AWS::DynamoDB::Table", "StateTablesBalances"))
    assert table["Properties"]["KeySchema"] == [
        {"AttributeName": "pk", "KeyType": "HASH"},
        {"AttributeName": "sk", "KeyType": "RANGE"},
    ]


def test_the_stream_mapping_bisects_reports_items_and_parks_in_the_exception_queue(
    synthesised: SynthesisedStack,
) -> None:
    # GIVEN the balances function and the mapping from the ledger's stream
    function_id, _ = function_by_module(synthesised, "maintain_balances")
    ledger_id = logical_id_of(synthesised, "AWS::DynamoDB::Table", "StateTablesLedger")
    [mapping] = [
        m["Properties"]
        for m in synthesised.resources("AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    # THEN it reads the ledger's stream, bisects, reports item failures, and fails over to the exception queue
    assert mapping["EventSourceArn"] == {"Fn::GetAtt": [ledger_id, "StreamArn"]}
    assert mapping["BisectBatchOnFunctionError"] is True
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["StartingPosition"] == "TRIM_HORIZON"
    queue_id = logical_id_of(synthesised, "AWS::SQS::Queue", "PostingPipelineExceptionQueue")
    assert mapping["DestinationConfig"]["OnFailure"]["Destination"] == {"Fn::GetAtt": [queue_id, "Arn"]}
    # AND only inserted documents invoke it
    [pattern] = [json.loads(f["Pattern"]) for f in mapping["FilterCriteria"]["Filters"]]
    assert pattern == {"eventName": ["INSERT"], "dynamodb": {"Keys": {"pk": {"S": [{"prefix": "DOC#"}]}}}}


def test_the_balances_function_writes_only_the_balances_table(synthesised: SynthesisedStack) -> None:
    _, function = function_by_module(synthesised, "maintain_balances")
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    policies = [
        p["Properties"]["PolicyDocument"]["Statement"]
        for p in synthesised.resources("AWS::IAM::Policy").values()
        if {"Ref": role} in p["Properties"]["Roles"]
    ]
    written = {
        json.dumps(statement["Resource"])
        for statements in policies
        for statement in statements
        if "dynamodb:PutItem"
        in (statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]])
    }
    assert written and all("StateTablesBalances" in resource and "Ledger" not in resource for resource in written)


def test_the_kpi_function_runs_hourly_on_a_schedule(synthesised: SynthesisedStack) -> None:
    function_id, _ = function_by_module(synthesised, "publish_kpis")
    [schedule] = [
        s["Properties"]
        for s in synthesised.resources("AWS::Scheduler::Schedule").values()
        if s["Properties"]["Target"]["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]
    assert schedule["ScheduleExpression"] == "rate(1 hour)"
    assert "DeadLetterConfig" in schedule["Target"]


def test_the_dashboard_shows_every_kpi(synthesised: SynthesisedStack) -> None:
    [dashboard] = synthesised.resources("AWS::CloudWatch::Dashboard").values()
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for name in (
        kpis.INVOICE_COMPLETENESS_COUNT,
        kpis.INVOICE_COMPLETENESS_AMOUNT,
        kpis.POSTING_LATENCY_P50,
        kpis.POSTING_LATENCY_P95,
        kpis.POSTING_LATENCY_MAX,
        kpis.UNAPPLIED_CASH,
        kpis.DEFERRED_REVENUE_VARIANCE,
        kpis.OPEN_EXCEPTIONS,
        kpis.RECONCILIATION_DIFFERENCES,
    ):
        assert name in body, name


def test_kpi_and_stream_alarms_exist_and_notify_the_alarm_topic(synthesised: SynthesisedStack) -> None:
    alarms = [a["Properties"] for a in synthesised.resources("AWS::CloudWatch::Alarm").values()]
    topic = {"Ref": alarm_topic_id(synthesised)}
    by_metric: dict[str, list[dict]] = {}
    for alarm in alarms:
        by_metric.setdefault(alarm.get("MetricName", ""), []).append(alarm)
    completeness = by_metric[kpis.INVOICE_COMPLETENESS_COUNT]
    assert {d["Value"] for a in completeness for d in a["Dimensions"] if d["Name"] == "legal_entity"} == {
        "US01",
        "JP01",
        "KW01",
    }
    assert all(
        a["ComparisonOperator"] == "LessThanThreshold"
        and a["Threshold"] == 100
        and a["EvaluationPeriods"] == 2
        and a["Period"] == 3600
        for a in completeness
    )
    [latency] = by_metric[kpis.POSTING_LATENCY_P95]
    assert latency["Threshold"] == 15 * 60 * 1000
    [oldest] = by_metric[kpis.OLDEST_EXCEPTION_AGE]
    assert oldest["Threshold"] == 2 * 86400
    # one per consumer of the ledger stream: the balances and the release of waiting events
    lags = by_metric["IteratorAge"]
    assert len(lags) == 2 and all(lag["Namespace"] == "AWS/Lambda" for lag in lags)
    for alarm in (*completeness, latency, oldest, *lags):
        assert alarm["AlarmActions"] == [topic]
