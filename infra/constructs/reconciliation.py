"""Reconciliation in AWS: the extracts and reports bucket, the Glue tables and Athena workgroup over it, and the
monthly reconciliation function with its DuckDB engine layer.

Two engines run the one SQL source (`billing_sync/reconciliation/sql/`) over one S3 layout
(`s3://<bucket>/reconciliation/extracts/<table>/legal_entity=<E>/period=<YYYY-MM>/`):

- the scheduled function runs it with DuckDB in Lambda (ordinary volumes: what fits the function's memory and
  `/tmp`), from a layer built here without Docker: pip installs the pinned wheels for linux arm64 CPython 3.13
  once into `build/layers/`, and every later synthesis copies that cache (the asset hash is the pinned
  requirements, so an unchanged layer is neither re-installed nor re-uploaded);
- beyond one machine the same SQL, transpiled to Trino (`billing_sync.reconciliation.athena.athena_sql`), runs in
  the Athena workgroup over the Glue tables defined here. Partitions are projected (entity enum x month range),
  so no crawler or `MSCK REPAIR TABLE` is needed; an entity outside `legal_entities` is invisible to Athena
  until it is added and deployed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import jsii
from aws_cdk import (
    AssetHashType,
    BundlingOptions,
    DockerImage,
    Duration,
    ILocalBundling,
    RemovalPolicy,
    Stack,
)
from aws_cdk import aws_athena as athena
from aws_cdk import aws_glue as glue
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from billing_sync.reconciliation.athena import S3Layout
from billing_sync.reconciliation.extracts import PARTITION_COLUMNS, TABLES, glue_columns
from billing_sync.settings import DEFAULT_MAPPING_FILE
from infra.constructs.function_schedule import ScheduledRun, schedule_function
from infra.constructs.state_tables import StateTables
from infra.function_factory import RUNTIME, FunctionFactory

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
LAYER_CACHE_DIR = REPO_ROOT / "build" / "layers"
# What the engine needs beyond the Powertools layer (pydantic) and the runtime (boto3). The highest duckdb the
# package index offers for cp313 manylinux aarch64; the SQL is tested on the development version too.
LAYER_REQUIREMENTS = ("duckdb==1.2.2", "sqlglot==30.30.0")
LAYER_PLATFORM = "manylinux2014_aarch64"
LAYER_PYTHON_VERSION = "3.13"
# Never pulled while local bundling succeeds; CDK's BundlingOptions requires an image.
LAYER_FALLBACK_IMAGE = "public.ecr.aws/sam/build-python3.13:latest-arm64"

EXTRACTS_PREFIX = "reconciliation/extracts"
REPORTS_PREFIX = "reconciliation/reports"
ATHENA_RESULTS_PREFIX = "reconciliation/athena-results"
RECONCILIATION_TIMEOUT = Duration.minutes(15)
# DuckDB spills to /tmp beyond its memory limit; 2 GB reconciles about a million documents a side (make bench).
RECONCILIATION_MEMORY_MB = 2048
ATHENA_BYTES_SCANNED_CUTOFF = 10 * 1024**3
FIRST_PROJECTED_PERIOD = "2020-01"
SCHEDULE_RETRY_ATTEMPTS = 8
SCHEDULE_MAX_EVENT_AGE = Duration.hours(24)

_PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
_PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
_PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"


class LayerBundlingError(RuntimeError):
    """The engine layer could not be installed (no pip, no package index); the message says what to do."""


def pip_install_command(target: Path, requirements: Sequence[str] = LAYER_REQUIREMENTS) -> list[str]:
    """The pip command that installs `requirements` as wheels for Lambda's arm64 CPython 3.13 into `target`."""
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--no-compile",
        "--platform",
        LAYER_PLATFORM,
        "--implementation",
        "cp",
        "--python-version",
        LAYER_PYTHON_VERSION,
        "--only-binary=:all:",
        "--target",
        str(target),
        *requirements,
    ]


def layer_asset_hash(requirements: Sequence[str] = LAYER_REQUIREMENTS) -> str:
    """Changes exactly when what the layer would contain changes (requirements, platform, Python)."""
    spec = {"requirements": list(requirements), "platform": LAYER_PLATFORM, "python": LAYER_PYTHON_VERSION}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


