from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk.assertions import Match

from billing_sync.aws.exception_store import OPEN_BY_CATEGORY_INDEX
from billing_sync.domain.posting.rules import POSTED_EVENT_TYPES, POSTING_RULES
from billing_sync.observability import metrics
from tests.infra.conftest import ALARM_EMAIL, PARTNER_BUS_NAME, SynthesisedStack

pytestmark = pytest.mark.infra

POSTING_FUNCTION_TIMEOUT_SECONDS = 30
FOURTEEN_DAYS_SECONDS = 14 * 24 * 3600
EXCEPTION_PARKING_MODULES = ("stripe_webhook", "post_to_erp", "sweep_waiting_room")


def function_by_module(synthesised: SynthesisedStack, module: str) -> tuple[str, dict]:
    handler = f"billing_sync.handlers.{module}.lambda_handler"
    matches = [
        (logical_id, resource)
        for logical_id, resource in synthesised.resources("AWS::Lambda::Function").items()
        if resource["Properties"]["Handler"] == handler
    ]
    assert len(matches) == 1, f"expected exactly one function with handler {handler}"
    return matches[0]


def role_logical_id(function: dict) -> str:
    return function["Properties"]["Role"]["Fn::GetAtt"][0]


def allowed_actions(synthesised: SynthesisedStack, module: str) -> set[str]:
    role_id = role_logical_id(function_by_module(synthesised, module)[1])
    actions: set[str] = set()
    for policy in synthesised.resources("AWS::IAM::Policy").values():
        if {"Ref": role_id} not in policy["Properties"]["Roles"]:
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert statement["Effect"] == "Allow"
            granted = statement["Action"]
            actions.update([granted] if isinstance(granted, str) else granted)
    return actions


def logical_id_of(synthesised: SynthesisedStack, resource_type: str, path_fragment: str) -> str:
    matches = [
        logical_id for logical_id in synthesised.resources(resource_type) if logical_id.startswith(path_fragment)
    ]
    assert len(matches) == 1, f"expected one {resource_type} starting with {path_fragment}: {matches}"
    return matches[0]


def test_every_function_is_arm64_python312_plus_traced_with_json_logs(synthesised):
    # GIVEN the synthesised stack
    functions = synthesised.resources("AWS::Lambda::Function")

    # THEN every function shares the factory's runtime settings
    assert functions
    for logical_id, function in functions.items():
        properties = function["Properties"]
        assert properties["Architectures"] == ["arm64"], logical_id
        runtime = properties["Runtime"]
        assert runtime.startswith("python3.")
        assert int(runtime.removeprefix("python3.")) >= 12, logical_id
        # Pass-through: traced when the caller sampled (tests/infra/test_tracing_sampling.py)
        assert properties["TracingConfig"] == {"Mode": "PassThrough"}, logical_id
        assert properties["LoggingConfig"]["LogFormat"] == "JSON", logical_id
        # The factory's 512 MB, or more where a function says why (reconciliation runs DuckDB in memory).
        assert properties["MemorySize"] >= 512, logical_id
        assert properties["Environment"]["Variables"]["POWERTOOLS_SERVICE_NAME"] == "billing-sync"
        assert properties["Environment"]["Variables"]["POWERTOOLS_METRICS_NAMESPACE"] == "BillingSync"
        layer = json.dumps(properties["Layers"])
        assert f"AWSLambdaPowertoolsPythonV3-{runtime.replace('.', '')}-arm64:" in layer
        assert "${AWS::Region}" in layer


def test_every_function_has_a_log_group_with_retention(synthesised):
    log_groups = synthesised.resources("AWS::Logs::LogGroup")
    for logical_id, function in synthesised.resources("AWS::Lambda::Function").items():
        log_group_id = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
        assert log_groups[log_group_id]["Properties"]["RetentionInDays"] == 30, logical_id


