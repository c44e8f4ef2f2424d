from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from aws_cdk import Duration, Fn, RemovalPolicy, SecretValue
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from billing_sync.domain.posting.rules import POSTED_EVENT_TYPES
from infra.constructs.keys import DataKeys
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
# SQS's maximum: a sender asks KMS for a data key once a day, not per message.
DATA_KEY_REUSE = Duration.hours(24)

# What each function calls on each table (functions/billing_sync/erp/ledger.py, state/dynamo.py, state/rates.py,
# state/periods.py, aws/exception_store.py). The ledger is append-only for posting: documents are created with a
# conditional put and read by key or index; nothing deletes, updates or scans it.
LEDGER_POSTING_ACTIONS = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query")
# Claims, checkpoints and outcomes are conditional updates of one item; reads are by key.
LINEAGE_POSTING_ACTIONS = ("dynamodb:GetItem", "dynamodb:UpdateItem")
# Customers and catalogue records upserted by key; rates read in batches; the posting calendar by key.
MASTER_DATA_POSTING_ACTIONS = ("dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:PutItem")
# Held by name (put), released by name (query, delete); only the sweep lists the whole room.
WAITING_ROOM_POSTING_ACTIONS = ("dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:Query")
WAITING_ROOM_SWEEP_ACTIONS = (*WAITING_ROOM_POSTING_ACTIONS, "dynamodb:Scan")
# Parking indexes one item per exception; closing and listing are the operators'.
EXCEPTIONS_PARKING_ACTIONS = ("dynamodb:PutItem",)
_TABLE_READ_ACTIONS = frozenset(
    {"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:DescribeTable"}
)


def grant_table_actions(table: dynamodb.ITable, grantee: iam.IGrantable, *actions: str) -> None:
    """`table.grant` with the table key's use: `Table.grant` grants the table actions only, and a table
    encrypted with a customer managed key refuses a caller who may not use the key."""
    table.grant(grantee, *actions)
    key = table.encryption_key
    if key is not None:
        writes = ("kms:Encrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*") if set(actions) - _TABLE_READ_ACTIONS else ()
        key.grant(grantee, "kms:Decrypt", "kms:DescribeKey", *writes)


