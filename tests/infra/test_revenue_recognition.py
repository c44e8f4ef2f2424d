from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk import aws_scheduler as scheduler

from infra import BillingSyncConfig
from infra.config import DEFAULT_RECOGNITION_SCHEDULE
from tests.infra.conftest import SynthesisedStack, synthesise
from tests.infra.test_refund_saga import as_list, statements_of_role
from tests.infra.test_stack import alarm_topic_id, alarms_on, function_by_module, logical_id_of, role_logical_id

pytestmark = pytest.mark.infra

MODULE = "recognize_revenue"


def recognition_schedule(synthesised: SynthesisedStack) -> dict:
    # The stack has other schedules (reconciliation): this one is the schedule that runs recognition.
    [schedule] = [
        s
        for s in synthesised.resources("AWS::Scheduler::Schedule").values()
        if s["Properties"]["Target"]["Arn"] == function_arn(synthesised)
    ]
    return schedule["Properties"]


def function_arn(synthesised: SynthesisedStack) -> dict:
    function_id, _ = function_by_module(synthesised, MODULE)
    return {"Fn::GetAtt": [function_id, "Arn"]}


def exception_queue_arn(synthesised: SynthesisedStack) -> dict:
    return {"Fn::GetAtt": [logical_id_of(synthesised, "AWS::SQS::Queue", "PostingPipelineExceptionQueue"), "Arn"]}


def test_the_default_schedule_is_the_first_of_the_month_at_0230_utc():
    # GIVEN the expression the L2 builds from its parts
    expected = scheduler.ScheduleExpression.cron(minute="30", hour="2", day="1").expression_string

    # THEN the configured default is that expression
    assert DEFAULT_RECOGNITION_SCHEDULE == expected == "cron(30 2 1 * ? *)"


def test_the_schedule_runs_the_function_monthly_with_retries_and_a_dlq(synthesised):
    # GIVEN the one Scheduler schedule of the stack
    properties = recognition_schedule(synthesised)
    target = properties["Target"]

    # THEN it fires at the configured cron in UTC, on time, and invokes the recognition function
    assert properties["ScheduleExpression"] == "cron(30 2 1 * ? *)"
    assert properties["ScheduleExpressionTimezone"] == "Etc/UTC"
    assert properties["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert properties["State"] == "ENABLED"
    assert target["Arn"] == function_arn(synthesised)
    # AND an undeliverable run is retried, then dead-lettered to the exception queue
    assert target["DeadLetterConfig"] == {"Arn": exception_queue_arn(synthesised)}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] <= 24 * 3600
    # AND it sends no `through`, so the handler runs through the end of the previous month
    assert "through" not in json.loads(target["Input"])


