from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, Stack, TimeZone
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

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
        tables.ledger.grant_read_write_data(self.function)
        # Releases are finished like every document: the calendar (closed periods) and the rate table are
        # master data.
        tables.master_data.grant_read_data(self.function)
        assert self.function.role is not None
        NagSuppressions.add_resource_suppressions(
            self.function.role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="grant_read_write_data adds the ledger's indexes (index/*) so the job can query "
                    "AppliedTo (an invoice's credit memos, voids and releases); the wildcard covers the "
                    "indexes of the ledger only.",
                    applies_to=[{"regex": "/^Resource::<StateTablesLedger.*\\.Arn>/index/\\*$/g"}],
                )
            ],
            apply_to_children=True,
        )

        # Its own role rather than the stack-wide one LambdaInvoke would share among targets: this schedule
        # (of this account's default group) may invoke this function and dead-letter, nothing else.
        stack = Stack.of(self)
        self.schedule_role = iam.Role(
            self,
            "RecognizeRevenueScheduleRole",
            assumed_by=iam.ServicePrincipal(
                "scheduler.amazonaws.com",
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnEquals": {
                        "aws:SourceArn": f"arn:{stack.partition}:scheduler:{stack.region}:{stack.account}"
                        ":schedule-group/default"
                    },
                },
            ),
            description="Lets the revenue recognition schedule invoke its function and dead-letter",
        )
        self.schedule = scheduler.Schedule(
            self,
            "RecognizeRevenueSchedule",
            description="Releases last month's deferred revenue on the 1st of each month",
            schedule=scheduler.ScheduleExpression.expression(schedule_expression, TimeZone.ETC_UTC),
            time_window=scheduler.TimeWindow.off(),
            target=scheduler_targets.LambdaInvoke(
                self.function,
                # No `through`: the handler runs through the last day of the previous month. The schedule and
                # the time it fired are what an operator finds in the exception queue if delivery fails.
                input=scheduler.ScheduleTargetInput.from_object(
                    {
                        "schedule_arn": scheduler.ContextAttribute.schedule_arn,
                        "scheduled_time": scheduler.ContextAttribute.scheduled_time,
                    }
                ),
                dead_letter_queue=exception_queue,
                retry_attempts=SCHEDULE_RETRY_ATTEMPTS,
                max_event_age=SCHEDULE_MAX_EVENT_AGE,
                role=self.schedule_role,
            ),
        )
        NagSuppressions.add_resource_suppressions(
            self.schedule_role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="LambdaInvoke's grant also allows the function's versions and aliases (<arn>:*), "
                    "the one function the schedule runs.",
                    applies_to=[
                        {"regex": "/^Resource::<RevenueRecognitionRecognizeRevenueFunction[0-9A-F]+\\.Arn>:\\*$/g"}
                    ],
                )
            ],
            apply_to_children=True,
        )
