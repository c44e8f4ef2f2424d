"""Keys for queues and secrets, per-action table grants, and who may put onto the bus and the queues."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.infra.conftest import SynthesisedStack
from tests.infra.test_stack import function_by_module, logical_id_of, role_logical_id

pytestmark = pytest.mark.infra

BOTH_STACKS = ["synthesised", "synthesised_with_partner_bus"]
POSTING_MODULES = ("post_to_erp", "sweep_waiting_room", "refund_saga")
APPEND_ONLY_LEDGER_ACTIONS = {"dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query"}


def as_list(value: object) -> list:
    return value if isinstance(value, list) else [value]


def identity_statements(synthesised: SynthesisedStack, role_id: str) -> Iterator[dict]:
    """Every Allow a role has: its inline policies and its managed policies of this stack."""
    for policy in synthesised.resources("AWS::IAM::Policy").values():
        if {"Ref": role_id} in policy["Properties"]["Roles"]:
            yield from policy["Properties"]["PolicyDocument"]["Statement"]
    for arn in synthesised.resource(role_id)["Properties"].get("ManagedPolicyArns", []):
        if isinstance(arn, dict) and "Ref" in arn:
            yield from synthesised.resource(arn["Ref"])["Properties"]["PolicyDocument"]["Statement"]


def actions_on(synthesised: SynthesisedStack, role_id: str, resource_id: str) -> set[str]:
    """The actions a role is allowed on a resource (its ARN or anything under it, such as an index)."""
    actions: set[str] = set()
    for statement in identity_statements(synthesised, role_id):
        if statement["Effect"] == "Allow" and f'"{resource_id}"' in json.dumps(statement["Resource"]):
            actions.update(as_list(statement["Action"]))
    return actions


def roles_allowed(synthesised: SynthesisedStack, action: str, resource_id: str) -> set[str]:
    return {
        role_id
        for role_id in synthesised.resources("AWS::IAM::Role")
        if any(
            a == action or (a.endswith("*") and action.startswith(a[:-1]))
            for a in actions_on(synthesised, role_id, resource_id)
        )
    }


def arn_of(logical_id: str) -> dict:
    return {"Fn::GetAtt": [logical_id, "Arn"]}


def queue_id(synthesised: SynthesisedStack, name: str) -> str:
    return logical_id_of(synthesised, "AWS::SQS::Queue", f"PostingPipeline{name}")


def queue_statements(synthesised: SynthesisedStack, queue: str) -> list[dict]:
    return [
        statement
        for policy in synthesised.resources("AWS::SQS::QueuePolicy").values()
        if {"Ref": queue} in policy["Properties"]["Queues"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def send_denial(synthesised: SynthesisedStack, queue: str) -> dict:
    [denial] = [
        s for s in queue_statements(synthesised, queue) if s["Effect"] == "Deny" and s["Action"] == "sqs:SendMessage"
    ]
    return denial


def denied(statement: dict, *, principal_arn: dict | None = None, source_arn: dict | None = None) -> bool:
    """Evaluates the Deny's ArnNotEquals block for a request: a key the request lacks counts as not equal."""
    request = {"aws:PrincipalArn": principal_arn, "aws:SourceArn": source_arn}
    block = statement["Condition"]["ArnNotEquals"]
    assert set(statement["Condition"]) == {"ArnNotEquals"}
    return statement["Effect"] == "Deny" and all(request[key] not in as_list(values) for key, values in block.items())


def role_of(synthesised: SynthesisedStack, module: str) -> str:
    return role_logical_id(function_by_module(synthesised, module)[1])


def operator_role(synthesised: SynthesisedStack) -> str:
    return logical_id_of(synthesised, "AWS::IAM::Role", "OperatorAccessOperatorRole")


# ---- keys ----


def key_with_rotation(synthesised: SynthesisedStack, reference: dict) -> str:
    key_id = reference["Fn::GetAtt"][0]
    key = synthesised.resource(key_id)
    assert key["Type"] == "AWS::KMS::Key"
    assert key["Properties"]["EnableKeyRotation"] is True, key_id
    return key_id


