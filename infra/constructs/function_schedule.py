"""A function on an EventBridge Scheduler schedule, with a role that may invoke only that function."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aws_cdk import Duration, Stack, TimeZone
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct


@dataclass(frozen=True)
class ScheduledRun:
    name: str  # `<name>ScheduleRole` and `<name>Schedule` are the construct ids
    expression: str  # an EventBridge Scheduler expression, in UTC
    description: str
    role_description: str
    function_id_prefix: str  # the function's logical id without its hash, for the nag suppression
    payload: Mapping[str, Any]  # the input: scheduler.ContextAttribute values allowed
    retry_attempts: int
    max_event_age: Duration


def schedule_function(
    scope: Construct, function: lambda_.IFunction, run: ScheduledRun, *, dead_letter_queue: sqs.IQueue
) -> tuple[iam.Role, scheduler.Schedule]:
    """The schedule and its own role in `scope`, rather than the stack-wide role LambdaInvoke would share
    among targets: this schedule (of this account's default group) may invoke this function and dead-letter,
    nothing else."""
    stack = Stack.of(scope)
    role = iam.Role(
        scope,
        f"{run.name}ScheduleRole",
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
        description=run.role_description,
    )
    schedule = scheduler.Schedule(
        scope,
        f"{run.name}Schedule",
        description=run.description,
        schedule=scheduler.ScheduleExpression.expression(run.expression, TimeZone.ETC_UTC),
        time_window=scheduler.TimeWindow.off(),
        target=scheduler_targets.LambdaInvoke(
            function,
            input=scheduler.ScheduleTargetInput.from_object(dict(run.payload)),
            dead_letter_queue=dead_letter_queue,
            retry_attempts=run.retry_attempts,
            max_event_age=run.max_event_age,
            role=role,
        ),
    )
    NagSuppressions.add_resource_suppressions(
        role,
        [
            NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason="LambdaInvoke's grant also allows the function's versions and aliases (<arn>:*), "
                "the one function the schedule runs.",
                applies_to=[{"regex": f"/^Resource::<{run.function_id_prefix}[0-9A-F]+\\.Arn>:\\*$/g"}],
            )
        ],
        apply_to_children=True,
    )
    return role, schedule