def deny_other_senders(
    queue: sqs.Queue, *, sid: str, roles: Sequence[iam.IRole], rules: Sequence[events.IRule]
) -> None:
    """Only `roles` and EventBridge on behalf of `rules` may send to `queue`, whatever else IAM allows.

    One Deny with both keys negated: a role's request (its own, or a Lambda destination's or a schedule's
    made with it) carries the role's ARN, an EventBridge delivery carries the rule's ARN and no role, and the
    Deny applies only when neither names an admitted sender. SQS's own redrive from a source queue into its
    dead-letter queue is not a SendMessage and is not affected.
    """
    queue.add_to_resource_policy(
        iam.PolicyStatement(
            sid=sid,
            effect=iam.Effect.DENY,
            principals=[iam.StarPrincipal()],
            actions=["sqs:SendMessage"],
            resources=[queue.queue_arn],
            conditions={
                "ArnNotEquals": {
                    "aws:PrincipalArn": [role.role_arn for role in roles],
                    "aws:SourceArn": [rule.rule_arn for rule in rules],
                }
            },
        )
    )


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
        keys: DataKeys,
        wait_horizon: Duration = DEFAULT_WAIT_HORIZON,
        catalogue_required: bool = True,
    ) -> None:
        super().__init__(scope, construct_id)
        self._keys = keys
        self.exception_queue = sqs.Queue(
            self,
            "ExceptionQueue",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=keys.messaging,
            data_key_reuse=DATA_KEY_REUSE,
            enforce_ssl=True,
            retention_period=EXCEPTION_RETENTION,
            removal_policy=RemovalPolicy.RETAIN,
        )
        NagSuppressions.add_resource_suppressions(
            self.exception_queue,
            [
                NagPackSuppression(
                    id=rule,
                    reason="This is the exception (dead-letter) queue itself; operators drain and "
                    "redrive it, so it has no DLQ of its own.",
                )
                for rule in ("AwsSolutions-SQS3", "Serverless-SQSRedrivePolicy")
            ],
        )
        self.posting_queue = sqs.Queue(
            self,
            "PostingQueue",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=keys.messaging,
            data_key_reuse=DATA_KEY_REUSE,
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
                # The WaitingRelease function on the ledger stream releases what waits for each document.
                "RELEASE_ON_LEDGER_STREAM": "true",
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
        for function, waiting_room_actions in (
            (self.function, WAITING_ROOM_POSTING_ACTIONS),
            (self.sweep_function, WAITING_ROOM_SWEEP_ACTIONS),
        ):
            self.stripe_api_key.grant_read(function)
            grant_table_actions(tables.ledger, function, *LEDGER_POSTING_ACTIONS)
            grant_table_actions(tables.lineage, function, *LINEAGE_POSTING_ACTIONS)
            grant_table_actions(tables.master_data, function, *MASTER_DATA_POSTING_ACTIONS)
            grant_table_actions(tables.waiting_room, function, *waiting_room_actions)
            grant_table_actions(tables.exceptions, function, *EXCEPTIONS_PARKING_ACTIONS)
            self.exception_queue.grant_send_messages(function)
            self.posting_queue.grant_send_messages(function)
            assert function.role is not None
            suppress_per_action_grant_findings(function.role)
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
        NagSuppressions.add_resource_suppressions(
            self.function,
            [
                NagPackSuppression(
                    id="Serverless-LambdaEventSourceMappingDestination",
                    reason="An SQS event source mapping takes no on-failure destination; the posting queue's "
                    "redrive policy moves a record that failed every receive to the exception queue, and the "
                    "function parks a permanent failure itself.",
                )
            ],
            apply_to_children=True,
        )

    def _stripe_api_key(self) -> secretsmanager.Secret:
        # A restricted key with read access to balance, charges, payouts and invoices only. The placeholder
        # embeds the stack id (stable across deploys, so a deploy never overwrites the operator's key).
        secret = secretsmanager.Secret(
            self,
            "StripeApiRestrictedKey",
            description="Stripe restricted API key (rk_...), read-only: balance, charges, payouts, invoices",
            secret_string_value=SecretValue.unsafe_plain_text(Fn.sub("rk_placeholder_${AWS::StackId}")),
            encryption_key=self._keys.data,
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

    def admit_senders(
        self,
        *,
        posting_queue: Sequence[iam.IRole],
        exception_queue: Sequence[iam.IRole],
        exception_queue_rules: Sequence[events.IRule],
    ) -> None:
        """Closes both queues to every sender but these (called once every construct that sends exists).

        The posting queue takes the posting rule's deliveries and the roles that requeue (posting, sweep, the
        refund saga, operators). The exception queue takes the dead letters of `exception_queue_rules` and the
        roles that park or dead-letter to it (their functions, Lambda destinations and schedules).
        """
        deny_other_senders(
            self.posting_queue, sid="OnlyThePostingRuleAndRequeuingRoles", roles=posting_queue, rules=[self.rule]
        )
        deny_other_senders(
            self.exception_queue,
            sid="OnlyParkingRolesAndDeadLetteringRules",
            roles=exception_queue,
            rules=exception_queue_rules,
        )


def suppress_per_action_grant_findings(role: iam.IRole) -> None:
    NagSuppressions.add_resource_suppressions(
        role,
        [
            NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason="Table.grant adds each table's indexes (index/*) so the function can query the ledger's "
                "AppliedTo (an invoice's payments) and ByReference (the payment a refund refunds); each wildcard "
                "covers the indexes of one table only, and the actions are the per-action grant's.",
                applies_to=[{"regex": "/^Resource::<StateTables[A-Za-z]+[0-9A-F]{8}\\.Arn>/index/\\*$/g"}],
            ),
            NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason="Using a customer managed key for a table or an encrypted queue takes kms:GenerateDataKey* "
                "and kms:ReEncrypt* (the data-key and re-encrypt families); the statement names this stack's key "
                "only.",
                applies_to=["Action::kms:GenerateDataKey*", "Action::kms:ReEncrypt*"],
            ),
        ],
        apply_to_children=True,
    )
