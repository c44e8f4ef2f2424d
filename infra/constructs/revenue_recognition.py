from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from infra.constructs.function_schedule import ScheduledRun, schedule_function
from infra.constructs.posting_pipeline import grant_table_actions
from infra.constructs.state_tables import StateTables
from infra.function_factory import FunctionFactory

# The job walks every posted invoice of the ledger once a month.
RECOGNITION_TIMEOUT = Duration.minutes(5)
# Scheduler retries a delivery Lambda refuses (throttling, a deleted function) for up to a day; then the
# attempt goes to the exception queue. Redelivering late is harmless: released months are found, not reposted.
SCHEDULE_RETRY_ATTEMPTS = 8
SCHEDULE_MAX_EVENT_AGE = Duration.hours(24)


class RevenueRecognition(Construct):
    """The monthly revenue recognition job: an EventBridge Scheduler schedule invoking one function.

    The function runs on the posting function's settings (the same environment and bundled account
    mapping) and may read and write only the ledger: it lists posted documents and creates recognition
    documents. The schedule's role may invoke only that function and send to the exception queue (its
    dead-letter queue). Scheduler invokes Lambda asynchronously, so the DLQ catches failed deliveries;
    a run that fails inside the function is retried twice by Lambda, pages through the function's error
    alarm, and is caught up by the next run (or an invocation with `{"through": "YYYY-MM-DD"}`).
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
        schedule_expression: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = function_factory.create(
            self,
            "RecognizeRevenueFunction",
            handler_module="recognize_revenue",
            timeout=RECOGNITION_TIMEOUT,
            description="Releases deferred revenue for every month that has ended (monthly schedule)",
            environment=dict(environment),
        )
        # Append-only like posting: releases are new documents (conditional puts); it scans for invoices with
        # deferred revenue and queries AppliedTo. No update, no delete.
        grant_table_actions(
            tables.ledger, self.function, "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:Scan"
        )
        # Releases are finished like every document: the calendar (closed periods) and the rate table are
        # master data.
        tables.master_data.grant_read_data(self.function)
        assert self.function.role is not None
        NagSuppressions.add_resource_suppressions(
            self.function.role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="The ledger grant covers its indexes (index/*) so the job can query "
                    "AppliedTo (an invoice's credit memos, voids and releases); the wildcard covers the "
                    "indexes of the ledger only.",
                    applies_to=[{"regex": "/^Resource::<StateTablesLedger.*\\.Arn>/index/\\*$/g"}],
                )
            ],
            apply_to_children=True,
        )

        # No `through`: the handler runs through the last day of the previous month. The schedule and the time
        # it fired are what an operator finds in the exception queue if delivery fails.
        self.schedule_role, self.schedule = schedule_function(
            self,
            self.function,
            ScheduledRun(
                name="RecognizeRevenue",
                expression=schedule_expression,
                description="Releases last month's deferred revenue on the 1st of each month",
                role_description="Lets the revenue recognition schedule invoke its function and dead-letter",
                function_id_prefix="RevenueRecognitionRecognizeRevenueFunction",
                payload={
                    "schedule_arn": scheduler.ContextAttribute.schedule_arn,
                    "scheduled_time": scheduler.ContextAttribute.scheduled_time,
                },
                retry_attempts=SCHEDULE_RETRY_ATTEMPTS,
                max_event_age=SCHEDULE_MAX_EVENT_AGE,
            ),
            dead_letter_queue=exception_queue,
        )
