from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from infra.function_factory import FunctionFactory

STRIPE_PARTNER_SOURCE_PREFIX = "aws.partner/stripe.com"
NORMALISER_TIMEOUT = Duration.seconds(10)
DELIVERY_RETRY_ATTEMPTS = 8
DELIVERY_MAX_EVENT_AGE = Duration.hours(24)


class StripePartnerEvents(Construct):
    """Stripe events delivered natively to an EventBridge partner bus, normalised onto the billing bus.

    The partner bus is created by accepting Stripe's event destination in the account, so it is only
    referenced by name. Events the target cannot take after retries land in the exception queue.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        partner_event_bus_name: str,
        function_factory: FunctionFactory,
        billing_bus: events.IEventBus,
        raw_archive: s3.IBucket,
        lineage_table: dynamodb.ITable,
        exception_queue: sqs.IQueue,
        default_legal_entity: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.partner_bus = events.EventBus.from_event_bus_name(self, "PartnerBus", partner_event_bus_name)
        self.function = function_factory.create(
            self,
            "StripePartnerEventsFunction",
            handler_module="stripe_partner_events",
            timeout=NORMALISER_TIMEOUT,
            description="Normalises Stripe partner-bus events onto the billing bus",
            environment={
                "BILLING_BUS_NAME": billing_bus.event_bus_name,
                "RAW_ARCHIVE_BUCKET": raw_archive.bucket_name,
                "LINEAGE_TABLE_NAME": lineage_table.table_name,
                "EXCEPTION_QUEUE_URL": exception_queue.queue_url,
                "DEFAULT_LEGAL_ENTITY": default_legal_entity,
            },
        )
        raw_archive.grant_put(self.function)
        billing_bus.grant_put_events_to(self.function)
        lineage_table.grant(self.function, "dynamodb:PutItem", "dynamodb:UpdateItem")
        exception_queue.grant_send_messages(self.function)
        NagSuppressions.add_resource_suppressions(
            self.function.role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="grant_put scopes s3:PutObject* and s3:Abort* to objects of the raw archive "
                    "bucket only; object keys are per event, so the object part must be a wildcard.",
                    applies_to=[
                        "Action::s3:Abort*",
                        "Action::s3:PutObject*",
                        {"regex": "/^Resource::<RawArchiveBucket.*\\.Arn>/\\*$/g"},
                    ],
                )
            ],
            apply_to_children=True,
        )
        self.rule = events.Rule(
            self,
            "StripePartnerEventsToNormaliser",
            event_bus=self.partner_bus,
            description="Every Stripe event from the partner event source",
            event_pattern=events.EventPattern(source=events.Match.prefix(STRIPE_PARTNER_SOURCE_PREFIX)),
            targets=[
                targets.LambdaFunction(
                    self.function,
                    dead_letter_queue=exception_queue,
                    retry_attempts=DELIVERY_RETRY_ATTEMPTS,
                    max_event_age=DELIVERY_MAX_EVENT_AGE,
                )
            ],
        )
