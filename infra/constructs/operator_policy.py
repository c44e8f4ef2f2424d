"""What the `billing-sync` operator CLI may do against this stack, as a managed policy and a role that has it.

The actions are exactly the CLI's calls (billing_sync_ops/ops/), each on this stack's resources only:

- target: cloudformation:DescribeStacks (outputs) and DescribeStackResources (reconcile finds the Stripe key);
- dlq list/show/redrive/purge: the exception store (query the open index, get, scan by message id, close) and
  lineage (get, note the redrive); receive, delete and release exception queue messages and read its depth;
  resend a posting exception to the posting queue, or re-normalise an ingest one from the raw archive onto the bus;
- replay: list and read the raw archive, read lineage, put events on the bus;
- rates load/release: batch-write rates to master data, scan and delete the waiting room, requeue for posting;
- periods close/reopen: get and update the calendar item in master data;
- fx revalue, revenue recognise: read the ledger (scan, query, get) and append documents to it (put);
  rates and the calendar from master data;
- ledger trial-balance: query the running balances (or scan the ledger);
- lineage: get lineage, read the ledger and the reconciliation reports;
- reconcile: read the Stripe restricted key, the ledger, lineage (scan) and the raw archive.

Nothing here deletes or updates a ledger document, reads the webhook signing secret, or changes a resource.
The keys are usable only through the services that hold the data (kms:ViaService).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from infra.constructs.state_tables import StateTables

OPERATOR_SESSION = Duration.hours(1)
# The services through which the CLI reaches encrypted data; the keys are usable through nothing else.
KEY_VIA_SERVICES = ("dynamodb", "sqs", "s3", "secretsmanager")
TABLE_ACTIONS: dict[str, tuple[str, ...]] = {
    "ledger": ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:PutItem"),
    "lineage": ("dynamodb:GetItem", "dynamodb:Scan", "dynamodb:UpdateItem"),
    "master_data": (
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:UpdateItem",
    ),
    "waiting_room": ("dynamodb:Scan", "dynamodb:DeleteItem"),
    "exceptions": ("dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:UpdateItem"),
    "balances": ("dynamodb:GetItem", "dynamodb:Query"),
}
EXCEPTION_QUEUE_ACTIONS = (
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:GetQueueAttributes",
)
POSTING_QUEUE_ACTIONS = ("sqs:SendMessage",)


@dataclass(frozen=True, kw_only=True)
class OperatedResources:
    tables: StateTables
    posting_queue: sqs.IQueue
    exception_queue: sqs.IQueue
    billing_bus: events.IEventBus
    raw_archive: s3.IBucket
    reports_bucket: s3.IBucket
    stripe_api_key: secretsmanager.ISecret
    keys: Sequence[kms.IKey]


class OperatorAccess(Construct):
    """`policy`: the CLI's permissions (attach it to your own operator principals if you prefer);
    `role`: assumable by principals of this account that IAM allows to assume it, with `policy` only. The queue
    and bus resource policies admit this role, so sends and replays go through it."""

    def __init__(self, scope: Construct, construct_id: str, *, resources: OperatedResources) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.policy = iam.ManagedPolicy(
            self,
            "OperatorPolicy",
            description="billing-sync operator CLI: exception queue, replay, rates, periods, recognition, reconcile",
            statements=[
                iam.PolicyStatement(
                    sid="ReadTheStack",
                    actions=["cloudformation:DescribeStacks", "cloudformation:DescribeStackResources"],
                    resources=[
                        stack.format_arn(
                            service="cloudformation", resource="stack", resource_name=f"{stack.stack_name}/*"
                        )
                    ],
                ),
                *self._table_statements(resources.tables),
                iam.PolicyStatement(
                    sid="DrainAndRedriveTheExceptionQueue",
                    actions=list(EXCEPTION_QUEUE_ACTIONS),
                    resources=[resources.exception_queue.queue_arn],
                ),
                iam.PolicyStatement(
                    sid="RequeueForPosting",
                    actions=list(POSTING_QUEUE_ACTIONS),
                    resources=[resources.posting_queue.queue_arn],
                ),
                iam.PolicyStatement(
                    sid="ReplayOntoTheBillingBus",
                    actions=["events:PutEvents"],
                    resources=[resources.billing_bus.event_bus_arn],
                ),
                iam.PolicyStatement(
                    sid="ListTheArchiveAndReports",
                    actions=["s3:ListBucket"],
                    resources=[resources.raw_archive.bucket_arn, resources.reports_bucket.bucket_arn],
                ),
                iam.PolicyStatement(
                    sid="ReadTheArchiveAndReports",
                    # A resend keeps every body as a version; lineage names the one each outcome came from.
                    actions=["s3:GetObject", "s3:GetObjectVersion"],
                    resources=[
                        resources.raw_archive.arn_for_objects("*"),
                        resources.reports_bucket.arn_for_objects("*"),
                    ],
                ),
                iam.PolicyStatement(
                    sid="ReadTheStripeRestrictedKey",
                    actions=["secretsmanager:GetSecretValue"],
                    resources=[resources.stripe_api_key.secret_arn],
                ),
                iam.PolicyStatement(
                    sid="UseTheKeysThroughTheirServices",
                    actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"],
                    resources=[key.key_arn for key in resources.keys],
                    conditions={
                        "StringEquals": {
                            "kms:ViaService": [
                                f"{service}.{stack.region}.amazonaws.com" for service in KEY_VIA_SERVICES
                            ]
                        }
                    },
                ),
            ],
        )
        self.role = iam.Role(
            self,
            "OperatorRole",
            assumed_by=iam.AccountPrincipal(stack.account),
            description="Runs the billing-sync operator CLI against this stack",
            managed_policies=[self.policy],
            max_session_duration=OPERATOR_SESSION,
        )
        NagSuppressions.add_resource_suppressions(
            self.policy,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="Object ARNs of the raw archive and reports buckets (objects are keyed per event and per "
                    "run), the indexes of the exception store and ledger (the open-by-category and applied-to "
                    "queries), and the stack's own ARN with its id suffix: each wildcard stays inside one resource "
                    "of this stack.",
                    applies_to=[
                        {"regex": "/^Resource::<RawArchiveBucket.*\\.Arn>/\\*$/g"},
                        {"regex": "/^Resource::<Reconciliation.*\\.Arn>/\\*$/g"},
                        {"regex": "/^Resource::<StateTables[A-Za-z]+[0-9A-F]{8}\\.Arn>/index/\\*$/g"},
                        {"regex": "/^Resource::arn:<AWS::Partition>:cloudformation:.*/\\*$/g"},
                    ],
                )
            ],
        )

    @staticmethod
    def _table_statements(tables: StateTables) -> list[iam.PolicyStatement]:
        by_name: dict[str, dynamodb.ITable] = {
            "ledger": tables.ledger,
            "lineage": tables.lineage,
            "master_data": tables.master_data,
            "waiting_room": tables.waiting_room,
            "exceptions": tables.exceptions,
            "balances": tables.balances,
        }
        return [
            iam.PolicyStatement(
                sid=f"Table{''.join(part.title() for part in name.split('_'))}",
                actions=list(TABLE_ACTIONS[name]),
                resources=[table.table_arn, f"{table.table_arn}/index/*"],
            )
            for name, table in by_name.items()
        ]
