"""Keys and audit: what holds billing data is encrypted with this stack's rotated keys, and what is evidence is
kept (object lock, versions, backups, deletion protection)."""

from __future__ import annotations

import aws_cdk as cdk
import pytest

from infra.config import DEFAULT_ARCHIVE_RETENTION_DAYS, BillingSyncConfig
from tests.infra.conftest import SynthesisedStack, synthesise

pytestmark = pytest.mark.infra

SHORT_RETENTION_DAYS = 400


@pytest.fixture(scope="module")
def synthesised_with_short_retention(tmp_path_factory: pytest.TempPathFactory) -> SynthesisedStack:
    return synthesise(tmp_path_factory.mktemp("cdk-out-retention"), {"archiveRetentionDays": SHORT_RETENTION_DAYS})


def resources(synthesised: SynthesisedStack) -> dict[str, dict]:
    return synthesised.template.to_json()["Resources"]


def customer_managed_key(synthesised: SynthesisedStack, reference: object) -> str:
    """The logical id of the rotated KMS key of this stack that `reference` (Ref or GetAtt Arn) points at."""
    assert isinstance(reference, dict), f"not a reference to a key of this stack: {reference!r}"
    logical_id = reference["Ref"] if "Ref" in reference else reference["Fn::GetAtt"][0]
    key = resources(synthesised)[logical_id]
    assert key["Type"] == "AWS::KMS::Key", logical_id
    assert key["Properties"]["EnableKeyRotation"] is True, logical_id
    return str(logical_id)


def key_named(synthesised: SynthesisedStack, prefix: str) -> str:
    [logical_id] = [key for key in synthesised.resources("AWS::KMS::Key") if key.startswith(prefix)]
    return logical_id


def access_logs_bucket_ids(synthesised: SynthesisedStack) -> set[str]:
    return {
        bucket["Properties"]["LoggingConfiguration"]["DestinationBucketName"]["Ref"]
        for bucket in synthesised.resources("AWS::S3::Bucket").values()
        if "LoggingConfiguration" in bucket["Properties"]
    }


def bucket_id(synthesised: SynthesisedStack, prefix: str) -> str:
    [logical_id] = [bucket for bucket in synthesised.resources("AWS::S3::Bucket") if bucket.startswith(prefix)]
    return logical_id


def test_the_keys_rotate_and_outlive_the_stack(synthesised):
    # GIVEN the synthesised stack
    keys = synthesised.resources("AWS::KMS::Key")

    # THEN every key rotates yearly and is kept when the stack goes (encrypted data would be lost without it)
    assert keys
    for logical_id, key in keys.items():
        assert key["Properties"]["EnableKeyRotation"] is True, logical_id
        assert key["DeletionPolicy"] == "Retain", logical_id
        assert key["UpdateReplacePolicy"] == "Retain", logical_id


def test_every_table_is_on_the_data_key_and_protected_from_deletion(synthesised):
    # GIVEN the synthesised stack
    data_key = key_named(synthesised, "KeysData")
    tables = synthesised.resources("AWS::DynamoDB::Table")

    # THEN every table is encrypted with the rotated data key and cannot be deleted by a stray update
    assert tables
    for logical_id, table in tables.items():
        properties = table["Properties"]
        assert properties["SSESpecification"]["SSEEnabled"] is True, logical_id
        assert properties["SSESpecification"]["SSEType"] == "KMS", logical_id
        assert customer_managed_key(synthesised, properties["SSESpecification"]["KMSMasterKeyId"]) == data_key
        assert properties["DeletionProtectionEnabled"] is True, logical_id
        assert table["DeletionPolicy"] == "Retain", logical_id


@pytest.mark.parametrize("stack_fixture", ["synthesised", "synthesised_with_partner_bus"])
def test_every_function_using_a_table_may_use_its_key(stack_fixture, request):
    # GIVEN each role's DynamoDB table actions and KMS actions
    synthesised = request.getfixturevalue(stack_fixture)
    template = resources(synthesised)
    tables = synthesised.resources("AWS::DynamoDB::Table")
    for policy_id, policy in synthesised.resources("AWS::IAM::Policy").items():
        tables_used: set[str] = set()
        key_actions: dict[str, set[str]] = {}
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            targets = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            for target in targets:
                if isinstance(target, dict) and "Fn::GetAtt" in target:
                    logical_id = target["Fn::GetAtt"][0]
                    if logical_id in tables and any(action.startswith("dynamodb:") for action in actions):
                        tables_used.add(logical_id)
                    if template[logical_id]["Type"] == "AWS::KMS::Key":
                        key_actions.setdefault(logical_id, set()).update(actions)

        # THEN whoever reads or writes a table may decrypt with that table's key (DynamoDB checks the caller)
        for table_id in tables_used:
            key_id = tables[table_id]["Properties"]["SSESpecification"]["KMSMasterKeyId"]["Fn::GetAtt"][0]
            assert "kms:Decrypt" in key_actions.get(key_id, set()), f"{policy_id} uses {table_id} without its key"


