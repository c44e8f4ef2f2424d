from __future__ import annotations

from aws_cdk import Duration, Fn, RemovalPolicy, SecretValue
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_xray as xray
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from infra.constructs.ingest_path import IngestPath
from infra.function_factory import FunctionFactory

WEBHOOK_PATH = "/webhooks/stripe"
INGEST_TIMEOUT = Duration.seconds(10)
THROTTLING_RATE_LIMIT = 50
THROTTLING_BURST_LIMIT = 100
SIGNATURE_HEADER = "Stripe-Signature"
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
    ) -> None:
        super().__init__(scope, construct_id)
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
        self.webhook_secret.grant_read(self.function)
        ingest_path.grant(self.function)
        self.rest_api = self._rest_api()
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
            removal_policy=RemovalPolicy.DESTROY,
        )
        rest_api = apigateway.RestApi(
            self,
            "RestApi",
            description="Inbound webhooks from billing platforms",
            endpoint_types=[apigateway.EndpointType.REGIONAL],
            cloud_watch_role=True,
            cloud_watch_role_removal_policy=RemovalPolicy.RETAIN,
            deploy_options=apigateway.StageOptions(
                stage_name="v1",
                throttling_rate_limit=THROTTLING_RATE_LIMIT,
                throttling_burst_limit=THROTTLING_BURST_LIMIT,
                logging_level=apigateway.MethodLoggingLevel.ERROR,
                data_trace_enabled=False,
                metrics_enabled=True,
                tracing_enabled=True,
                access_log_destination=apigateway.LogGroupLogDestination(access_logs),
                access_log_format=apigateway.AccessLogFormat.json_with_standard_fields(
                    caller=False,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=False,
                ),
            ),
        )
        return rest_api

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
                    id="AwsSolutions-APIG3",
                    reason="A single HMAC-verified webhook route with stage throttling; a WAF web ACL "
                    "is an account-level choice the operator can associate without a stack change.",
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