def alarms(synthesised: SynthesisedStack) -> list[dict]:
    return [alarm["Properties"] for alarm in synthesised.resources("AWS::CloudWatch::Alarm").values()]


def alarms_on(synthesised: SynthesisedStack, metric_name: str, dimensions: dict[str, object]) -> list[dict]:
    return [
        alarm
        for alarm in alarms(synthesised)
        if alarm.get("MetricName") == metric_name
        and {d["Name"]: d["Value"] for d in alarm.get("Dimensions", [])} == dimensions
    ]


def exception_queue_ids(synthesised: SynthesisedStack) -> set[str]:
    """Every queue something dead-letters or fails over to: redrive targets, rule DLQs, on-failure destinations."""
    template = synthesised.template.to_json()["Resources"]
    arns: list[object] = []
    for resource in template.values():
        properties = resource.get("Properties", {})
        if resource["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in properties:
            arns.append(properties["RedrivePolicy"]["deadLetterTargetArn"])
        if resource["Type"] == "AWS::Events::Rule":
            arns.extend(t["DeadLetterConfig"]["Arn"] for t in properties.get("Targets", []) if "DeadLetterConfig" in t)
        if resource["Type"] == "AWS::Lambda::EventInvokeConfig":
            destination = properties["DestinationConfig"]["OnFailure"]["Destination"]
            if template[destination["Fn::GetAtt"][0]]["Type"] == "AWS::SQS::Queue":
                arns.append(destination)
    assert all(isinstance(arn, dict) and "Fn::GetAtt" in arn for arn in arns), f"a target outside the stack: {arns}"
    return {arn["Fn::GetAtt"][0] for arn in arns}  # type: ignore[index]


def test_function_timeouts_and_environment(synthesised):
    _, webhook = function_by_module(synthesised, "stripe_webhook")
    _, posting = function_by_module(synthesised, "post_to_erp")

    assert webhook["Properties"]["Timeout"] == 10
    assert posting["Properties"]["Timeout"] == POSTING_FUNCTION_TIMEOUT_SECONDS
    assert set(webhook["Properties"]["Environment"]["Variables"]) >= {
        "BILLING_BUS_NAME",
        "RAW_ARCHIVE_BUCKET",
        "STRIPE_WEBHOOK_SECRET_NAME",
        "LINEAGE_TABLE_NAME",
        "EXCEPTION_QUEUE_URL",
        "DEFAULT_LEGAL_ENTITY",
    }
    assert webhook["Properties"]["Environment"]["Variables"]["DEFAULT_LEGAL_ENTITY"] == "US01"
    assert set(posting["Properties"]["Environment"]["Variables"]) >= {
        "LINEAGE_TABLE_NAME",
        "LEDGER_TABLE_NAME",
        "MASTER_DATA_TABLE_NAME",
        "EXCEPTION_QUEUE_URL",
    }


def test_every_function_that_parks_exceptions_knows_the_exception_store(synthesised_with_partner_bus):
    # GIVEN the stack with every function, the partner normaliser included
    stack = synthesised_with_partner_bus
    table_id = logical_id_of(stack, "AWS::DynamoDB::Table", "StateTablesExceptions")

    # THEN each function that parks exceptions is told the table and may write to it
    for module in (*EXCEPTION_PARKING_MODULES, "stripe_partner_events"):
        _, function = function_by_module(stack, module)
        assert function["Properties"]["Environment"]["Variables"]["EXCEPTION_TABLE_NAME"] == {"Ref": table_id}, module
        assert "dynamodb:PutItem" in allowed_actions(stack, module), module
    assert {"dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:GetItem"} <= allowed_actions(stack, "post_to_erp")


def test_the_exception_store_lists_open_exceptions_by_category_oldest_first(synthesised):
    # GIVEN the exception store table
    table = synthesised.resource(logical_id_of(synthesised, "AWS::DynamoDB::Table", "StateTablesExceptions"))

    # THEN it is keyed by event id with the OpenByCategory index the adapter queries
    properties = table["Properties"]
    assert properties["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
    [index] = [gsi for gsi in properties["GlobalSecondaryIndexes"] if gsi["IndexName"] == OPEN_BY_CATEGORY_INDEX]
    assert OPEN_BY_CATEGORY_INDEX == "OpenByCategory"
    assert index["KeySchema"] == [
        {"AttributeName": "open_category", "KeyType": "HASH"},
        {"AttributeName": "first_seen", "KeyType": "RANGE"},
    ]
    assert index["Projection"] == {"ProjectionType": "ALL"}
    attribute_types = {a["AttributeName"]: a["AttributeType"] for a in properties["AttributeDefinitions"]}
    assert attribute_types == {"pk": "S", "open_category": "S", "first_seen": "S"}
    assert table["DeletionPolicy"] == "Retain"


def test_tables_have_pk_pitr_sse_on_demand_and_are_retained(synthesised):
    tables = synthesised.resources("AWS::DynamoDB::Table")
    assert tables
    for logical_id, table in tables.items():
        properties = table["Properties"]
        expected_keys = (
            [{"AttributeName": "key", "KeyType": "HASH"}, {"AttributeName": "event_id", "KeyType": "RANGE"}]
            if "WaitingRoom" in logical_id
            else [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
            if "Balances" in logical_id
            else [{"AttributeName": "pk", "KeyType": "HASH"}]
        )
        assert properties["KeySchema"] == expected_keys, logical_id
        assert properties["BillingMode"] == "PAY_PER_REQUEST"
        assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
        assert properties["SSESpecification"]["SSEEnabled"] is True
        assert table["DeletionPolicy"] == "Retain"


def test_buckets_are_encrypted_private_and_tls_only(synthesised):
    buckets = synthesised.resources("AWS::S3::Bucket")
    policies = synthesised.resources("AWS::S3::BucketPolicy").values()
    for logical_id, bucket in buckets.items():
        properties = bucket["Properties"]
        encryption = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        # S3-managed keys only where S3 requires them: a server access log destination cannot use SSE-KMS
        # (the customer managed keys of the others: tests/infra/test_data_protection.py).
        expected = "AES256" if logical_id.startswith("RawArchiveAccessLogs") else "aws:kms"
        assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == expected, logical_id
        assert properties["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        tls_denials = [
            statement
            for policy in policies
            if policy["Properties"]["Bucket"] == {"Ref": logical_id}
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
            if statement["Effect"] == "Deny"
            and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert tls_denials, f"{logical_id} accepts plain HTTP"


def test_raw_archive_is_versioned_and_access_logged(synthesised):
    archive = synthesised.resource(logical_id_of(synthesised, "AWS::S3::Bucket", "RawArchiveBucket"))
    assert archive["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    assert "DestinationBucketName" in archive["Properties"]["LoggingConfiguration"]


def test_posting_queue_redrives_to_the_exception_queue(synthesised):
    posting_queue = synthesised.resource(logical_id_of(synthesised, "AWS::SQS::Queue", "PostingPipelinePostingQueue"))[
        "Properties"
    ]
    exception_queue_id = logical_id_of(synthesised, "AWS::SQS::Queue", "PostingPipelineExceptionQueue")

    redrive = posting_queue["RedrivePolicy"]
    assert redrive["deadLetterTargetArn"] == {"Fn::GetAtt": [exception_queue_id, "Arn"]}
    assert redrive["maxReceiveCount"] >= 5
    assert posting_queue["VisibilityTimeout"] >= 6 * POSTING_FUNCTION_TIMEOUT_SECONDS
    exception_queue = synthesised.resource(exception_queue_id)["Properties"]
    assert exception_queue["MessageRetentionPeriod"] == FOURTEEN_DAYS_SECONDS


@pytest.mark.parametrize("stack_fixture", ["synthesised", "synthesised_with_partner_bus"])
def test_queues_are_encrypted_tls_only_and_retained(stack_fixture, request):
    synthesised = request.getfixturevalue(stack_fixture)
    policies = synthesised.resources("AWS::SQS::QueuePolicy").values()
    for logical_id, queue in synthesised.resources("AWS::SQS::Queue").items():
        properties = queue["Properties"]
        assert properties.get("SqsManagedSseEnabled") is True or "KmsMasterKeyId" in properties, logical_id
        assert queue["DeletionPolicy"] == "Retain", logical_id
        tls_denials = [
            statement
            for policy in policies
            if {"Ref": logical_id} in policy["Properties"]["Queues"]
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]
            if statement["Effect"] == "Deny"
            and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
        ]
        assert tls_denials, f"{logical_id} accepts plain HTTP"


@pytest.mark.parametrize("stack_fixture", ["synthesised", "synthesised_with_partner_bus"])
def test_every_exception_queue_keeps_messages_fourteen_days(stack_fixture, request):
    # GIVEN every queue the stack dead-letters or fails over to
    synthesised = request.getfixturevalue(stack_fixture)
    targets = exception_queue_ids(synthesised)

    # THEN each keeps what it holds for SQS's maximum and is retained with the stack
    assert targets
    for logical_id in targets:
        queue = synthesised.resource(logical_id)
        assert queue["Type"] == "AWS::SQS::Queue"
        assert queue["Properties"]["MessageRetentionPeriod"] == FOURTEEN_DAYS_SECONDS, logical_id
        assert queue["DeletionPolicy"] == "Retain", logical_id


def test_the_bus_rule_and_the_sweep_schedule_dead_letter_to_the_exception_queue(synthesised):
    # GIVEN the exception queue and the two rules of the posting stage
    exception_queue_arn = {
        "Fn::GetAtt": [logical_id_of(synthesised, "AWS::SQS::Queue", "PostingPipelineExceptionQueue"), "Arn"]
    }
    posting_queue_id = logical_id_of(synthesised, "AWS::SQS::Queue", "PostingPipelinePostingQueue")
    sweeper_id, _ = function_by_module(synthesised, "sweep_waiting_room")

    # THEN each target retries, then dead-letters what it cannot deliver
    for target_arn in ({"Fn::GetAtt": [posting_queue_id, "Arn"]}, {"Fn::GetAtt": [sweeper_id, "Arn"]}):
        synthesised.template.has_resource_properties(
            "AWS::Events::Rule",
            {
                "Targets": [
                    Match.object_like(
                        {
                            "Arn": target_arn,
                            "DeadLetterConfig": {"Arn": exception_queue_arn},
                            "RetryPolicy": {
                                "MaximumRetryAttempts": Match.any_value(),
                                "MaximumEventAgeInSeconds": Match.any_value(),
                            },
                        }
                    )
                ]
            },
        )


def test_partner_function_parks_failed_async_invocations_in_the_exception_store(synthesised_with_partner_bus):
    # GIVEN the partner normaliser, which EventBridge invokes asynchronously, and its on-failure function
    stack = synthesised_with_partner_bus
    normaliser_id, _ = function_by_module(stack, "stripe_partner_events")
    parker_id, parker = function_by_module(stack, "park_failed_delivery")
    exception_queue_id = logical_id_of(stack, "AWS::SQS::Queue", "PostingPipelineExceptionQueue")

    # THEN an invocation that still fails after Lambda's retries goes to the function that parks it
    stack.template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {
            "FunctionName": {"Ref": normaliser_id},
            "MaximumRetryAttempts": 2,
            "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [parker_id, "Arn"]}}},
        },
    )
    # AND if parking fails too, the failure record itself lands in the exception queue
    stack.template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {
            "FunctionName": {"Ref": parker_id},
            "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [exception_queue_id, "Arn"]}}},
        },
    )
    # AND the parker may only park: lineage, the exception queue and the store, nothing else
    assert "EXCEPTION_TABLE_NAME" in parker["Properties"]["Environment"]["Variables"]
    actions = allowed_actions(stack, "park_failed_delivery")
    assert {"sqs:SendMessage", "dynamodb:PutItem", "dynamodb:UpdateItem"} <= actions
    assert not any(action.startswith(("s3:", "events:")) for action in actions)
    assert "lambda:InvokeFunction" in allowed_actions(stack, "stripe_partner_events")


def test_posting_event_source_reports_partial_failures_and_caps_concurrency(synthesised):
    posting_id, _ = function_by_module(synthesised, "post_to_erp")
    posting_queue_id = logical_id_of(synthesised, "AWS::SQS::Queue", "PostingPipelinePostingQueue")

    synthesised.template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "FunctionName": {"Ref": posting_id},
            "EventSourceArn": {"Fn::GetAtt": [posting_queue_id, "Arn"]},
            "BatchSize": 10,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": 5},
        },
    )


