from __future__ import annotations

import json
from pathlib import Path

import aws_cdk as cdk
import pytest

from infra import BillingSyncConfig
from tests.infra.conftest import SynthesisedStack
from tests.infra.test_stack import alarm_topic_id, alarms_on, function_by_module, logical_id_of, role_logical_id

pytestmark = pytest.mark.infra

DEFINITION_FILE = Path(__file__).resolve().parents[2] / "infra" / "statemachines" / "refund_saga.asl.json"
TASKS_PLACEHOLDER = "RefundSagaTasksArn"
SAGA_VARIABLES = {"REFUND_SAGA_ARN", "SAGA_WAIT_SECONDS", "SAGA_MAX_WAITS"}
# Only the posting and sweep functions read the Stripe API (tests/infra/test_stripe_api_secret.py).
STRIPE_API_VARIABLES = {"STRIPE_API_KEY_SECRET_ARN", "STRIPE_API_BASE"}
# What CDK adds to a state machine role for logging to CloudWatch Logs and for X-Ray tracing.
LOG_DELIVERY_ACTIONS = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
}
TRACING_ACTIONS = {
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
}


def state_machine(synthesised: SynthesisedStack) -> tuple[str, dict]:
    [(logical_id, resource)] = synthesised.resources("AWS::StepFunctions::StateMachine").items()
    return logical_id, resource


def task_function_arn(synthesised: SynthesisedStack) -> dict:
    task_id, _ = function_by_module(synthesised, "refund_saga")
    return {"Fn::GetAtt": [task_id, "Arn"]}


def deployed_definition(synthesised: SynthesisedStack) -> str:
    """The definition CloudFormation reads: the file asset staged in the cloud assembly, before substitution."""
    _, resource = state_machine(synthesised)
    key = resource["Properties"]["DefinitionS3Location"]["Key"]
    return (synthesised.outdir / f"asset.{key}").read_text()


def substituted(definition: str, substitutions: dict[str, object]) -> dict:
    """The definition with each `${name}` replaced by its (unresolved) value, rendered as a JSON string."""
    for name, value in substitutions.items():
        definition = definition.replace("${" + name + "}", json.dumps(json.dumps(value))[1:-1])
    return json.loads(definition)


def statements_of_role(synthesised: SynthesisedStack, role_id: str) -> list[dict]:
    return [
        statement
        for policy in synthesised.resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def as_list(value: object) -> list:
    return value if isinstance(value, list) else [value]


def test_the_refund_saga_is_a_standard_state_machine_running_the_given_definition(synthesised):
    # GIVEN the state machine and the definition file it is built from
    _, resource = state_machine(synthesised)
    properties = resource["Properties"]
    given = json.loads(DEFINITION_FILE.read_text())

    # WHEN the staged definition gets the stack's substitutions, as CloudFormation applies them
    deployed = substituted(deployed_definition(synthesised), properties["DefinitionSubstitutions"])

    # THEN it is STANDARD and runs every state of the file, each with its type, from the same start
    assert properties["StateMachineType"] == "STANDARD"
    assert deployed["StartAt"] == given["StartAt"]
    assert {name: state["Type"] for name, state in deployed["States"].items()} == {
        name: state["Type"] for name, state in given["States"].items()
    }
    # AND every Task state invokes the task function
    task_resources = {state["Resource"] for state in deployed["States"].values() if state["Type"] == "Task"}
    assert task_resources == {json.dumps(task_function_arn(synthesised))}


def test_every_task_state_invokes_the_task_function(synthesised):
    # GIVEN the state machine's substitutions and its staged definition
    _, resource = state_machine(synthesised)
    substitutions = resource["Properties"]["DefinitionSubstitutions"]
    staged = json.loads(deployed_definition(synthesised))

    # THEN the one placeholder is the task function's ARN and every Task state names it
    assert substitutions == {TASKS_PLACEHOLDER: task_function_arn(synthesised)}
    tasks = [state for state in staged["States"].values() if state["Type"] == "Task"]
    assert tasks
    assert {state["Resource"] for state in tasks} == {"${" + TASKS_PLACEHOLDER + "}"}


def test_the_state_machine_role_may_invoke_only_the_task_function(synthesised):
    # GIVEN the state machine role's statements
    _, resource = state_machine(synthesised)
    statements = statements_of_role(synthesised, resource["Properties"]["RoleArn"]["Fn::GetAtt"][0])
    task_arn = task_function_arn(synthesised)

    # THEN Lambda access is InvokeFunction on the task function (and its versions) only
    lambda_statements = [s for s in statements if any(a.startswith("lambda:") for a in as_list(s["Action"]))]
    assert [as_list(s["Action"]) for s in lambda_statements] == [["lambda:InvokeFunction"]]
    assert as_list(lambda_statements[0]["Resource"]) == [task_arn, {"Fn::Join": ["", [task_arn, ":*"]]}]
    # AND everything else is the log delivery and tracing CDK needs
    other_actions = {a for s in statements if s not in lambda_statements for a in as_list(s["Action"])}
    assert other_actions <= LOG_DELIVERY_ACTIONS | TRACING_ACTIONS
    assert all(s["Effect"] == "Allow" for s in statements)


def test_the_state_machine_logs_all_events_and_is_traced(synthesised):
    _, resource = state_machine(synthesised)
    properties = resource["Properties"]

    assert properties["LoggingConfiguration"]["Level"] == "ALL"
    assert properties["LoggingConfiguration"]["IncludeExecutionData"] is False
    assert properties["TracingConfiguration"] == {"Enabled": True}
    [destination] = properties["LoggingConfiguration"]["Destinations"]
    log_group = synthesised.resource(destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0])
    assert log_group["Properties"]["LogGroupName"].startswith("/aws/vendedlogs/states/")
    assert log_group["Properties"]["RetentionInDays"] == 30