def test_every_bucket_but_the_access_logs_is_on_the_data_key_with_a_bucket_key(synthesised):
    # GIVEN the synthesised stack
    data_key = key_named(synthesised, "KeysData")
    access_logs = access_logs_bucket_ids(synthesised)
    buckets = synthesised.resources("AWS::S3::Bucket")

    # THEN the archive and the reports use the data key, through an S3 bucket key (no KMS call per object)
    assert set(buckets) - access_logs
    for logical_id, bucket in buckets.items():
        [rule] = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        if logical_id in access_logs:
            # S3 server access logging delivers only to an SSE-S3 destination.
            assert rule["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}, logical_id
            continue
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms", logical_id
        assert customer_managed_key(synthesised, rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"]) == data_key
        assert rule["BucketKeyEnabled"] is True, logical_id


def test_athena_writes_its_results_with_the_data_key(synthesised):
    data_key = key_named(synthesised, "KeysData")
    for logical_id, work_group in synthesised.resources("AWS::Athena::WorkGroup").items():
        configuration = work_group["Properties"]["WorkGroupConfiguration"]
        encryption = configuration["ResultConfiguration"]["EncryptionConfiguration"]
        assert configuration["EnforceWorkGroupConfiguration"] is True, logical_id
        assert encryption["EncryptionOption"] == "SSE_KMS", logical_id
        assert customer_managed_key(synthesised, encryption["KmsKey"]) == data_key


def test_every_topic_is_on_the_messaging_key(synthesised):
    # GIVEN the synthesised stack
    messaging_key = key_named(synthesised, "KeysMessaging")
    topics = synthesised.resources("AWS::SNS::Topic")

    # THEN every topic uses the messaging key, whose policy lets CloudWatch alarms publish to it
    assert topics
    for logical_id, topic in topics.items():
        assert customer_managed_key(synthesised, topic["Properties"]["KmsMasterKeyId"]) == messaging_key, logical_id
    statements = resources(synthesised)[messaging_key]["Properties"]["KeyPolicy"]["Statement"]
    services = {statement["Principal"].get("Service") for statement in statements if "Principal" in statement}
    assert {"cloudwatch.amazonaws.com", "events.amazonaws.com"} <= services


def test_every_function_log_group_is_on_the_logs_key(synthesised):
    # GIVEN the log group of every function
    logs_key = key_named(synthesised, "KeysLogs")
    log_groups = synthesised.resources("AWS::Logs::LogGroup")

    # THEN each is encrypted with the logs key
    for logical_id, function in synthesised.resources("AWS::Lambda::Function").items():
        log_group = log_groups[function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]]
        assert customer_managed_key(synthesised, log_group["Properties"].get("KmsKeyId")) == logs_key, logical_id


def test_every_log_group_is_on_the_logs_key(synthesised):
    # GIVEN every log group (functions, the webhook API's access log, the refund saga's executions)
    logs_key = key_named(synthesised, "KeysLogs")
    log_groups = synthesised.resources("AWS::Logs::LogGroup")

    # THEN each is encrypted with the logs key
    assert log_groups
    for logical_id, log_group in log_groups.items():
        assert customer_managed_key(synthesised, log_group["Properties"].get("KmsKeyId")) == logs_key, logical_id


@pytest.mark.parametrize("stack_fixture", ["synthesised", "synthesised_with_partner_bus"])
def test_every_queue_is_on_the_messaging_key(stack_fixture, request):
    synthesised = request.getfixturevalue(stack_fixture)
    messaging_key = key_named(synthesised, "KeysMessaging")
    queues = synthesised.resources("AWS::SQS::Queue")
    assert queues
    for logical_id, queue in queues.items():
        key = queue["Properties"].get("KmsMasterKeyId")
        assert customer_managed_key(synthesised, key) == messaging_key, logical_id


def test_every_secret_is_on_the_data_key(synthesised):
    data_key = key_named(synthesised, "KeysData")
    secrets = synthesised.resources("AWS::SecretsManager::Secret")
    assert secrets
    for logical_id, secret in secrets.items():
        assert customer_managed_key(synthesised, secret["Properties"].get("KmsKeyId")) == data_key, logical_id


def archive(synthesised: SynthesisedStack) -> dict:
    return synthesised.resource(bucket_id(synthesised, "RawArchiveBucket"))["Properties"]


def noncurrent_expiration_days(properties: dict) -> set[int]:
    return {
        rule["NoncurrentVersionExpiration"]["NoncurrentDays"]
        for rule in properties["LifecycleConfiguration"]["Rules"]
        if rule["Status"] == "Enabled" and "NoncurrentVersionExpiration" in rule
    }


def test_the_raw_archive_locks_every_version_for_seven_years_in_governance_mode(synthesised):
    # GIVEN the raw archive without an archiveRetentionDays context
    properties = archive(synthesised)

    # THEN every version (a resend with another body is a new one) is locked for the default retention
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    assert properties["ObjectLockEnabled"] is True
    assert properties["ObjectLockConfiguration"] == {
        "ObjectLockEnabled": "Enabled",
        "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": DEFAULT_ARCHIVE_RETENTION_DAYS}},
    }
    assert DEFAULT_ARCHIVE_RETENTION_DAYS == 2557