def test_billing_bus_rule_sends_canonical_events_to_the_posting_queue(synthesised):
    bus_id = logical_id_of(synthesised, "AWS::Events::EventBus", "BillingBus")
    posting_queue_id = logical_id_of(synthesised, "AWS::SQS::Queue", "PostingPipelinePostingQueue")
    synthesised.template.has_resource_properties("AWS::Events::EventBus", {"Name": "billing-sync-dev"})

    synthesised.template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventBusName": {"Ref": bus_id},
            "EventPattern": {
                "source": ["billing-sync"],
                "detail-type": list(POSTED_EVENT_TYPES),
            },
            "Targets": [
                Match.object_like(
                    {
                        "Arn": {"Fn::GetAtt": [posting_queue_id, "Arn"]},
                        "DeadLetterConfig": {"Arn": Match.any_value()},
                    }
                )
            ],
        },
    )


def test_the_bus_rule_routes_exactly_the_types_the_posting_registry_handles(synthesised):
    # GIVEN the rule that feeds the posting queue
    [rule] = [
        rule
        for rule in synthesised.resources("AWS::Events::Rule").values()
        if "EventPattern" in rule["Properties"] and rule["Properties"]["EventPattern"].get("source") == ["billing-sync"]
    ]
    routed = set(rule["Properties"]["EventPattern"]["detail-type"])

    # THEN infra and the registry agree, and every type the Stripe normaliser produces is routed
    assert routed == {rule.event_type.value for rule in POSTING_RULES.values()}
    assert {"invoice.issued", "payment.settled", "credit_note.issued", "invoice.voided"} <= routed


