"""The one place that decides how a billing-sync Lambda function is built.

Runtime dependencies (aws-lambda-powertools 3.x with pydantic v2 and aws-xray-sdk) come from the
official public Powertools for AWS Lambda (Python) v3 layer, pinned to a version and templated on the
deployment region. The function asset is therefore just the `functions/` directory (the
`billing_sync` package) and synthesis needs neither Docker nor network access.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aws_cdk import Duration, Fn, RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

FUNCTIONS_SOURCE_DIR = Path(__file__).resolve().parent.parent / "functions"
ASSET_EXCLUDES = [
    "**/__pycache__",
    "**/*.pyc",
    "**/tests",
    "**/*.egg-info",
    "**/.pytest_cache",
    "**/.mypy_cache",
    "**/.ruff_cache",
    "**/.hypothesis",
]
RUNTIME = lambda_.Runtime.PYTHON_3_13
POWERTOOLS_LAYER_NAME = "AWSLambdaPowertoolsPythonV3-python313-arm64"
POWERTOOLS_LAYER_ACCOUNT = "017000801446"
MEMORY_SIZE_MB = 512


def powertools_layer_arn_template(version: int) -> str:
    region = "${AWS::Region}"
    return f"arn:aws:lambda:{region}:{POWERTOOLS_LAYER_ACCOUNT}:layer:{POWERTOOLS_LAYER_NAME}:{version}"


@dataclass(frozen=True, kw_only=True)
class FunctionFactory:
    """Builds functions with runtime, arm64, JSON logs, tracing, log retention and Powertools settings.

    `log_encryption_key`, when given, encrypts every function's log group (its policy must let CloudWatch Logs
    use it)."""

    powertools_layer_version: int
    service_name: str = "billing-sync"
    metrics_namespace: str = "BillingSync"
    log_retention: logs.RetentionDays = logs.RetentionDays.ONE_MONTH
    log_encryption_key: kms.IKey | None = None

    def create(
        self,
        scope: Construct,
        construct_id: str,
        *,
        handler_module: str,
        timeout: Duration,
        environment: dict[str, str],
        description: str,
        memory_size: int = MEMORY_SIZE_MB,
        layers: Sequence[lambda_.ILayerVersion] = (),
    ) -> lambda_.Function:
        log_group = logs.LogGroup(
            scope,
            f"{construct_id}LogGroup",
            retention=self.log_retention,
            encryption_key=self.log_encryption_key,
            removal_policy=RemovalPolicy.DESTROY,
        )
        # An explicit role per function keeps the AWS managed basic-execution policy out: the function
        # may only write to its own log group.
        role = iam.Role(
            scope,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Runs {handler_module}",
        )
        log_group.grant_write(role)
        function = lambda_.Function(
            scope,
            construct_id,
            description=description,
            runtime=RUNTIME,
            architecture=lambda_.Architecture.ARM_64,
            handler=f"billing_sync.handlers.{handler_module}.lambda_handler",
            code=lambda_.Code.from_asset(str(FUNCTIONS_SOURCE_DIR), exclude=ASSET_EXCLUDES),
            layers=[
                lambda_.LayerVersion.from_layer_version_arn(
                    scope,
                    f"{construct_id}PowertoolsLayer",
                    Fn.sub(powertools_layer_arn_template(self.powertools_layer_version)),
                ),
                *layers,
            ],
            role=role,
            memory_size=memory_size,
            timeout=timeout,
            # Pass-through: a function records a trace when its caller sampled one (the webhook API's
            # sampling rule); under ACTIVE Lambda's fixed sampling records nearly every invocation.
            tracing=lambda_.Tracing.PASS_THROUGH,
            logging_format=lambda_.LoggingFormat.JSON,
            # WARN: each event's outcome is already in its lineage record; INFO lines per event doubled the
            # log bytes (make cost). Lambda's level takes precedence over POWERTOOLS_LOG_LEVEL.
            application_log_level_v2=lambda_.ApplicationLogLevel.WARN,
            system_log_level_v2=lambda_.SystemLogLevel.WARN,
            log_group=log_group,
            environment={
                "POWERTOOLS_SERVICE_NAME": self.service_name,
                "POWERTOOLS_METRICS_NAMESPACE": self.metrics_namespace,
                "POWERTOOLS_LOG_LEVEL": "WARNING",
                **environment,
            },
        )
        NagSuppressions.add_resource_suppressions(
            role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level "
                    "permissions, so active tracing needs Resource '*'.",
                    applies_to=["Resource::*"],
                ),
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="CDK's grants on encrypted tables, buckets, queues and topics add kms:GenerateDataKey* "
                    "and kms:ReEncrypt* on that one key's ARN; the wildcard spans the data key variants of those "
                    "two actions, never other keys or other actions.",
                    applies_to=[{"regex": "/^Action::kms:(GenerateDataKey|ReEncrypt)\\*$/g"}],
                ),
            ],
            apply_to_children=True,
        )
        NagSuppressions.add_resource_suppressions(
            function,
            [
                NagPackSuppression(
                    id=rule,
                    reason="Pinned to python3.13 because the runtime must match the pinned Powertools "
                    "layer variant (python313-arm64); moved together when the layer is bumped.",
                )
                for rule in ("AwsSolutions-L1", "Serverless-LambdaLatestVersion")
            ]
            + [
                NagPackSuppression(
                    id="Serverless-LambdaTracing",
                    reason="Pass-through on purpose: a function records a trace when its caller sampled one "
                    "(1 % at the webhook stage); active tracing records nearly every invocation at this volume "
                    "and was the largest item of the cost model (docs/decisions.md 52).",
                )
            ],
        )
        return function
