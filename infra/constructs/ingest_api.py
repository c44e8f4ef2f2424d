from __future__ import annotations

import json
from collections.abc import Sequence
from typing import cast

from aws_cdk import Duration, Fn, RemovalPolicy, SecretValue
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_xray as xray
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from infra.constructs.ingest_path import IngestPath
from infra.constructs.keys import DataKeys
from infra.constructs.web_acl import WebhookWebAcl
from infra.function_factory import FunctionFactory

WEBHOOK_PATH = "/webhooks/stripe"
WEBHOOK_ROUTE = "/webhooks/"
STAGE_NAME = "v1"
INGEST_TIMEOUT = Duration.seconds(10)
# The stage admits `reserved concurrency` requests a second, and as a burst, per this many seconds a request
# may take: while a webhook (verify, one S3 put, one PutEvents, one lineage write) takes under a second,
# API Gateway answers 429 before Lambda runs out of reserved instances.
DESIGN_REQUEST_SECONDS = 1
SIGNATURE_HEADER = "Stripe-Signature"
# TLS 1.3, and TLS 1.2 with forward-secret ciphers only (no CBC, no RSA key exchange), hybrid post-quantum key
# exchange where the client offers it. Stripe sends webhooks over TLS 1.2 or 1.3. STRICT refuses requests
# whose SNI is not this API's host (domain fronting) or that arrive through another endpoint type.
SECURITY_POLICY = "SecurityPolicy_TLS13_1_2_PFS_PQ_2025_09"
ENDPOINT_ACCESS_MODE = "STRICT"
THROTTLED_RETRY_AFTER_SECONDS = 1
# Every field an operator needs to tell a refusal (WAF, throttle, validator) from a function or integration
# failure without execution logs: API Gateway's own error, the integration's status, error and latency.
ACCESS_LOG_FIELDS = {
    "requestId": "$context.requestId",
    "extendedRequestId": "$context.extendedRequestId",
    "ip": "$context.identity.sourceIp",
    "requestTime": "$context.requestTime",
    "httpMethod": "$context.httpMethod",
    "resourcePath": "$context.resourcePath",
    "protocol": "$context.protocol",
    "tlsVersion": "$context.tlsVersion",
    "status": "$context.status",
    "responseLength": "$context.responseLength",
    "responseLatency": "$context.responseLatency",
    "errorMessage": "$context.error.message",
    "errorResponseType": "$context.error.responseType",
    "wafResponseCode": "$context.wafResponseCode",
    "integrationStatus": "$context.integration.status",
    "integrationError": "$context.integration.error",
    "integrationErrorMessage": "$context.integrationErrorMessage",
    "integrationLatency": "$context.integration.latency",
    "integrationRequestId": "$context.integration.requestId",
    "xrayTraceId": "$context.xrayTraceId",
}
# X-Ray records this share of webhook requests at the API stage; the functions pass its decision on
# (pass-through tracing). Lambda's own sampling (the first request each second, then 5 %) records every
# request at a million events a month: $5 a million per traced function (make cost).
WEBHOOK_TRACE_SAMPLING_RATE = 0.01