def test_the_waiting_room_is_swept_on_a_schedule_by_its_own_function(synthesised):
    synthesised.template.has_resource_properties(
        "AWS::Events::Rule", {"ScheduleExpression": "rate(15 minutes)", "State": "ENABLED"}
    )
    sweeper = [
        f
        for f in synthesised.resources("AWS::Lambda::Function").values()
        if f["Properties"]["Handler"].endswith("sweep_waiting_room.lambda_handler")
    ]
    assert len(sweeper) == 1
    variables = sweeper[0]["Properties"]["Environment"]["Variables"]
    assert variables["WAIT_HORIZON_SECONDS"] == str(3 * 24 * 3600)
    assert variables["CATALOGUE_REQUIRED"] == "true"


def test_each_function_has_its_own_role(synthesised):
    roles = [role_logical_id(f) for f in synthesised.resources("AWS::Lambda::Function").values()]
    assert len(roles) == len(set(roles))
    for role_id in roles:
        assert "ManagedPolicyArns" not in synthesised.resource(role_id)["Properties"]


def test_webhook_role_is_least_privilege(synthesised):
    actions = allowed_actions(synthesised, "stripe_webhook")

    assert {
        "events:PutEvents",
        "secretsmanager:GetSecretValue",
        "s3:PutObject",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "sqs:SendMessage",
    } <= actions
    assert not {"s3:GetObject", "dynamodb:DeleteItem", "dynamodb:Scan", "sqs:ReceiveMessage"} & actions