@pytest.mark.parametrize("stack_fixture", BOTH_STACKS)
def test_every_queue_is_on_the_messaging_key_with_a_day_of_data_key_reuse(stack_fixture, request):
    synthesised = request.getfixturevalue(stack_fixture)
    for logical_id, queue in synthesised.resources("AWS::SQS::Queue").items():
        if not logical_id.startswith("PostingPipeline"):
            continue
        properties = queue["Properties"]
        assert "SqsManagedSseEnabled" not in properties, logical_id
        assert key_with_rotation(synthesised, properties["KmsMasterKeyId"]).startswith("KeysMessaging"), logical_id
        # One GenerateDataKey a day per sender, not one per message.
        assert properties["KmsDataKeyReusePeriodSeconds"] == 86400, logical_id


def test_every_queue_of_the_stack_is_on_a_customer_managed_key(synthesised):
    for logical_id, queue in synthesised.resources("AWS::SQS::Queue").items():
        assert key_with_rotation(synthesised, queue["Properties"]["KmsMasterKeyId"]), logical_id


def test_every_secret_is_on_the_data_key(synthesised):
    secrets = synthesised.resources("AWS::SecretsManager::Secret")
    assert len(secrets) >= 2
    for logical_id, secret in secrets.items():
        assert key_with_rotation(synthesised, secret["Properties"]["KmsKeyId"]).startswith("KeysData"), logical_id


def test_the_refund_saga_logs_on_the_logs_key(synthesised):
    log_group = logical_id_of(synthesised, "AWS::Logs::LogGroup", "RefundSagaRefundSagaLogGroup")
    key = key_with_rotation(synthesised, synthesised.resource(log_group)["Properties"]["KmsKeyId"])
    assert key.startswith("KeysLogs")


# ---- per-action table grants ----


