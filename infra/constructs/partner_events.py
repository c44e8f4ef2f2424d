from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda_destinations as destinations
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from infra.constructs.ingest_api import reserve_concurrency
from infra.constructs.ingest_path import IngestPath
from infra.function_factory import FunctionFactory

STRIPE_PARTNER_SOURCE_PREFIX = "aws.partner/stripe.com"
NORMALISER_TIMEOUT = Duration.seconds(10)
DELIVERY_RETRY_ATTEMPTS = 8
DELIVERY_MAX_EVENT_AGE = Duration.hours(24)
# EventBridge invokes the function asynchronously: its DLQ covers only events Lambda never accepted.
# An accepted event whose invocation fails is retried by Lambda, then sent to the on-failure destination.
ASYNC_RETRY_ATTEMPTS = 2


class StripePartnerEvents(Construct):
    """Stripe events delivered natively to an EventBridge partner bus, normalised onto the billing bus.

    The partner bus is created by accepting Stripe's event destination in the account, so it is only
    referenced by name. Events the target cannot take after retries (the rule's DLQ) land in the exception
    queue; events whose invocation still fails after Lambda's async retries go to the on-failure function,
    which parks them in the exception queue and store; so no Stripe event is dropped silently.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        partner_event_bus_name: str,
        function_factory: FunctionFactory,
        ingest_path: IngestPath,
        reserved_concurrency: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.partner_bus = events.EventBus.from_event_bus_name(self, "PartnerBus", partner_event_bus_name)
        self.function = function_factory.create(
            self,
            "StripePartnerEventsFunction",
            handler_module="stripe_partner_events",
            timeout=NORMALISER_TIMEOUT,
            description="Normalises Stripe partner-bus events onto the billing bus",
            environment=ingest_path.environment(),
        )
        # A throttled asynchronous invocation waits in Lambda's queue and is retried (up to the event age), so a
        # flood on the partner bus costs at most this many instances and loses nothing.
        reserve_concurrency(self.function, reserved_concurrency)
        ingest_path.grant(self.function)
        # A delivery the function gives up on is parked and indexed like any exception; if parking fails
        # too, the failure record itself lands in the exception queue.
        self.failed_delivery_function = function_factory.create(
            self,
            "ParkFailedDeliveryFunction",
            handler_module="park_failed_delivery",
            timeout=NORMALISER_TIMEOUT,
            description="Parks partner deliveries Lambda gave up on in the exception queue and store",
            environment=ingest_path.environment(),
        )
        ingest_path.grant_parking(self.failed_delivery_function)
        self.failed_delivery_function.configure_async_invoke(
            on_failure=destinations.SqsDestination(ingest_path.exception_queue),
            retry_attempts=ASYNC_RETRY_ATTEMPTS,
        )
        self.function.configure_async_invoke(
            on_failure=destinations.LambdaDestination(self.failed_delivery_function, response_only=False),
            retry_attempts=ASYNC_RETRY_ATTEMPTS,
        )
        assert self.function.role is not None
        NagSuppressions.add_resource_suppressions(
            self.function.role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="The on-failure destination grant lets Lambda invoke the parking function and its "
                    "versions (<arn>:*); it names that one function only.",
                    applies_to=[{"regex": "/^Resource::<StripePartnerEventsParkFailedDelivery.*\\.Arn>:\\*$/g"}],
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
                    dead_letter_queue=ingest_path.exception_queue,
                    retry_attempts=DELIVERY_RETRY_ATTEMPTS,
                    max_event_age=DELIVERY_MAX_EVENT_AGE,
                )
            ],
        )