def test_posting_role_cannot_publish_or_read_the_signing_secret(synthesised):
    actions = allowed_actions(synthesised, "post_to_erp")

    assert {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "sqs:SendMessage",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
    } <= actions
    assert "events:PutEvents" not in actions
    # It reads one secret, the Stripe API's restricted key (tests/infra/test_stripe_api_secret.py), not the
    # signing secret.
    assert {action for action in actions if action.startswith("secretsmanager:")} <= {
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
    }
    assert not any(action.startswith("s3:") for action in actions)


def test_webhook_route_is_a_lambda_proxy_with_access_logs_and_throttling(synthesised):
    webhook_id, _ = function_by_module(synthesised, "stripe_webhook")
    synthesised.template.has_resource_properties("AWS::ApiGateway::Resource", {"PathPart": "stripe"})
    synthesised.template.has_resource_properties(
        "AWS::ApiGateway::Method",
        {
            "HttpMethod": "POST",
            "RequestParameters": {"method.request.header.Stripe-Signature": True},
            "Integration": Match.object_like({"Type": "AWS_PROXY", "IntegrationHttpMethod": "POST"}),
        },
    )
    methods = synthesised.resources("AWS::ApiGateway::Method").values()
    assert any(webhook_id in json.dumps(m["Properties"]["Integration"]["Uri"]) for m in methods)
    synthesised.template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "AccessLogSetting": Match.object_like({"DestinationArn": Match.any_value()}),
            "MethodSettings": Match.array_with(
                [Match.object_like({"ThrottlingRateLimit": Match.any_value(), "LoggingLevel": "ERROR"})]
            ),
        },
    )