def test_the_task_function_runs_on_the_posting_settings_without_the_saga_arn(synthesised):
    # GIVEN the task function and the posting function
    _, task = function_by_module(synthesised, "refund_saga")
    _, posting = function_by_module(synthesised, "post_to_erp")
    task_variables = task["Properties"]["Environment"]["Variables"]
    posting_variables = posting["Properties"]["Environment"]["Variables"]

    # THEN it has the posting function's environment, less what starts sagas (which would be a cycle)
    assert task["Properties"]["Timeout"] == 30
    assert task_variables == {
        k: v for k, v in posting_variables.items() if k not in SAGA_VARIABLES | STRIPE_API_VARIABLES
    }


def test_the_task_function_may_use_only_the_saga_tables_and_the_two_queues(synthesised):
    # GIVEN the task function's statements and the resources of the stack
    _, task = function_by_module(synthesised, "refund_saga")
    statements = statements_of_role(synthesised, role_logical_id(task))
    granted = json.dumps([s["Resource"] for s in statements])

    # THEN it reads and writes the five tables it needs, sends to the exception queue and (releasing what
    # waits for a refund it recorded) to the posting queue, nothing more
    tables = ("StateTablesLedger", "StateTablesLineage", "StateTablesMasterData", "StateTablesExceptions")
    for table in (*tables, "StateTablesWaitingRoom"):
        assert logical_id_of(synthesised, "AWS::DynamoDB::Table", table) in granted, table
    for queue in ("PostingPipelineExceptionQueue", "PostingPipelinePostingQueue"):
        assert logical_id_of(synthesised, "AWS::SQS::Queue", queue) in granted, queue
    actions = {a for s in statements for a in as_list(s["Action"])}
    assert {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "sqs:SendMessage"} <= actions
    assert not any(a.startswith(("states:", "events:", "s3:", "secretsmanager:")) for a in actions)