@jsii.implements(ILocalBundling)
class PipLayerBundling:
    """Builds the layer's `python/` directory on this machine: from the cache under `build/layers/` when it is
    complete, else by `pip_install_command` into the cache first. Raises LayerBundlingError rather than falling
    back to Docker."""

    def __init__(self, *, requirements: Sequence[str] = LAYER_REQUIREMENTS, cache_root: Path = LAYER_CACHE_DIR):
        self.requirements = tuple(requirements)
        self.cache_dir = Path(cache_root) / f"reconciliation-engine-{layer_asset_hash(self.requirements)[:16]}"

    def try_bundle(self, output_dir: str, *, image: DockerImage, **_: object) -> bool:
        if not (self.cache_dir / ".complete").is_file():
            self.install()
        shutil.copytree(self.cache_dir / "python", Path(output_dir) / "python", dirs_exist_ok=True)
        return True

    def install(self) -> None:
        """Raises LayerBundlingError."""
        staging = self.cache_dir.with_name(self.cache_dir.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        command = pip_install_command(staging / "python", self.requirements)
        print(f"installing the reconciliation engine layer into {self.cache_dir} ...", file=sys.stderr)
        try:
            result = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise LayerBundlingError(self._advice(f"could not run pip: {exc}")) from exc
        if result.returncode != 0:
            raise LayerBundlingError(self._advice(f"pip exited {result.returncode}: {result.stderr.strip()[-1500:]}"))
        shutil.rmtree(self.cache_dir, ignore_errors=True)
        staging.rename(self.cache_dir)
        (self.cache_dir / ".complete").write_text(" ".join(self.requirements) + "\n", encoding="utf-8")

    def _advice(self, problem: str) -> str:
        return (
            f"cannot build the reconciliation engine layer ({', '.join(self.requirements)} for "
            f"{LAYER_PLATFORM} CPython {LAYER_PYTHON_VERSION}): {problem}. Synthesis needs the package index once; "
            f"the wheels are then cached in {self.cache_dir}. Run `{' '.join(pip_install_command(Path('DIR')))}` "
            "where the index is reachable and copy DIR to <cache>/python with an empty <cache>/.complete."
        )


def engine_layer_code(bundling: PipLayerBundling | None = None) -> lambda_.AssetCode:
    """The layer's asset: bundled locally (never in Docker), hashed by its requirements."""
    bundling = bundling or PipLayerBundling()
    LAYER_CACHE_DIR.mkdir(parents=True, exist_ok=True)
    return lambda_.Code.from_asset(
        str(LAYER_CACHE_DIR),
        asset_hash=layer_asset_hash(bundling.requirements),
        asset_hash_type=AssetHashType.CUSTOM,
        bundling=BundlingOptions(image=DockerImage.from_registry(LAYER_FALLBACK_IMAGE), local=bundling),
    )


def mapping_legal_entities(mapping_file: Path = DEFAULT_MAPPING_FILE) -> tuple[str, ...]:
    """The legal entities the account mapping defines (what the Athena tables project by default)."""
    return tuple(json.loads(mapping_file.read_text(encoding="utf-8")).get("legal_entities", {}))


class Reconciliation(Construct):
    """The reconciliation bucket, Glue database and tables, Athena workgroup and the scheduled function.

    The function reads the ledger and lineage (never writes them), reads and writes its own prefix of the bucket
    and reads the Stripe API key (the billing side's list API); its schedule may invoke only it and dead-letter.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        function_factory: FunctionFactory,
        tables: StateTables,
        access_logs_bucket: s3.IBucket,
        raw_archive: s3.IBucket,
        encryption_key: kms.IKey,
        default_legal_entity: str,
        stripe_api_key: secretsmanager.ISecret,
        stripe_api_environment: Mapping[str, str],
        exception_queue: sqs.IQueue,
        schedule_expression: str,
        legal_entities: Sequence[str],
        engine: str = "duckdb",
        layer_bundling: PipLayerBundling | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        if not legal_entities:
            raise ValueError("Reconciliation needs at least one legal entity to project")
        # Extracts and reports hold customers' documents: the data key, through a bucket key (a KMS call per
        # bucket key lifetime, not per object a run writes).
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=encryption_key,
            bucket_key_enabled=True,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            versioned=True,
            server_access_logs_bucket=access_logs_bucket,
            server_access_logs_prefix="reconciliation/",
            lifecycle_rules=[
                s3.LifecycleRule(prefix=f"{ATHENA_RESULTS_PREFIX}/", expiration=Duration.days(30)),
                s3.LifecycleRule(noncurrent_version_expiration=Duration.days(90)),
            ],
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.layout = S3Layout(bucket=self.bucket.bucket_name, prefix=EXTRACTS_PREFIX)
        self.database_name = f"billing_sync_{stage.replace('-', '_').lower()}"
        self.database = glue.CfnDatabase(
            self,
            "GlueDatabase",
            catalog_id=Stack.of(self).account,
            database_input=glue.CfnDatabase.DatabaseInputProperty(
                name=self.database_name,
                description="billing-sync reconciliation extracts (Parquet, partitioned by legal entity and period)",
            ),
        )
        self.glue_tables = {table: self._glue_table(table, tuple(legal_entities)) for table in TABLES}
        self.work_group = self._work_group(stage, encryption_key)

        self.layer = lambda_.LayerVersion(
            self,
            "EngineLayer",
            code=engine_layer_code(layer_bundling),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[lambda_.Architecture.ARM_64],
            description=f"Reconciliation engine: {', '.join(LAYER_REQUIREMENTS)} (linux arm64, CPython 3.13)",
        )
        self.function = function_factory.create(
            self,
            "ReconcileFunction",
            handler_module="reconcile",
            timeout=RECONCILIATION_TIMEOUT,
            memory_size=RECONCILIATION_MEMORY_MB,
            layers=[self.layer],
            description="Reconciles last month's billing and ERP documents with DuckDB; reports to S3 (monthly)",
            environment={
                "LEDGER_TABLE_NAME": tables.ledger.table_name,
                "LINEAGE_TABLE_NAME": tables.lineage.table_name,
                "RECONCILIATION_BUCKET": self.bucket.bucket_name,
                "RECONCILIATION_GLUE_DATABASE": self.database_name,
                "RECONCILIATION_ATHENA_WORKGROUP": self.work_group.name,
                "RECONCILIATION_ENGINE": engine,
                "RAW_ARCHIVE_BUCKET": raw_archive.bucket_name,
                "DEFAULT_LEGAL_ENTITY": default_legal_entity,
                **stripe_api_environment,
            },
        )
        tables.ledger.grant_read_data(self.function)
        tables.lineage.grant_read_data(self.function)
        self.bucket.grant_read_write(self.function, "reconciliation/*")
        stripe_api_key.grant_read(self.function)
        raw_archive.grant_read(self.function)
        if engine == "athena":
            self._grant_athena(self.function)
        self._suppress_scoped_wildcards(self.function)
        self.schedule = self._schedule(schedule_expression, exception_queue)

    def _glue_table(self, table: str, legal_entities: tuple[str, ...]) -> glue.CfnTable:
        data, partitions = glue_columns(table)
        location = self.layout.location(table)
        template = location + "/".join(f"{name}=${{{name}}}" for name in PARTITION_COLUMNS) + "/"
        glue_table = glue.CfnTable(
            self,
            f"GlueTable{''.join(part.title() for part in table.split('_'))}",
            catalog_id=Stack.of(self).account,
            database_name=self.database_name,
            table_input=glue.CfnTable.TableInputProperty(
                name=self.layout.table_name(table),
                description=f"Reconciliation extract {table} (billing_sync.reconciliation.extracts.TABLES)",
                table_type="EXTERNAL_TABLE",
                partition_keys=[glue.CfnTable.ColumnProperty(name=n, type=t) for n, t in partitions],
                parameters={
                    "classification": "parquet",
                    "EXTERNAL": "TRUE",
                    "projection.enabled": "true",
                    "projection.legal_entity.type": "enum",
                    "projection.legal_entity.values": ",".join(legal_entities),
                    "projection.period.type": "date",
                    "projection.period.format": "yyyy-MM",
                    "projection.period.range": f"{FIRST_PROJECTED_PERIOD},NOW",
                    "projection.period.interval": "1",
                    "projection.period.interval.unit": "MONTHS",
                    "storage.location.template": template,
                },
                storage_descriptor=glue.CfnTable.StorageDescriptorProperty(
                    columns=[glue.CfnTable.ColumnProperty(name=n, type=t) for n, t in data],
                    location=location,
                    input_format=_PARQUET_INPUT,
                    output_format=_PARQUET_OUTPUT,
                    serde_info=glue.CfnTable.SerdeInfoProperty(
                        serialization_library=_PARQUET_SERDE, parameters={"serialization.format": "1"}
                    ),
                ),
            ),
        )
        glue_table.node.add_dependency(self.database)
        return glue_table

    def _grant_athena(self, function: lambda_.IFunction) -> None:
        """Queries in this workgroup only, reading this database's tables only (S3 is granted above)."""
        stack = Stack.of(self)
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=["athena:StartQueryExecution", "athena:GetQueryExecution", "athena:GetQueryResults"],
                resources=[
                    stack.format_arn(service="athena", resource="workgroup", resource_name=self.work_group.name)
                ],
            )
        )
        function.add_to_role_policy(
            iam.PolicyStatement(
                actions=[
                    "glue:GetDatabase",
                    "glue:GetTable",
                    "glue:GetTables",
                    "glue:GetPartition",
                    "glue:GetPartitions",
                ],
                resources=[
                    stack.format_arn(service="glue", resource="catalog"),
                    stack.format_arn(service="glue", resource="database", resource_name=self.database_name),
                    *(
                        stack.format_arn(
                            service="glue", resource="table", resource_name=f"{self.database_name}/{table}"
                        )
                        for table in (self.layout.table_name(name) for name in TABLES)
                    ),
                ],
            )
        )

    def _work_group(self, stage: str, encryption_key: kms.IKey) -> athena.CfnWorkGroup:
        return athena.CfnWorkGroup(
            self,
            "AthenaWorkGroup",
            name=f"billing-sync-{stage}-reconciliation",
            description="Runs the reconciliation SQL (transpiled to Trino) over the extracts beyond one machine",
            state="ENABLED",
            work_group_configuration=athena.CfnWorkGroup.WorkGroupConfigurationProperty(
                enforce_work_group_configuration=True,
                publish_cloud_watch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=ATHENA_BYTES_SCANNED_CUTOFF,
                engine_version=athena.CfnWorkGroup.EngineVersionProperty(
                    selected_engine_version="Athena engine version 3"
                ),
                result_configuration=athena.CfnWorkGroup.ResultConfigurationProperty(
                    output_location=self.bucket.s3_url_for_object(ATHENA_RESULTS_PREFIX) + "/",
                    encryption_configuration=athena.CfnWorkGroup.EncryptionConfigurationProperty(
                        encryption_option="SSE_KMS", kms_key=encryption_key.key_arn
                    ),
                ),
            ),
        )

    def _schedule(self, schedule_expression: str, exception_queue: sqs.IQueue) -> scheduler.Schedule:
        # No period: the handler reconciles the month before the scheduled time.
        self.schedule_role, schedule = schedule_function(
            self,
            self.function,
            ScheduledRun(
                name="Reconcile",
                expression=schedule_expression,
                description="Reconciles the previous month, every entity, once a month",
                role_description="Lets the reconciliation schedule invoke its function and dead-letter",
                function_id_prefix="ReconciliationReconcileFunction",
                payload={
                    "schedule_arn": scheduler.ContextAttribute.schedule_arn,
                    "scheduled_time": scheduler.ContextAttribute.scheduled_time,
                },
                retry_attempts=SCHEDULE_RETRY_ATTEMPTS,
                max_event_age=SCHEDULE_MAX_EVENT_AGE,
            ),
            dead_letter_queue=exception_queue,
        )
        return schedule

    def _suppress_scoped_wildcards(self, function: lambda_.IFunction) -> None:
        assert function.role is not None
        NagSuppressions.add_resource_suppressions(
            function.role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="grant_read_data adds the tables' indexes (index/*); the wildcard covers the indexes "
                    "of the ledger and lineage tables only, read-only.",
                    applies_to=[{"regex": "/^Resource::<StateTables(Ledger|Lineage)[0-9A-F]+\\.Arn>/index/\\*$/g"}],
                ),
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="The function writes extracts and reports under the bucket's reconciliation/ prefix "
                    "only (object keys are per run), and the S3 grant's actions are the read/write family on it.",
                    applies_to=[
                        {"regex": "/^Resource::<ReconciliationBucket[0-9A-F]+\\.Arn>/reconciliation/\\*$/g"},
                        {"regex": "/^Action::s3:(GetObject|GetBucket|List|DeleteObject|Abort)\\*$/g"},
                    ],
                ),
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="The billing side reads archived raw payloads (one object per event) to tell which "
                    "documents events delivered; read-only, on the raw archive bucket only.",
                    applies_to=[{"regex": "/^Resource::<RawArchiveBucket[0-9A-F]+\\.Arn>/\\*$/g"}],
                ),
            ],
            apply_to_children=True,
        )
