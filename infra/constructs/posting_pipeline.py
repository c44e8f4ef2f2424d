from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from aws_cdk import Duration, Fn, RemovalPolicy, SecretValue
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from billing_sync.domain.posting.rules import POSTED_EVENT_TYPES
from infra.constructs.state_tables import StateTables
from infra.function_factory import FunctionFactory

# The bus rule routes exactly the canonical types the posting rule registry handles.
POSTED_DETAIL_TYPES = list(POSTED_EVENT_TYPES)
POSTING_TIMEOUT = Duration.seconds(30)
# AWS guidance for SQS event sources: visibility timeout at least six times the function timeout.
VISIBILITY_TIMEOUT_FACTOR = 6
MAX_RECEIVE_COUNT = 8
POSTING_BATCH_SIZE = 10
# ERP back-pressure: never more than this many concurrent posting invocations.
POSTING_MAX_CONCURRENCY = 5
DEFAULT_WAIT_HORIZON = Duration.days(3)
SWEEP_INTERVAL = Duration.minutes(15)
# SQS's maximum: an operator has two weeks to look at a parked event before SQS drops it.
EXCEPTION_RETENTION = Duration.days(14)
# Bus -> posting queue delivery fails only when SQS refuses the message (throttling, a broken policy);
# EventBridge retries with back-off for a day before the event goes to the exception queue.
BUS_DELIVERY_RETRY_ATTEMPTS = 8
BUS_DELIVERY_MAX_EVENT_AGE = Duration.hours(24)
SWEEP_RETRY_ATTEMPTS = 2
STRIPE_API_BASE = "https://api.stripe.com"