def test_signing_secret_is_a_json_list_placeholder(synthesised):
    synthesised.template.has_resource_properties(
        "AWS::SecretsManager::Secret",
        {
            "Name": "billing-sync/dev/stripe-webhook-signing-secrets",
            "SecretString": {"Fn::Sub": Match.string_like_regexp(r'^\["whsec_.*"\]$')},
        },
    )


def alarm_topic_id(synthesised: SynthesisedStack) -> str:
    return logical_id_of(synthesised, "AWS::SNS::Topic", "ObservabilityAlarmTopic")


@pytest.mark.parametrize("stack_fixture", ["synthesised", "synthesised_with_partner_bus"])
def test_every_alarm_notifies_the_alarm_topic(stack_fixture, request):
    # GIVEN every alarm of the stack
    synthesised = request.getfixturevalue(stack_fixture)
    topic = {"Ref": alarm_topic_id(synthesised)}

    # THEN each one notifies the one alarm topic
    assert alarms(synthesised)
    for alarm in alarms(synthesised):
        assert topic in alarm["AlarmActions"], alarm["AlarmDescription"]


def test_the_alarm_topic_is_encrypted_and_tls_only(synthesised):
    topic_id = alarm_topic_id(synthesised)
    topic = synthesised.resource(topic_id)["Properties"]
    key_id = topic["KmsMasterKeyId"]["Fn::GetAtt"][0]
    key = synthesised.resource(key_id)
    assert key["Properties"]["EnableKeyRotation"] is True
    # CloudWatch must be able to use the key, or alarm notifications are dropped silently.
    assert any(
        statement.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
        and {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(statement["Action"])
        for statement in key["Properties"]["KeyPolicy"]["Statement"]
    )
    statements = [
        statement
        for policy in synthesised.resources("AWS::SNS::TopicPolicy").values()
        if {"Ref": topic_id} in policy["Properties"]["Topics"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]
    assert any(
        s["Effect"] == "Deny" and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}} for s in statements
    )
    assert not synthesised.resources("AWS::SNS::Subscription")