def test_the_raw_archive_moves_and_then_expires_superseded_versions(synthesised):
    # GIVEN the raw archive's lifecycle
    properties = archive(synthesised)
    rules = [rule for rule in properties["LifecycleConfiguration"]["Rules"] if rule["Status"] == "Enabled"]

    # THEN superseded bodies move to colder storage and expire once their lock has run out, never before
    transitions = [transition for rule in rules for transition in rule.get("NoncurrentVersionTransitions", [])]
    assert {transition["StorageClass"] for transition in transitions} == {"GLACIER_IR", "GLACIER"}
    assert noncurrent_expiration_days(properties) == {DEFAULT_ARCHIVE_RETENTION_DAYS}
    # current versions (the body each event was accepted with) never expire
    assert not any("ExpirationInDays" in rule or "ExpirationDate" in rule for rule in rules)


def test_the_archive_retention_comes_from_context(synthesised_with_short_retention):
    # GIVEN a stack synthesised with archiveRetentionDays
    properties = archive(synthesised_with_short_retention)

    # THEN the lock and the expiry of superseded versions follow it
    assert properties["ObjectLockConfiguration"]["Rule"]["DefaultRetention"] == {
        "Mode": "GOVERNANCE",
        "Days": SHORT_RETENTION_DAYS,
    }
    assert noncurrent_expiration_days(properties) == {SHORT_RETENTION_DAYS}


@pytest.mark.parametrize("value", ["0", "-1", "36501"])
def test_an_archive_retention_out_of_range_is_refused(value):
    with pytest.raises(ValueError, match="archiveRetentionDays"):
        BillingSyncConfig.from_context(cdk.App(context={"archiveRetentionDays": value}).node)


def test_the_archive_retention_defaults_to_seven_years():
    assert BillingSyncConfig.from_context(cdk.App().node).archive_retention_days == DEFAULT_ARCHIVE_RETENTION_DAYS
    shorter = BillingSyncConfig.from_context(cdk.App(context={"archiveRetentionDays": "90"}).node)
    assert shorter.archive_retention_days == 90


def test_the_backup_plan_selects_every_table_into_a_locked_down_vault(synthesised):
    # GIVEN the backup vault, plan and selection
    data_key = key_named(synthesised, "KeysData")
    [(vault_id, vault)] = synthesised.resources("AWS::Backup::BackupVault").items()
    [(plan_id, plan)] = synthesised.resources("AWS::Backup::BackupPlan").items()
    selections = list(synthesised.resources("AWS::Backup::BackupSelection").values())

    # THEN every table is selected by the plan
    selected = {
        resource["Fn::GetAtt"][0]
        for selection in selections
        if selection["Properties"]["BackupPlanId"] == {"Fn::GetAtt": [plan_id, "BackupPlanId"]}
        for resource in selection["Properties"]["BackupSelection"]["Resources"]
    }
    assert selected == set(synthesised.resources("AWS::DynamoDB::Table"))
    # AND the plan keeps daily copies 35 days and monthly ones a year, in the vault
    rules = {rule["RuleName"]: rule for rule in plan["Properties"]["BackupPlan"]["BackupPlanRule"]}
    assert rules["Daily"]["Lifecycle"] == {"DeleteAfterDays": 35}
    assert rules["Monthly"]["Lifecycle"] == {"DeleteAfterDays": 365}
    for rule in rules.values():
        assert rule["TargetBackupVault"] == {"Fn::GetAtt": [vault_id, "BackupVaultName"]}
    # AND the vault is on the data key, outlives the stack and refuses to delete recovery points early
    assert customer_managed_key(synthesised, vault["Properties"]["EncryptionKeyArn"]) == data_key
    assert vault["DeletionPolicy"] == "Retain"
    denials = [
        statement
        for statement in vault["Properties"]["AccessPolicy"]["Statement"]
        if statement["Effect"] == "Deny" and statement["Principal"] == {"AWS": "*"}
    ]
    assert any("backup:DeleteRecoveryPoint" in statement["Action"] for statement in denials)