def test_the_schedule_role_may_only_invoke_the_function_and_dead_letter(synthesised):
    # GIVEN the schedule's role and its statements
    role_id = recognition_schedule(synthesised)["Target"]["RoleArn"]["Fn::GetAtt"][0]
    role = synthesised.resource(role_id)["Properties"]
    statements = statements_of_role(synthesised, role_id)
    arn = function_arn(synthesised)

    # THEN only EventBridge Scheduler of this account may assume it
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert trust["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    # AND it grants InvokeFunction on the recognition function (and its versions), SendMessage on the DLQ and
    # the use of the DLQ's key
    by_action = {tuple(as_list(s["Action"])): as_list(s["Resource"]) for s in statements}
    messaging_key = {"Fn::GetAtt": [logical_id_of(synthesised, "AWS::KMS::Key", "KeysMessaging"), "Arn"]}
    assert by_action == {
        ("lambda:InvokeFunction",): [arn, {"Fn::Join": ["", [arn, ":*"]]}],
        ("sqs:SendMessage",): [exception_queue_arn(synthesised)],
        ("kms:GenerateDataKey", "kms:Decrypt"): [messaging_key],
    }
    assert all(s["Effect"] == "Allow" for s in statements)


def test_the_function_writes_the_ledger_and_only_reads_master_data(synthesised):
    # GIVEN the function's statements
    _, function = function_by_module(synthesised, MODULE)
    statements = statements_of_role(synthesised, role_logical_id(function))
    granted = json.dumps([s["Resource"] for s in statements])
    actions = {a for s in statements for a in as_list(s["Action"])}
    master_data = logical_id_of(synthesised, "AWS::DynamoDB::Table", "StateTablesMasterData")

    # THEN it reads the ledger and appends to it, never changing or deleting a document
    ledger = logical_id_of(synthesised, "AWS::DynamoDB::Table", "StateTablesLedger")
    on_ledger = {a for s in statements if ledger in json.dumps(s["Resource"]) for a in as_list(s["Action"])}
    assert {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"} <= on_ledger
    assert not on_ledger & {"dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem"}
    # AND reads master data (closed periods, exchange rates) without writing it
    on_master_data = {a for s in statements if master_data in json.dumps(s["Resource"]) for a in as_list(s["Action"])}
    assert {"dynamodb:GetItem", "dynamodb:BatchGetItem"} <= on_master_data
    assert not on_master_data & {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}
    # AND no other table, and nothing but DynamoDB with its key, its own log group, tracing and the queue a
    # failed run lands in (no exception or posting queue, saga, bus)
    for table in ("StateTablesLineage", "StateTablesWaitingRoom", "StateTablesExceptions"):
        assert logical_id_of(synthesised, "AWS::DynamoDB::Table", table) not in granted, table
    queue_send = ("sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl")
    assert all(a.startswith(("dynamodb:", "logs:", "xray:", "kms:", *queue_send)) for a in actions), actions
    failed_invocations = logical_id_of(synthesised, "AWS::SQS::Queue", "InvocationFailuresFailedInvocations")
    sends = [s for s in statements if set(queue_send) & set(as_list(s["Action"]))]
    assert [s["Resource"] for s in sends] == [{"Fn::GetAtt": [failed_invocations, "Arn"]}]


def test_the_function_runs_five_minutes_on_the_posting_settings(synthesised):
    # GIVEN the recognition function and the posting function
    _, function = function_by_module(synthesised, MODULE)
    _, posting = function_by_module(synthesised, "post_to_erp")
    variables = function["Properties"]["Environment"]["Variables"]

    # THEN it has the posting environment (the ledger's name included), less what starts refund sagas
    assert function["Properties"]["Timeout"] == 300
    assert variables["LEDGER_TABLE_NAME"] == {
        "Ref": logical_id_of(synthesised, "AWS::DynamoDB::Table", "StateTablesLedger")
    }
    saga = {"REFUND_SAGA_ARN", "SAGA_WAIT_SECONDS", "SAGA_MAX_WAITS"}
    stripe_api = {"STRIPE_API_KEY_SECRET_ARN", "STRIPE_API_BASE"}  # the posting functions' only
    posting_variables = posting["Properties"]["Environment"]["Variables"]
    assert variables == {k: v for k, v in posting_variables.items() if k not in saga | stripe_api}


@pytest.mark.parametrize("metric_name", ["Errors", "Throttles"])
def test_a_failed_or_throttled_run_pages_the_alarm_topic(synthesised, metric_name):
    function_id, _ = function_by_module(synthesised, MODULE)
    [alarm] = alarms_on(synthesised, metric_name, {"FunctionName": {"Ref": function_id}})
    assert alarm["Threshold"] == 1
    assert {"Ref": alarm_topic_id(synthesised)} in alarm["AlarmActions"]


def test_the_function_name_is_an_output(synthesised):
    function_id, _ = function_by_module(synthesised, MODULE)
    outputs = synthesised.template.to_json()["Outputs"]
    assert outputs["RecognizeRevenueFunctionName"]["Value"] == {"Ref": function_id}


def test_the_schedule_comes_from_context(tmp_path):
    # GIVEN a stack whose recognition runs on the 2nd at 06:00
    synthesised = synthesise(tmp_path, {"recognitionSchedule": "cron(0 6 2 * ? *)"})

    # THEN the schedule uses it
    assert recognition_schedule(synthesised)["ScheduleExpression"] == "cron(0 6 2 * ? *)"


def test_a_recognition_schedule_that_is_not_an_expression_is_refused():
    with pytest.raises(ValueError, match="recognitionSchedule"):
        BillingSyncConfig.from_context(cdk.App(context={"recognitionSchedule": "30 2 1 * *"}).node)