class PostingPipeline(Construct):
    """Canonical events from the billing bus -> posting queue -> posting Lambda -> ERP port.

    One exception queue serves every stage, so an operator has one place to inspect and redrive and
    the exception store indexes one queue: it is the posting queue's dead-letter queue, the DLQ of the
    bus rule that feeds the posting queue and of the sweep schedule's target, and the ingest path's
    (webhook and partner function) parking queue, DLQ and async on-failure destination. A parked
    record, a redriven EventBridge envelope and a Lambda on-failure record are all read by
    `billing_sync.aws.exception_queue.decode_exception_message`. Both queues are retained on stack
    deletion: they may hold events nobody has posted yet.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function_factory: FunctionFactory,
        billing_bus: events.IEventBus,
        tables: StateTables,
        wait_horizon: Duration = DEFAULT_WAIT_HORIZON,
        catalogue_required: bool = True,
    ) -> None:
        super().__init__(scope, construct_id)
        self.exception_queue = sqs.Queue(
            self,
            "ExceptionQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=EXCEPTION_RETENTION,
            removal_policy=RemovalPolicy.RETAIN,
        )
        NagSuppressions.add_resource_suppressions(
            self.exception_queue,
            [
                NagPackSuppression(
                    id="AwsSolutions-SQS3",
                    reason="This is the exception (dead-letter) queue itself; operators drain and "
                    "redrive it, so it has no DLQ of its own.",
                )
            ],
        )
        self.posting_queue = sqs.Queue(
            self,
            "PostingQueue",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=Duration.seconds(POSTING_TIMEOUT.to_seconds() * VISIBILITY_TIMEOUT_FACTOR),
            dead_letter_queue=sqs.DeadLetterQueue(queue=self.exception_queue, max_receive_count=MAX_RECEIVE_COUNT),
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.rule = events.Rule(
            self,
            "CanonicalEventsToPosting",
            event_bus=billing_bus,
            description="Canonical finance events that post documents to the ERP",
            event_pattern=events.EventPattern(source=["billing-sync"], detail_type=POSTED_DETAIL_TYPES),
            targets=[
                targets.SqsQueue(
                    self.posting_queue,
                    dead_letter_queue=self.exception_queue,
                    retry_attempts=BUS_DELIVERY_RETRY_ATTEMPTS,
                    max_event_age=BUS_DELIVERY_MAX_EVENT_AGE,
                )
            ],
        )

        # Exposed: the refund saga's task function builds from the same PostingSettings.
        self.environment: Mapping[str, str] = MappingProxyType(
            {
                "LINEAGE_TABLE_NAME": tables.lineage.table_name,
                "LEDGER_TABLE_NAME": tables.ledger.table_name,
                "MASTER_DATA_TABLE_NAME": tables.master_data.table_name,
                "WAITING_ROOM_TABLE_NAME": tables.waiting_room.table_name,
                "EXCEPTION_QUEUE_URL": self.exception_queue.queue_url,
                "EXCEPTION_TABLE_NAME": tables.exceptions.table_name,
                "POSTING_QUEUE_URL": self.posting_queue.queue_url,
                "WAIT_HORIZON_SECONDS": str(int(wait_horizon.to_seconds())),
                "CATALOGUE_REQUIRED": "true" if catalogue_required else "false",
                # The posting function parks a transient failure itself on the queue's last receive.
                "POSTING_MAX_RECEIVE_COUNT": str(MAX_RECEIVE_COUNT),
            }
        )
        self.stripe_api_key = self._stripe_api_key()
        # Only the two functions that plan postings read the Stripe API (payouts, a charge's settlement);
        # the refund saga's task function shares `environment` but neither the key's name nor its grant.
        stripe_api = {"STRIPE_API_KEY_SECRET_ARN": self.stripe_api_key.secret_arn, "STRIPE_API_BASE": STRIPE_API_BASE}
        self.function = function_factory.create(
            self,
            "PostToErpFunction",
            handler_module="post_to_erp",
            timeout=POSTING_TIMEOUT,
            description="Claims, validates, maps and posts canonical finance events to the ERP",
            environment={**self.environment, **stripe_api},
        )
        self.sweep_function = function_factory.create(
            self,
            "SweepWaitingRoomFunction",
            handler_module="sweep_waiting_room",
            timeout=Duration.minutes(5),
            description="Posts again events held for a dependency; parks those past the wait horizon",
            environment={**self.environment, **stripe_api},
        )
        for function in (self.function, self.sweep_function):
            self.stripe_api_key.grant_read(function)
            for table in tables.all:
                table.grant_read_write_data(function)
            self.exception_queue.grant_send_messages(function)
            self.posting_queue.grant_send_messages(function)
            assert function.role is not None
            NagSuppressions.add_resource_suppressions(
                function.role,
                [
                    NagPackSuppression(
                        id="AwsSolutions-IAM5",
                        reason="grant_read_write_data adds each table's indexes (index/*) so the function can "
                        "query the ledger's AppliedTo (an invoice's payments) and ByReference (the payment a refund "
                        "refunds) and the exception store's OpenByCategory; each wildcard covers the indexes of "
                        "that one table only.",
                        applies_to=[
                            {"regex": "/^Resource::<StateTablesLedger.*\\.Arn>/index/\\*$/g"},
                            {"regex": "/^Resource::<StateTablesExceptions.*\\.Arn>/index/\\*$/g"},
                        ],
                    )
                ],
                apply_to_children=True,
            )
        self.sweep_rule = events.Rule(
            self,
            "SweepWaitingRoomSchedule",
            description="Heals missed releases and enforces the wait horizon",
            schedule=events.Schedule.rate(SWEEP_INTERVAL),
            targets=[
                targets.LambdaFunction(
                    self.sweep_function,
                    dead_letter_queue=self.exception_queue,
                    retry_attempts=SWEEP_RETRY_ATTEMPTS,
                    # A sweep older than the interval is superseded by the next one.
                    max_event_age=SWEEP_INTERVAL,
                )
            ],
        )
        self.function.add_event_source(
            event_sources.SqsEventSource(
                self.posting_queue,
                batch_size=POSTING_BATCH_SIZE,
                report_batch_item_failures=True,
                max_concurrency=POSTING_MAX_CONCURRENCY,
            )
        )

    def _stripe_api_key(self) -> secretsmanager.Secret:
        # A restricted key with read access to balance, charges, payouts and invoices only. The placeholder
        # embeds the stack id (stable across deploys, so a deploy never overwrites the operator's key).
        secret = secretsmanager.Secret(
            self,
            "StripeApiRestrictedKey",
            description="Stripe restricted API key (rk_...), read-only: balance, charges, payouts, invoices",
            secret_string_value=SecretValue.unsafe_plain_text(Fn.sub("rk_placeholder_${AWS::StackId}")),
            removal_policy=RemovalPolicy.RETAIN,
        )
        NagSuppressions.add_resource_suppressions(
            secret,
            [
                NagPackSuppression(
                    id="AwsSolutions-SMG4",
                    reason="Stripe API keys are rolled in the Stripe dashboard (with an overlap period), not by "
                    "a rotation Lambda; the operator puts the new restricted key here.",
                )
            ],
        )
        return secret

    @property
    def functions(self) -> list[lambda_.Function]:
        return [self.function, self.sweep_function]