def test_alarm_email_context_subscribes_the_address(synthesised_with_alarm_email):
    synthesised_with_alarm_email.template.has_resource_properties(
        "AWS::SNS::Subscription",
        {
            "Protocol": "email",
            "Endpoint": ALARM_EMAIL,
            "TopicArn": {"Ref": alarm_topic_id(synthesised_with_alarm_email)},
        },
    )


def test_alarms_watch_the_exception_queue_depth_and_age(synthesised):
    queue_name = {
        "Fn::GetAtt": [logical_id_of(synthesised, "AWS::SQS::Queue", "PostingPipelineExceptionQueue"), "QueueName"]
    }
    [depth] = alarms_on(synthesised, "ApproximateNumberOfMessagesVisible", {"QueueName": queue_name})
    assert depth["Threshold"] == 1
    assert depth["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    [age] = alarms_on(synthesised, "ApproximateAgeOfOldestMessage", {"QueueName": queue_name})
    assert age["Threshold"] == 4 * 24 * 3600
    assert age["Threshold"] < FOURTEEN_DAYS_SECONDS
    assert age["ComparisonOperator"] == "GreaterThanThreshold"


def test_posting_item_failures_alarm_watches_the_metric_powertools_emits(synthesised):
    # GIVEN the namespace and service the handlers' Powertools metrics are created with
    [alarm] = alarms_on(synthesised, "PostingItemFailures", {"service": metrics.service})

    # THEN the alarm reads the same namespace, summed
    assert alarm["Namespace"] == metrics.namespace == "BillingSync"
    assert alarm["Statistic"] == "Sum"
    assert alarm["Threshold"] >= 1


def test_alarms_watch_webhook_refusals_and_server_errors(synthesised):
    client_errors = [a for a in alarms(synthesised) if a.get("MetricName") == "4XXError"]
    server_errors = [a for a in alarms(synthesised) if a.get("MetricName") == "5XXError"]
    assert [a["Namespace"] for a in client_errors + server_errors] == ["AWS/ApiGateway"] * 2
    assert client_errors[0]["Statistic"] == "Sum" and client_errors[0]["Threshold"] >= 1
    assert server_errors[0]["Threshold"] == 1


@pytest.mark.parametrize("stack_fixture", ["synthesised", "synthesised_with_partner_bus"])
def test_every_function_has_error_and_throttle_alarms(stack_fixture, request):
    synthesised = request.getfixturevalue(stack_fixture)
    for logical_id in synthesised.resources("AWS::Lambda::Function"):
        for metric_name in ("Errors", "Throttles"):
            [alarm] = alarms_on(synthesised, metric_name, {"FunctionName": {"Ref": logical_id}})
            assert alarm["Namespace"] == "AWS/Lambda"
            assert alarm["Threshold"] == 1


@pytest.mark.parametrize("stack_fixture", ["synthesised", "synthesised_with_partner_bus"])
def test_every_rule_has_a_failed_invocations_alarm(stack_fixture, request):
    # GIVEN every rule of the stack (the partner rule only with its context)
    synthesised = request.getfixturevalue(stack_fixture)
    rules = synthesised.resources("AWS::Events::Rule")
    assert rules

    # THEN each rule's permanent delivery failures raise an alarm with the dimensions EventBridge uses
    for logical_id, rule in rules.items():
        bus = rule["Properties"].get("EventBusName")
        dimensions: dict[str, object] = (
            {"RuleName": {"Ref": logical_id}}
            if bus is None
            else {"EventBusName": bus, "RuleName": {"Fn::Select": [1, {"Fn::Split": ["|", {"Ref": logical_id}]}]}}
        )
        for metric_name in ("FailedInvocations", "InvocationsFailedToBeSentToDlq"):
            [alarm] = alarms_on(synthesised, metric_name, dimensions)
            assert alarm["Namespace"] == "AWS/Events", logical_id


def test_outputs_are_published(synthesised):
    outputs = synthesised.template.to_json()["Outputs"]
    assert {
        "WebhookUrl",
        "BillingBusName",
        "PostingQueueUrl",
        "ExceptionQueueUrl",
        "LineageTableName",
        "LedgerTableName",
        "MasterDataTableName",
        "ExceptionTableName",
        "AlarmTopicArn",
        "RawArchiveBucketName",
        "StripeWebhookSecretName",
        "RefundSagaArn",
    } <= set(outputs)
    assert json.dumps(outputs["WebhookUrl"]["Value"]).endswith('"/webhooks/stripe"]]}')


def test_lambda_asset_is_only_the_runtime_package(synthesised):
    asset_paths = {
        function["Metadata"]["aws:asset:path"] for function in synthesised.resources("AWS::Lambda::Function").values()
    }
    assert len(asset_paths) == 1
    staged = Path(synthesised.outdir, asset_paths.pop())
    top_level = {entry.name for entry in staged.iterdir()}

    assert "billing_sync" in top_level
    assert (staged / "billing_sync" / "handlers").is_dir()
    assert not top_level & {"tests", "infra", "app.py", "cdk.json", "pyproject.toml", ".venv", "node_modules"}
    assert not list(staged.rglob("__pycache__"))


def test_no_unsuppressed_nag_errors(synthesised):
    errors = synthesised.annotations.find_error("*", Match.string_like_regexp("AwsSolutions-.*"))
    assert errors == [], "\n".join(str(error.entry.data) for error in errors)


def test_no_unsuppressed_nag_warnings(synthesised):
    warnings = synthesised.annotations.find_warning("*", Match.string_like_regexp("AwsSolutions-.*"))
    assert warnings == [], "\n".join(str(warning.entry.data) for warning in warnings)


def test_partner_bus_is_absent_without_context(synthesised):
    rules = synthesised.resources("AWS::Events::Rule").values()
    assert all("aws.partner" not in json.dumps(rule["Properties"]) for rule in rules)
    handlers = {f["Properties"]["Handler"] for f in synthesised.resources("AWS::Lambda::Function").values()}
    assert "billing_sync.handlers.stripe_partner_events.lambda_handler" not in handlers


def test_partner_bus_rule_targets_the_normaliser_with_retries_and_dlq(synthesised_with_partner_bus):
    stack = synthesised_with_partner_bus
    normaliser_id, normaliser = function_by_module(stack, "stripe_partner_events")
    exception_queue_id = logical_id_of(stack, "AWS::SQS::Queue", "PostingPipelineExceptionQueue")

    stack.template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventBusName": PARTNER_BUS_NAME,
            "EventPattern": {"source": [{"prefix": "aws.partner/stripe.com"}]},
            "Targets": [
                Match.object_like(
                    {
                        "Arn": {"Fn::GetAtt": [normaliser_id, "Arn"]},
                        "DeadLetterConfig": {"Arn": {"Fn::GetAtt": [exception_queue_id, "Arn"]}},
                        "RetryPolicy": Match.object_like({"MaximumRetryAttempts": Match.any_value()}),
                    }
                )
            ],
        },
    )
    assert normaliser["Properties"]["Timeout"] == 10
    assert "STRIPE_WEBHOOK_SECRET_NAME" not in normaliser["Properties"]["Environment"]["Variables"]
    actions = allowed_actions(stack, "stripe_partner_events")
    assert "events:PutEvents" in actions
    assert not any(action.startswith("secretsmanager:") for action in actions)


@pytest.mark.parametrize("stack_fixture", ["synthesised_with_partner_bus", "synthesised_with_alarm_email"])
def test_optional_resources_pass_the_nag_gate(stack_fixture, request):
    annotations = request.getfixturevalue(stack_fixture).annotations
    assert annotations.find_error("*", Match.string_like_regexp("AwsSolutions-.*")) == []
    assert annotations.find_warning("*", Match.string_like_regexp("AwsSolutions-.*")) == []
