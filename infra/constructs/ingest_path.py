"""What every ingest function (webhook or partner bus) needs: its environment and its grants."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagPackSuppression, NagSuppressions

from infra.constructs.posting_pipeline import grant_table_actions


@dataclass(frozen=True, kw_only=True)
class IngestPath:
    """The resources an ingest function writes to: archive, bus, lineage, exception queue and store."""

    billing_bus: events.IEventBus
    raw_archive: s3.IBucket
    lineage_table: dynamodb.ITable
    exception_queue: sqs.IQueue
    exception_table: dynamodb.ITable
    default_legal_entity: str

    def environment(self) -> dict[str, str]:
        return {
            "BILLING_BUS_NAME": self.billing_bus.event_bus_name,
            "RAW_ARCHIVE_BUCKET": self.raw_archive.bucket_name,
            "LINEAGE_TABLE_NAME": self.lineage_table.table_name,
            "EXCEPTION_QUEUE_URL": self.exception_queue.queue_url,
            "EXCEPTION_TABLE_NAME": self.exception_table.table_name,
            "DEFAULT_LEGAL_ENTITY": self.default_legal_entity,
        }

    def grant(self, function: lambda_.Function) -> None:
        """Least privilege: put raw payloads, put events, and what parking an exception needs."""
        self.raw_archive.grant_put(function)
        self.billing_bus.grant_put_events_to(function)
        self.grant_parking(function)
        assert function.role is not None
        NagSuppressions.add_resource_suppressions(
            function.role,
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
                ),
            ],
            apply_to_children=True,
        )

    def grant_parking(self, function: lambda_.Function) -> None:
        """Only what parking an exception needs: write lineage, send to the exception queue, index it.

        Parking writes one item per exception (PutItem refreshes it); ingest never reads, closes or lists.
        """
        grant_table_actions(self.lineage_table, function, "dynamodb:PutItem", "dynamodb:UpdateItem")
        self.exception_queue.grant_send_messages(function)
        grant_table_actions(self.exception_table, function, "dynamodb:PutItem")
        assert function.role is not None
        NagSuppressions.add_resource_suppressions(
            function.role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="Table.grant adds the exception table's indexes (index/*) to the PutItem statement "
                    "because the table has the OpenByCategory index; PutItem has no effect on an index ARN and "
                    "the wildcard covers indexes of that one table only.",
                    applies_to=[{"regex": "/^Resource::<StateTablesExceptions.*\\.Arn>/index/\\*$/g"}],
                ),
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="Writing to a table under a customer managed key, and sending to a queue under one, takes "
                    "kms:GenerateDataKey* and kms:ReEncrypt* (the data-key and re-encrypt families); the statement "
                    "names this stack's keys only.",
                    applies_to=["Action::kms:GenerateDataKey*", "Action::kms:ReEncrypt*"],
                ),
            ],
            apply_to_children=True,
        )


def deny_other_publishers(bus: events.EventBus, *, roles: Sequence[iam.IRole]) -> None:
    """Only `roles` may put events on `bus`, whatever else IAM allows in the account.

    What is on the bus is taken as verified (signatures are checked only at ingest), so an event must come
    from an ingest function or from an operator replaying the raw archive.
    """
    bus.add_to_resource_policy(
        iam.PolicyStatement(
            sid="OnlyIngestAndOperatorRolesPutEvents",
            effect=iam.Effect.DENY,
            principals=[iam.StarPrincipal()],
            actions=["events:PutEvents"],
            resources=[bus.event_bus_arn],
            conditions={"ArnNotEquals": {"aws:PrincipalArn": [role.role_arn for role in roles]}},
        )
    )