@pytest.mark.parametrize("module", POSTING_MODULES)
def test_the_ledger_is_append_only_for_the_posting_roles(synthesised, module):
    ledger = logical_id_of(synthesised, "AWS::DynamoDB::Table", "StateTablesLedger")
    actions = actions_on(synthesised, role_of(synthesised, module), ledger)

    assert actions == APPEND_ONLY_LEDGER_ACTIONS
    assert not {"dynamodb:DeleteItem", "dynamodb:Scan", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"} & actions


@pytest.mark.parametrize("module", POSTING_MODULES)
def test_the_posting_roles_may_use_the_ledger_key(synthesised, module):
    # Table.grant does not include the table's key; a table under a customer managed key needs it.
    ledger = synthesised.resource(logical_id_of(synthesised, "AWS::DynamoDB::Table", "StateTablesLedger"))
    key_id = ledger["Properties"]["SSESpecification"]["KMSMasterKeyId"]["Fn::GetAtt"][0]
    assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= actions_on(synthesised, role_of(synthesised, module), key_id)


def test_only_the_sweep_lists_the_waiting_room(synthesised):
    room = logical_id_of(synthesised, "AWS::DynamoDB::Table", "StateTablesWaitingRoom")
    assert "dynamodb:Scan" in actions_on(synthesised, role_of(synthesised, "sweep_waiting_room"), room)
    for module in ("post_to_erp", "refund_saga"):
        assert "dynamodb:Scan" not in actions_on(synthesised, role_of(synthesised, module), room), module


@pytest.mark.parametrize("module", [*POSTING_MODULES, "stripe_webhook"])
def test_posting_and_ingest_roles_have_no_bulk_table_grants(synthesised, module):
    # What grant_read_write_data would add and none of them calls.
    bulk = {"dynamodb:*", "dynamodb:BatchWriteItem", "dynamodb:ConditionCheckItem", "dynamodb:DescribeTable"}
    for statement in identity_statements(synthesised, role_of(synthesised, module)):
        assert not bulk & set(as_list(statement["Action"])), statement


def test_parking_never_reads_or_closes_the_exception_store(synthesised):
    store = logical_id_of(synthesised, "AWS::DynamoDB::Table", "StateTablesExceptions")
    for module in (*POSTING_MODULES, "stripe_webhook"):
        assert actions_on(synthesised, role_of(synthesised, module), store) == {"dynamodb:PutItem"}, module


# ---- who may put onto the queues and the bus ----


def test_the_posting_queue_accepts_only_the_posting_rule_and_the_requeuing_roles(synthesised):
    queue = queue_id(synthesised, "PostingQueue")
    rule = logical_id_of(synthesised, "AWS::Events::Rule", "PostingPipelineCanonicalEventsToPosting")
    denial = send_denial(synthesised, queue)
    admitted = [role_of(synthesised, m) for m in POSTING_MODULES] + [operator_role(synthesised)]

    assert denial["Principal"] == "*"
    for role in admitted:
        assert not denied(denial, principal_arn=arn_of(role)), role
    assert not denied(denial, source_arn=arn_of(rule))
    # Anyone else: another role of the account, the webhook's, or another rule's delivery.
    assert denied(denial, principal_arn={"Fn::GetAtt": ["SomeOtherRole", "Arn"]})
    assert denied(denial, principal_arn=arn_of(role_of(synthesised, "stripe_webhook")))
    sweep_rule = logical_id_of(synthesised, "AWS::Events::Rule", "PostingPipelineSweepWaitingRoomSchedule")
    assert denied(denial, source_arn=arn_of(sweep_rule))


@pytest.mark.parametrize("stack_fixture", BOTH_STACKS)
def test_every_role_granted_a_send_is_admitted_by_the_queue_policy(stack_fixture, request):
    # A new sender must be admitted explicitly, or its sends would be denied in the account.
    synthesised = request.getfixturevalue(stack_fixture)
    for name in ("PostingQueue", "ExceptionQueue"):
        queue = queue_id(synthesised, name)
        denial = send_denial(synthesised, queue)
        granted = roles_allowed(synthesised, "sqs:SendMessage", queue)
        assert granted, name
        for role in granted:
            assert not denied(denial, principal_arn=arn_of(role)), (name, role)
        admitted = {arn["Fn::GetAtt"][0] for arn in denial["Condition"]["ArnNotEquals"]["aws:PrincipalArn"]}
        assert admitted == granted, name


@pytest.mark.parametrize("stack_fixture", BOTH_STACKS)
def test_the_exception_queue_accepts_every_rule_that_dead_letters_to_it_and_no_other(stack_fixture, request):
    synthesised = request.getfixturevalue(stack_fixture)
    queue = queue_id(synthesised, "ExceptionQueue")
    denial = send_denial(synthesised, queue)
    dead_lettering = {
        logical_id
        for logical_id, rule in synthesised.resources("AWS::Events::Rule").items()
        if any(t.get("DeadLetterConfig", {}).get("Arn") == arn_of(queue) for t in rule["Properties"]["Targets"])
    }
    assert dead_lettering
    for rule in dead_lettering:
        assert not denied(denial, source_arn=arn_of(rule)), rule
    admitted_rules = {arn["Fn::GetAtt"][0] for arn in as_list(denial["Condition"]["ArnNotEquals"]["aws:SourceArn"])}
    assert admitted_rules == dead_lettering
    assert denied(denial, source_arn={"Fn::GetAtt": ["SomeOtherRule", "Arn"]})


def test_the_schedules_that_dead_letter_may_use_the_queue_key(synthesised):
    queue = queue_id(synthesised, "ExceptionQueue")
    key_id = synthesised.resource(queue)["Properties"]["KmsMasterKeyId"]["Fn::GetAtt"][0]
    schedule_roles = {role for role in roles_allowed(synthesised, "sqs:SendMessage", queue) if "ScheduleRole" in role}
    assert len(schedule_roles) == 3
    for role in schedule_roles:
        assert {"kms:GenerateDataKey", "kms:Decrypt"} <= actions_on(synthesised, role, key_id), role


@pytest.mark.parametrize("stack_fixture", BOTH_STACKS)
def test_only_the_ingest_roles_and_operators_may_put_events_on_the_billing_bus(stack_fixture, request):
    synthesised = request.getfixturevalue(stack_fixture)
    bus = logical_id_of(synthesised, "AWS::Events::EventBus", "BillingBus")
    [policy] = synthesised.resources("AWS::Events::EventBusPolicy").values()
    statement = policy["Properties"]["Statement"]
    assert policy["Properties"]["EventBusName"] == {"Ref": bus}
    assert statement["Principal"] == "*" and statement["Action"] == "events:PutEvents"

    publishers = roles_allowed(synthesised, "events:PutEvents", bus)
    expected = {role_of(synthesised, "stripe_webhook"), operator_role(synthesised)}
    if stack_fixture == "synthesised_with_partner_bus":
        expected.add(role_of(synthesised, "stripe_partner_events"))
    assert publishers == expected
    for role in publishers:
        assert not denied(statement, principal_arn=arn_of(role)), role
    for module in POSTING_MODULES:
        assert denied(statement, principal_arn=arn_of(role_of(synthesised, module))), module
    # A service or a rule on another bus has no role ARN: denied too.
    assert denied(statement, source_arn={"Fn::GetAtt": ["SomeRule", "Arn"]})


# ---- the operators' policy ----


def operator_policy(synthesised: SynthesisedStack) -> tuple[str, list[dict]]:
    policy_id = logical_id_of(synthesised, "AWS::IAM::ManagedPolicy", "OperatorAccessOperatorPolicy")
    return policy_id, synthesised.resource(policy_id)["Properties"]["PolicyDocument"]["Statement"]


def test_the_operator_policy_is_an_output_and_the_operator_role_has_only_it(synthesised):
    policy_id, _ = operator_policy(synthesised)
    outputs = synthesised.template.to_json()["Outputs"]
    assert outputs["OperatorPolicyArn"]["Value"] == {"Ref": policy_id}
    role = synthesised.resource(operator_role(synthesised))["Properties"]
    assert outputs["OperatorRoleArn"]["Value"] == arn_of(operator_role(synthesised))
    assert role["ManagedPolicyArns"] == [{"Ref": policy_id}]
    assert not any(
        {"Ref": operator_role(synthesised)} in p["Properties"]["Roles"]
        for p in synthesised.resources("AWS::IAM::Policy").values()
    )
    [trust] = role["AssumeRolePolicyDocument"]["Statement"]
    assert "arn:" in json.dumps(trust["Principal"]["AWS"]) and ":root" in json.dumps(trust["Principal"]["AWS"])


def test_the_operator_policy_is_exactly_what_the_cli_calls(synthesised):
    _, statements = operator_policy(synthesised)
    actions = {action for statement in statements for action in as_list(statement["Action"])}
    assert actions == {
        "cloudformation:DescribeStacks",
        "cloudformation:DescribeStackResources",
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:Query",
        "dynamodb:Scan",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:ChangeMessageVisibility",
        "sqs:GetQueueAttributes",
        "sqs:SendMessage",
        "events:PutEvents",
        "s3:ListBucket",
        "s3:GetObject",
        "s3:GetObjectVersion",
        "secretsmanager:GetSecretValue",
        "kms:Decrypt",
        "kms:Encrypt",
        "kms:GenerateDataKey",
        "kms:DescribeKey",
    }
    for statement in statements:
        assert statement["Effect"] == "Allow"
        assert "*" not in as_list(statement["Resource"]), statement


def test_operators_append_to_the_ledger_but_never_delete_or_rewrite_it(synthesised):
    ledger = logical_id_of(synthesised, "AWS::DynamoDB::Table", "StateTablesLedger")
    actions = actions_on(synthesised, operator_role(synthesised), ledger)
    assert "dynamodb:PutItem" in actions
    assert not {"dynamodb:DeleteItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"} & actions
    # Deleting is what releasing the waiting room does, on that table only.
    room = logical_id_of(synthesised, "AWS::DynamoDB::Table", "StateTablesWaitingRoom")
    assert "dynamodb:DeleteItem" in actions_on(synthesised, operator_role(synthesised), room)


def test_operators_cannot_read_the_webhook_signing_secret(synthesised):
    _, statements = operator_policy(synthesised)
    signing = logical_id_of(synthesised, "AWS::SecretsManager::Secret", "IngestApiStripeWebhookSigningSecrets")
    assert signing not in json.dumps(statements)


def test_operators_use_the_keys_only_through_the_services_holding_the_data(synthesised):
    _, statements = operator_policy(synthesised)
    [key_statement] = [s for s in statements if any(a.startswith("kms:") for a in as_list(s["Action"]))]
    services = json.dumps(key_statement["Condition"]["StringEquals"]["kms:ViaService"])
    assert len(key_statement["Condition"]["StringEquals"]["kms:ViaService"]) == 4
    for service in ("dynamodb", "sqs", "s3", "secretsmanager"):
        assert f'"{service}.' in services, service
