from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from infra.constructs.posting_pipeline import grant_table_actions
from infra.constructs.state_tables import StateTables
from infra.function_factory import FunctionFactory

BATCH_SIZE = 100
# Each attempt retries from the failed record; a batch that keeps failing is bisected down to the record,
# then its metadata (shard, sequence numbers) goes to the exception queue and the shard moves on.
STREAM_RETRY_ATTEMPTS = 10
# The stream keeps records 24 h: give up well before, so the on-failure record can still be replayed.
STREAM_MAX_RECORD_AGE = Duration.hours(12)
BALANCES_TIMEOUT = Duration.seconds(60)


def inserted_documents(ledger: dynamodb.ITable, exception_queue: sqs.IQueue) -> sources.DynamoEventSource:
    """The ledger's stream as each of its consumers reads it: inserted documents only (customer upserts and
    anything else in the ledger table never invoke them), retried from the failed record, bisected down to
    it, then parked in the exception queue."""
    return sources.DynamoEventSource(
        ledger,
        starting_position=lambda_.StartingPosition.TRIM_HORIZON,
        batch_size=BATCH_SIZE,
        bisect_batch_on_error=True,
        report_batch_item_failures=True,
        retry_attempts=STREAM_RETRY_ATTEMPTS,
        max_record_age=STREAM_MAX_RECORD_AGE,
        on_failure=sources.SqsDlq(exception_queue),
        filters=[
            lambda_.FilterCriteria.filter(
                {
                    "eventName": lambda_.FilterRule.is_equal("INSERT"),
                    "dynamodb": {"Keys": {"pk": {"S": lambda_.FilterRule.begins_with("DOC#")}}},
                }
            )
        ],
    )


class RunningBalances(Construct):
    """The ledger table's stream (new images of inserted documents) -> the balances function -> the balances table.

    The posting path writes nothing more per document: the stream carries each new document, and the
    function applies it once (a conditional marker in the same transaction). The function reads only the
    stream and writes only the balances table; failures are bisected, then parked in the exception queue.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function_factory: FunctionFactory,
        tables: StateTables,
        exception_queue: sqs.IQueue,
        environment: Mapping[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.environment = {**environment, "BALANCES_TABLE_NAME": tables.balances.table_name}
        self.function = function_factory.create(
            self,
            "MaintainBalancesFunction",
            handler_module="maintain_balances",
            timeout=BALANCES_TIMEOUT,
            description="Adds each posted ledger document to the running balances (ledger stream)",
            environment=dict(self.environment),
        )
        # One transaction per document: a conditional Put of its applied-marker and an Update per balance.
        grant_table_actions(
            tables.balances,
            self.function,
            "dynamodb:GetItem",
            "dynamodb:Query",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
        )
        self.event_source = inserted_documents(tables.ledger, exception_queue)
        self.function.add_event_source(self.event_source)
        assert self.function.role is not None
        NagSuppressions.add_resource_suppressions(
            self.function.role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="The balances table grant covers its indexes (index/*), and the "
                    "stream grant (dynamodb:ListStreams) has no resource scope in IAM.",
                    applies_to=[
                        {"regex": "/^Resource::<StateTablesBalances.*\\.Arn>/index/\\*$/g"},
                        "Resource::*",
                    ],
                )
            ],
            apply_to_children=True,
        )


RELEASE_TIMEOUT = Duration.seconds(60)


class WaitingRelease(Construct):
    """The ledger table's stream (inserted documents) -> the release function -> the events held for each
    document go back to the posting queue, so the posting path asks the waiting room nothing after a document.

    The stream record exists only after the document's write, so a waiter that held before it is found and
    one that holds after it finds the document when it looks again; failures are bisected, then parked.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function_factory: FunctionFactory,
        tables: StateTables,
        posting_queue: sqs.IQueue,
        exception_queue: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = function_factory.create(
            self,
            "ReleaseWaitingFunction",
            handler_module="release_waiting",
            timeout=RELEASE_TIMEOUT,
            description="Requeues the events held for each document the ledger stream shows created",
            environment={
                "WAITING_ROOM_TABLE_NAME": tables.waiting_room.table_name,
                "POSTING_QUEUE_URL": posting_queue.queue_url,
            },
        )
        # Released by name: a query per key, a delete per released event.
        grant_table_actions(tables.waiting_room, self.function, "dynamodb:Query", "dynamodb:DeleteItem")
        posting_queue.grant_send_messages(self.function)
        self.function.add_event_source(inserted_documents(tables.ledger, exception_queue))
        assert self.function.role is not None
        NagSuppressions.add_resource_suppressions(
            self.function.role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="The stream grant (dynamodb:ListStreams) has no resource scope in IAM.",
                    applies_to=["Resource::*"],
                )
            ],
            apply_to_children=True,
        )
