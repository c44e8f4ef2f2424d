"""Reconciliation in AWS: the bucket, Glue tables, Athena workgroup, the scheduled function, its grants and its
DuckDB layer built without Docker."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match

from billing_sync.reconciliation.extracts import TABLES, glue_columns
from infra import BillingSyncConfig
from infra.config import DEFAULT_RECONCILIATION_SCHEDULE
from infra.constructs import reconciliation as construct
from tests.infra.conftest import SynthesisedStack, synthesise
from tests.infra.test_refund_saga import as_list, statements_of_role
from tests.infra.test_stack import function_by_module, logical_id_of, role_logical_id

pytestmark = pytest.mark.infra

MODULE = "reconcile"


def bucket_id(synthesised: SynthesisedStack) -> str:
    return logical_id_of(synthesised, "AWS::S3::Bucket", "ReconciliationBucket")


def glue_tables(synthesised: SynthesisedStack) -> dict[str, dict[str, Any]]:
    return {
        table["Properties"]["TableInput"]["Name"]: table["Properties"]
        for table in synthesised.resources("AWS::Glue::Table").values()
    }


def test_the_bucket_is_encrypted_versioned_tls_only_access_logged_and_retained(synthesised):
    # GIVEN the reconciliation bucket and its policy
    logical_id = bucket_id(synthesised)
    bucket = synthesised.resource(logical_id)
    properties = bucket["Properties"]
    [policy] = [
        p["Properties"]["PolicyDocument"]
        for p in synthesised.resources("AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": logical_id}
    ]

    # THEN objects are encrypted at rest, versioned, logged, kept on stack deletion and refused without TLS
    [rule] = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert properties["VersioningConfiguration"] == {"Status": "Enabled"}
    assert properties["LoggingConfiguration"]["LogFilePrefix"] == "reconciliation/"
    assert all(properties["PublicAccessBlockConfiguration"].values())
    assert bucket["DeletionPolicy"] == "Retain"
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in policy["Statement"]
    )


def test_one_glue_table_per_extract_table_with_its_columns_parquet_and_projected_partitions(synthesised):
    # GIVEN the Glue tables the stack defines
    tables = glue_tables(synthesised)
    [database] = synthesised.resources("AWS::Glue::Database").values()
    database_name = database["Properties"]["DatabaseInput"]["Name"]

    # THEN every extract table has one, with the extract contract's columns and partition keys
    assert set(tables) == set(TABLES)
    for name, properties in tables.items():
        data, partitions = glue_columns(name)
        table_input = properties["TableInput"]
        storage = table_input["StorageDescriptor"]
        assert properties["DatabaseName"] == database_name
        assert [(c["Name"], c["Type"]) for c in storage["Columns"]] == data, name
        assert (
            [(c["Name"], c["Type"]) for c in table_input["PartitionKeys"]]
            == partitions
            == [
                ("legal_entity", "string"),
                ("period", "string"),
            ]
        )
        assert storage["SerdeInfo"]["SerializationLibrary"].endswith("ParquetHiveSerDe")
        assert storage["InputFormat"].endswith("MapredParquetInputFormat")
        # AND partitions are projected (no crawler, no MSCK REPAIR) onto the extract writer's hive layout
        parameters = table_input["Parameters"]
        assert parameters["projection.enabled"] == "true"
        assert set(parameters["projection.legal_entity.values"].split(",")) == {"US01", "JP01", "KW01"}
        assert (parameters["projection.period.type"], parameters["projection.period.format"]) == ("date", "yyyy-MM")
        location = json.dumps(storage["Location"])
        assert f"/reconciliation/extracts/{name}/" in location
        assert {"Ref": bucket_id(synthesised)} in storage["Location"]["Fn::Join"][1]
        template = json.dumps(parameters["storage.location.template"])
        assert f"/reconciliation/extracts/{name}/legal_entity=${{legal_entity}}/period=${{period}}/" in template


def test_the_athena_workgroup_enforces_encrypted_results_under_the_bucket(synthesised):
    # GIVEN the workgroup
    [work_group] = synthesised.resources("AWS::Athena::WorkGroup").values()
    configuration = work_group["Properties"]["WorkGroupConfiguration"]

    # THEN clients cannot override its settings, and results are encrypted under the reconciliation bucket
    assert configuration["EnforceWorkGroupConfiguration"] is True
    result = configuration["ResultConfiguration"]
    assert result["EncryptionConfiguration"]["EncryptionOption"] in ("SSE_S3", "SSE_KMS", "CSE_KMS")
    assert {"Ref": bucket_id(synthesised)} in result["OutputLocation"]["Fn::Join"][1]
    assert "/reconciliation/athena-results/" in json.dumps(result["OutputLocation"])
    assert configuration["BytesScannedCutoffPerQuery"] > 0


def test_a_monthly_schedule_invokes_the_reconcile_function_and_dead_letters(synthesised):
    # GIVEN the schedule that targets the reconcile function
    function_id, _ = function_by_module(synthesised, MODULE)
    [schedule] = [
        s["Properties"]
        for s in synthesised.resources("AWS::Scheduler::Schedule").values()
        if s["Properties"]["Target"]["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}
    ]

    # THEN it runs monthly at the configured time, in UTC, with retries and the exception queue as DLQ
    assert schedule["ScheduleExpression"] == DEFAULT_RECONCILIATION_SCHEDULE == "cron(0 6 2 * ? *)"
    assert schedule["ScheduleExpressionTimezone"] == "Etc/UTC"
    target = schedule["Target"]
    assert target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0].startswith("PostingPipelineExceptionQueue")
    assert json.loads(target["Input"]).keys() == {"schedule_arn", "scheduled_time"}


def test_the_schedule_comes_from_context():
    # GIVEN a reconciliationSchedule in context
    app = cdk.App(context={"reconciliationSchedule": "cron(0 4 3 * ? *)", "legalEntities": "US01,DE01"})

    # WHEN the configuration is read
    config = BillingSyncConfig.from_context(app.node)

    # THEN the schedule and the projected entities are the given ones, and a malformed expression is refused
    assert config.reconciliation_schedule == "cron(0 4 3 * ? *)"
    assert config.legal_entities == ("US01", "DE01")
    with pytest.raises(ValueError, match="reconciliationSchedule"):
        BillingSyncConfig.from_context(cdk.App(context={"reconciliationSchedule": "monthly"}).node)


def test_the_reconcile_function_runs_with_the_engine_layer_and_room_for_duckdb(synthesised):
    # GIVEN the function and the layer
    _, function = function_by_module(synthesised, MODULE)
    [(layer_id, layer)] = synthesised.resources("AWS::Lambda::LayerVersion").items()
    properties = function["Properties"]

    # THEN it runs on arm64 Python 3.13 with the engine layer next to Powertools, and with more memory
    assert {"Ref": layer_id} in properties["Layers"]
    assert layer["Properties"]["CompatibleArchitectures"] == ["arm64"]
    assert layer["Properties"]["CompatibleRuntimes"] == ["python3.13"]
    assert properties["MemorySize"] >= 2048
    assert properties["Timeout"] == 900
    environment = properties["Environment"]["Variables"]
    assert environment["RECONCILIATION_BUCKET"] == {"Ref": bucket_id(synthesised)}
    assert {"LEDGER_TABLE_NAME", "LINEAGE_TABLE_NAME", "STRIPE_API_KEY_SECRET_ARN"} <= set(environment)
    # AND the staged layer holds the wheels for Lambda's platform
    staged = Path(synthesised.outdir, layer["Metadata"]["aws:asset:path"], "python")
    assert (staged / "duckdb").is_dir() and (staged / "sqlglot").is_dir()
    assert any(path.name.endswith("aarch64-linux-gnu.so") for path in (staged / "duckdb").glob("*.so"))


def test_the_reconcile_role_reads_the_books_writes_only_its_prefix_and_reads_the_stripe_key(synthesised):
    # GIVEN the statements of the function's role
    _, function = function_by_module(synthesised, MODULE)
    statements = statements_of_role(synthesised, role_logical_id(function))
    actions = {action for s in statements for action in as_list(s["Action"])}
    ledger = logical_id_of(synthesised, "AWS::DynamoDB::Table", "StateTablesLedger")
    lineage = logical_id_of(synthesised, "AWS::DynamoDB::Table", "StateTablesLineage")

    # THEN DynamoDB access is read-only, on the ledger and lineage tables only
    dynamo = [s for s in statements if any(a.startswith("dynamodb:") for a in as_list(s["Action"]))]
    assert dynamo
    assert not {a for s in dynamo for a in as_list(s["Action"])} & {
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:BatchWriteItem",
    }
    tables = {json.dumps(r)[:200] for s in dynamo for r in as_list(s["Resource"]) if "Fn::GetAtt" in json.dumps(r)}
    assert all(ledger in t or lineage in t for t in tables), tables
    # AND S3 writes only under reconciliation/ of its own bucket, and reads of the raw archive only besides
    s3_writes = [s for s in statements if {"s3:PutObject", "s3:DeleteObject*"} & set(as_list(s["Action"]))]
    write_objects = [r for s in s3_writes for r in as_list(s["Resource"]) if "Fn::Join" in r]
    assert write_objects and all(r["Fn::Join"][1][-1] == "/reconciliation/*" for r in write_objects)
    assert all(bucket_id(synthesised) in json.dumps(r) for r in write_objects)
    raw_archive = logical_id_of(synthesised, "AWS::S3::Bucket", "RawArchiveBucket")
    raw_reads = [s for s in statements if raw_archive in json.dumps(s["Resource"])]
    assert raw_reads
    assert all(
        a.startswith(("s3:GetObject", "s3:GetBucket", "s3:List")) for s in raw_reads for a in as_list(s["Action"])
    )
    # AND the Stripe key can be read, no other secret, and nothing of Athena, Glue or the posting path
    secret_statements = [s for s in statements if "secretsmanager:GetSecretValue" in as_list(s["Action"])]
    assert [s["Resource"] for s in secret_statements] == [
        {"Ref": logical_id_of(synthesised, "AWS::SecretsManager::Secret", "PostingPipelineStripeApiRestrictedKey")}
    ]
    assert not {a for a in actions if a.split(":")[0] in ("athena", "glue", "events", "states")}
    # AND the only queue it may send to is where a failed scheduled run lands (its on-failure destination)
    failed_invocations = logical_id_of(synthesised, "AWS::SQS::Queue", "InvocationFailuresFailedInvocations")
    sqs_statements = [s for s in statements if any(a.startswith("sqs:") for a in as_list(s["Action"]))]
    assert sqs_statements and all(
        json.dumps(s["Resource"]) == json.dumps({"Fn::GetAtt": [failed_invocations, "Arn"]}) for s in sqs_statements
    )


def test_pip_installs_wheels_for_lambda_arm64_python_313_without_docker():
    # WHEN the bundling command is built for a target directory
    command = construct.pip_install_command(Path("/tmp/layer/python"))

    # THEN it is pip installing only binary wheels for manylinux aarch64 CPython 3.13 into that directory
    assert command[1:4] == ["-m", "pip", "install"]
    for flag, value in (
        ("--platform", "manylinux2014_aarch64"),
        ("--implementation", "cp"),
        ("--python-version", "3.13"),
        ("--target", "/tmp/layer/python"),
    ):
        assert command[command.index(flag) + 1] == value
    assert "--only-binary=:all:" in command
    assert command[-len(construct.LAYER_REQUIREMENTS) :] == list(construct.LAYER_REQUIREMENTS)
    assert {requirement.split("==")[0] for requirement in construct.LAYER_REQUIREMENTS} == {"duckdb", "sqlglot"}


def test_the_asset_hash_follows_the_requirements_only():
    assert construct.layer_asset_hash() == construct.layer_asset_hash(construct.LAYER_REQUIREMENTS)
    assert construct.layer_asset_hash(("duckdb==1.2.2",)) != construct.layer_asset_hash()


def test_a_complete_cache_is_copied_without_running_pip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # GIVEN a complete cache, and pip that must not run
    bundling = construct.PipLayerBundling(cache_root=tmp_path / "cache")
    (bundling.cache_dir / "python" / "duckdb").mkdir(parents=True)
    (bundling.cache_dir / "python" / "duckdb" / "__init__.py").write_text("")
    (bundling.cache_dir / ".complete").write_text("")

    def no_pip(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("pip ran although the cache was complete")

    monkeypatch.setattr(subprocess, "run", no_pip)

    # WHEN CDK asks for the bundle
    assert bundling.try_bundle(str(tmp_path / "out"), image=cdk.DockerImage.from_registry("unused")) is True

    # THEN the cached packages are in the layer's python/ directory
    assert (tmp_path / "out" / "python" / "duckdb" / "__init__.py").is_file()


def test_without_the_package_index_bundling_fails_with_a_clear_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # GIVEN no cache and pip that cannot reach an index
    bundling = construct.PipLayerBundling(cache_root=tmp_path / "cache")
    calls: list[list[str]] = []

    def offline_pip(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution found for duckdb==1.2.2")

    monkeypatch.setattr(subprocess, "run", offline_pip)

    # WHEN CDK asks for the bundle
    with pytest.raises(construct.LayerBundlingError) as raised:
        bundling.try_bundle(str(tmp_path / "out"), image=cdk.DockerImage.from_registry("unused"))

    # THEN pip was asked once for the pinned wheels, the message says what failed and where the cache goes,
    # and no half-built cache is left to be mistaken for a complete one
    assert len(calls) == 1 and "--only-binary=:all:" in calls[0]
    message = str(raised.value)
    assert "No matching distribution" in message and str(bundling.cache_dir) in message
    assert not (bundling.cache_dir / ".complete").exists()


@pytest.fixture(scope="module")
def synthesised_for_athena(tmp_path_factory: pytest.TempPathFactory) -> SynthesisedStack:
    return synthesise(tmp_path_factory.mktemp("cdk-out-athena"), {"reconciliationEngine": "athena"})


def test_the_athena_engine_may_query_its_workgroup_and_read_its_tables_only(synthesised_for_athena):
    # GIVEN the stack synthesised with reconciliationEngine=athena
    stack = synthesised_for_athena
    _, function = function_by_module(stack, MODULE)
    statements = statements_of_role(stack, role_logical_id(function))
    athena = [s for s in statements if any(a.startswith("athena:") for a in as_list(s["Action"]))]
    glue = [s for s in statements if any(a.startswith("glue:") for a in as_list(s["Action"]))]

    # THEN the function is told to use Athena, may run queries in the reconciliation workgroup only
    assert function["Properties"]["Environment"]["Variables"]["RECONCILIATION_ENGINE"] == "athena"
    [athena_statement] = athena
    assert set(as_list(athena_statement["Action"])) == {
        "athena:StartQueryExecution",
        "athena:GetQueryExecution",
        "athena:GetQueryResults",
    }
    assert json.dumps(athena_statement["Resource"]).endswith(':workgroup/billing-sync-dev-reconciliation"]]}')
    # AND may read the Glue catalog's reconciliation database and its tables, named one by one
    [glue_statement] = glue
    assert all(a.startswith("glue:Get") for a in as_list(glue_statement["Action"]))
    resources = json.dumps(glue_statement["Resource"])
    assert "*" not in resources
    assert all(f"table/billing_sync_dev/{table}" in resources for table in TABLES)
    # AND cdk-nag finds nothing unsuppressed in that configuration either
    errors = stack.annotations.find_error("*", Match.string_like_regexp("AwsSolutions-.*"))
    assert errors == [], "\n".join(str(error.entry.data) for error in errors)


def test_an_unknown_engine_is_refused():
    with pytest.raises(ValueError, match="reconciliationEngine"):
        BillingSyncConfig.from_context(cdk.App(context={"reconciliationEngine": "spark"}).node)