@pytest.mark.parametrize("module", ["post_to_erp", "sweep_waiting_room"])
def test_posting_and_sweep_start_refund_sagas(synthesised, module):
    # GIVEN a function that runs the posting service
    state_machine_id, _ = state_machine(synthesised)
    _, function = function_by_module(synthesised, module)
    variables = function["Properties"]["Environment"]["Variables"]

    # THEN it knows the saga and its wait settings and may start executions of it
    assert variables["REFUND_SAGA_ARN"] == {"Ref": state_machine_id}
    assert variables["SAGA_WAIT_SECONDS"] == "300"
    assert variables["SAGA_MAX_WAITS"] == "864"
    starts = [
        s
        for s in statements_of_role(synthesised, role_logical_id(function))
        if "states:StartExecution" in as_list(s["Action"])
    ]
    assert [s["Resource"] for s in starts] == [{"Ref": state_machine_id}]


def test_saga_wait_settings_come_from_context():
    # GIVEN context that shortens the saga's waits, zero waits included
    app = cdk.App(context={"sagaWaitSeconds": "60", "sagaMaxWaits": 0})

    # WHEN the configuration is read
    config = BillingSyncConfig.from_context(app.node)

    # THEN both are taken as given, and the defaults are a three-day horizon
    assert (config.saga_wait_seconds, config.saga_max_waits) == (60, 0)
    defaults = BillingSyncConfig.from_context(cdk.App().node)
    assert defaults.saga_wait_seconds * defaults.saga_max_waits == 3 * 24 * 3600


def test_a_saga_wait_below_one_second_is_refused():
    with pytest.raises(ValueError, match="sagaWaitSeconds"):
        BillingSyncConfig.from_context(cdk.App(context={"sagaWaitSeconds": 0}).node)


@pytest.mark.parametrize("metric_name", ["ExecutionsFailed", "ExecutionsTimedOut"])
def test_failed_and_timed_out_sagas_page_the_alarm_topic(synthesised, metric_name):
    # GIVEN the alarm on the state machine's executions
    state_machine_id, _ = state_machine(synthesised)
    [alarm] = alarms_on(synthesised, metric_name, {"StateMachineArn": {"Ref": state_machine_id}})

    # THEN any one of them notifies the alarm topic
    assert alarm["Namespace"] == "AWS/States"
    assert alarm["Statistic"] == "Sum"
    assert alarm["Threshold"] == 1
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert {"Ref": alarm_topic_id(synthesised)} in alarm["AlarmActions"]


def test_the_refund_saga_arn_is_an_output(synthesised):
    state_machine_id, _ = state_machine(synthesised)
    assert synthesised.template.to_json()["Outputs"]["RefundSagaArn"]["Value"] == {"Ref": state_machine_id}


def test_saga_executions_that_end_without_success_reach_the_task_function(synthesised):
    # GIVEN the rule on the default bus that hears how refund saga executions end
    [rule] = [
        resource
        for resource in synthesised.resources("AWS::Events::Rule").values()
        if resource["Properties"].get("EventPattern", {}).get("source") == ["aws.states"]
    ]
    machine_id, _ = state_machine(synthesised)
    task_id, _ = function_by_module(synthesised, "refund_saga")
    properties = rule["Properties"]

    # THEN it matches this state machine's executions that FAILED, TIMED_OUT or were ABORTED
    assert "EventBusName" not in properties
    assert properties["EventPattern"] == {
        "source": ["aws.states"],
        "detail-type": ["Step Functions Execution Status Change"],
        "detail": {"status": ["FAILED", "TIMED_OUT", "ABORTED"], "stateMachineArn": [{"Ref": machine_id}]},
    }
    # AND invokes the task function, retrying for a day before the event goes to the exception queue
    [target] = properties["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": [task_id, "Arn"]}
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 86400, "MaximumRetryAttempts": 185}
    exception_queue = logical_id_of(synthesised, "AWS::SQS::Queue", "PostingPipelineExceptionQueue")
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [exception_queue, "Arn"]}}
    # AND an invocation that fails every retry is kept in FailedInvocations
    [invoke_config] = [
        resource
        for resource in synthesised.resources("AWS::Lambda::EventInvokeConfig").values()
        if resource["Properties"]["FunctionName"] == {"Ref": task_id}
    ]
    failed = logical_id_of(synthesised, "AWS::SQS::Queue", "InvocationFailuresFailedInvocations")
    assert invoke_config["Properties"]["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": [failed, "Arn"]
    }