class IngestApi(Construct):
    """`POST /webhooks/stripe` on a REST API, verified by the ingest Lambda, forwarded to the billing bus."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        function_factory: FunctionFactory,
        ingest_path: IngestPath,
        keys: DataKeys,
        reserved_concurrency: int,
        rate_limit_per_ip: int,
        allowed_source_cidrs: Sequence[str] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        self._keys = keys
        self._reserved_concurrency = reserved_concurrency
        self.webhook_secret_name = f"billing-sync/{stage}/stripe-webhook-signing-secrets"
        self.webhook_secret = self._webhook_secret()
        self.function = function_factory.create(
            self,
            "StripeWebhookFunction",
            handler_module="stripe_webhook",
            timeout=INGEST_TIMEOUT,
            description="Verifies, archives and normalises Stripe webhooks onto the billing bus",
            environment={**ingest_path.environment(), "STRIPE_WEBHOOK_SECRET_NAME": self.webhook_secret_name},
        )
        reserve_concurrency(self.function, reserved_concurrency)
        self.webhook_secret.grant_read(self.function)
        ingest_path.grant(self.function)
        self.rest_api = self._rest_api()
        self._fail_closed_when_throttled()
        stripe_resource = self.rest_api.root.resource_for_path(WEBHOOK_PATH)
        stripe_resource.add_method(
            "POST",
            apigateway.LambdaIntegration(self.function, proxy=True),
            request_parameters={f"method.request.header.{SIGNATURE_HEADER}": True},
            request_validator=apigateway.RequestValidator(
                self,
                "SignatureHeaderValidator",
                rest_api=self.rest_api,
                validate_request_parameters=True,
                validate_request_body=False,
            ),
        )
        self.webhook_url = self.rest_api.url_for_path(WEBHOOK_PATH)
        self.web_acl = WebhookWebAcl(
            self,
            "WebAcl",
            stage_arn=self.rest_api.deployment_stage.stage_arn,
            webhook_route=WEBHOOK_ROUTE,
            rate_limit_per_ip=rate_limit_per_ip,
            allowed_source_cidrs=allowed_source_cidrs,
            metric_prefix=f"billing-sync-{stage}",
        )
        self.sampling_rule = self._webhook_sampling_rule(stage)
        self._suppress_findings_answered_by_signature_verification()

    def _webhook_secret(self) -> secretsmanager.Secret:
        # The value is a JSON list so operators can hold the old and new signing secret during a
        # rotation. The placeholder embeds the stack id: stable across deploys (never overwrites the
        # operator's value) and not guessable from outside the account, so nothing verifies against it.
        secret = secretsmanager.Secret(
            self,
            "StripeWebhookSigningSecrets",
            secret_name=self.webhook_secret_name,
            description="JSON list of Stripe webhook signing secrets (whsec_...); replace the placeholder",
            secret_string_value=SecretValue.unsafe_plain_text(Fn.sub('["whsec_placeholder_${AWS::StackId}"]')),
            encryption_key=self._keys.data,
            removal_policy=RemovalPolicy.RETAIN,
        )
        NagSuppressions.add_resource_suppressions(
            secret,
            [
                NagPackSuppression(
                    id="AwsSolutions-SMG4",
                    reason="Stripe signing secrets are rolled in the Stripe dashboard, not by a rotation "
                    "Lambda; the secret holds a list so the old and new secret overlap during a roll.",
                )
            ],
        )
        return secret

    def _rest_api(self) -> apigateway.RestApi:
        access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=logs.RetentionDays.ONE_MONTH,
            encryption_key=self._keys.logs,
            removal_policy=RemovalPolicy.DESTROY,
        )
        stage_limit = self._reserved_concurrency // DESIGN_REQUEST_SECONDS
        rest_api = apigateway.RestApi(
            self,
            "RestApi",
            description="Inbound webhooks from billing platforms",
            endpoint_types=[apigateway.EndpointType.REGIONAL],
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            deploy_options=apigateway.StageOptions(
                stage_name=STAGE_NAME,
                throttling_rate_limit=stage_limit,
                throttling_burst_limit=stage_limit,
                logging_level=apigateway.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                metrics_enabled=True,
                tracing_enabled=True,
                access_log_destination=apigateway.LogGroupLogDestination(access_logs),
                access_log_format=apigateway.AccessLogFormat.custom(json.dumps(ACCESS_LOG_FIELDS)),
            ),
        )
        # The L2 RestApi has no security policy property yet; the resource has (enhanced policies, 2025).
        cfn_rest_api = cast(apigateway.CfnRestApi, rest_api.node.default_child)
        cfn_rest_api.security_policy = SECURITY_POLICY
        cfn_rest_api.endpoint_access_mode = ENDPOINT_ACCESS_MODE
        return rest_api

    def _fail_closed_when_throttled(self) -> None:
        """A throttled webhook is refused with 429 and Retry-After: nothing is stored, and Stripe delivers it
        again (it retries every non-2xx for three days). Lambda's own throttle is not reached first (the stage
        limits follow the reserved concurrency); if it were, API Gateway would answer 5xx, which Stripe also
        retries."""
        self.rest_api.add_gateway_response(
            "Throttled",
            type=apigateway.ResponseType.THROTTLED,
            status_code="429",
            response_headers={"Retry-After": f"'{THROTTLED_RETRY_AFTER_SECONDS}'"},
            templates={"application/json": '{"message": "throttled: retry later"}'},
        )

    def _webhook_sampling_rule(self, stage: str) -> xray.CfnSamplingRule:
        stage_name = self.rest_api.deployment_stage.stage_name
        return xray.CfnSamplingRule(
            self,
            "WebhookTraceSampling",
            sampling_rule=xray.CfnSamplingRule.SamplingRuleProperty(
                rule_name=f"billing-sync-{stage}-webhooks"[:32],
                priority=100,
                fixed_rate=WEBHOOK_TRACE_SAMPLING_RATE,
                reservoir_size=0,
                service_name=f"{self.rest_api.rest_api_name}/{stage_name}",
                service_type="AWS::ApiGateway::Stage",
                host="*",
                http_method="POST",
                url_path="*",
                resource_arn="*",
                version=1,
            ),
        )

    def _suppress_findings_answered_by_signature_verification(self) -> None:
        authentication_reason = (
            "Stripe cannot send Cognito tokens, IAM signatures or API keys; every request is "
            "authenticated by its Stripe-Signature HMAC, verified on the raw body in the function "
            "before anything is stored."
        )
        NagSuppressions.add_resource_suppressions(
            self.rest_api,
            [
                NagPackSuppression(id="AwsSolutions-APIG4", reason=authentication_reason),
                NagPackSuppression(id="AwsSolutions-COG4", reason=authentication_reason),
                NagPackSuppression(
                    id="AwsSolutions-APIG2",
                    reason="The edge validates that the Stripe-Signature header is present; the body is "
                    "deliberately not schema-validated there, because the signature is verified on the "
                    "raw body and a correctly signed event must never be refused for its shape.",
                ),
                NagPackSuppression(
                    id="AwsSolutions-IAM4",
                    reason="API Gateway's account-level CloudWatch role uses the AWS managed "
                    "AmazonAPIGatewayPushToCloudWatchLogs policy, which AWS documents for this purpose.",
                    applies_to=[
                        "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs"
                    ],
                ),
            ],
            apply_to_children=True,
        )


def reserve_concurrency(function: lambda_.Function, instances: int) -> None:
    """Reserved concurrency caps what a flood can cost and keeps the account's other functions running."""
    cast(lambda_.CfnFunction, function.node.default_child).reserved_concurrent_executions = instances
