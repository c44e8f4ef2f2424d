"""Where each function's failures go once retries are spent, so that none is only a line in a log.

Functions invoked asynchronously (by a schedule, a rule or a destination) keep the event that failed every
retry in `FailedInvocations`, an encrypted queue an alarm watches, through an on-failure destination: it
records the error with the event, which a dead-letter queue does not, so no function has both. The others
keep their failures elsewhere, named in `kept_elsewhere`: functions invoked synchronously (API Gateway, the
SQS and stream event source mappings, Step Functions) hand the error to their caller, which owns the retry
and its own dead-letter path, and an on-failure destination that parks an event as an exception already
does what a dead-letter queue would.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_destinations as destinations
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

# As long as SQS keeps anything: an operator has two weeks to read why a scheduled run failed.
RETENTION = Duration.days(14)
# Lambda's own default, stated: two more attempts before the event goes to the dead-letter queue.
ASYNC_RETRY_ATTEMPTS = 2


class InvocationFailures(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        asynchronous: Mapping[str, lambda_.IFunction],
        kept_elsewhere: Mapping[str, tuple[lambda_.IFunction, str]],
        key: kms.IKey,
        alarm_topic: sns.ITopic,
    ) -> None:
        """`asynchronous`: name -> function; `kept_elsewhere`: name -> (function, where its failures go)."""
        super().__init__(scope, construct_id)
        self.queue = sqs.Queue(
            self,
            "FailedInvocations",
            encryption=sqs.QueueEncryption.KMS,
            encryption_master_key=key,
            data_key_reuse=Duration.hours(24),
            enforce_ssl=True,
            retention_period=RETENTION,
            removal_policy=RemovalPolicy.RETAIN,
        )
        NagSuppressions.add_resource_suppressions(
            self.queue,
            [
                NagPackSuppression(
                    id=rule,
                    reason="This queue is itself the dead-letter queue of the asynchronously invoked functions; "
                    "an operator reads it after the alarm, so it has no dead-letter queue of its own.",
                )
                for rule in ("AwsSolutions-SQS3", "Serverless-SQSRedrivePolicy")
            ],
        )
        for function in asynchronous.values():
            function.configure_async_invoke(
                retry_attempts=ASYNC_RETRY_ATTEMPTS, on_failure=destinations.SqsDestination(self.queue)
            )
            NagSuppressions.add_resource_suppressions(
                function,
                [
                    NagPackSuppression(
                        id="Serverless-LambdaDLQ",
                        reason="Its on-failure destination keeps an event that failed every retry in "
                        "FailedInvocations with the error; a dead-letter queue as well would keep it twice.",
                    )
                ],
            )
        for function, where_failures_go in kept_elsewhere.values():
            NagSuppressions.add_resource_suppressions(
                function,
                [NagPackSuppression(id="Serverless-LambdaDLQ", reason=f"No dead-letter queue: {where_failures_go}")],
            )
        alarm = cloudwatch.Alarm(
            self,
            "FailedInvocationsAlarm",
            alarm_description="A scheduled or event-driven function failed every retry; read FailedInvocations.",
            metric=self.queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(5), statistic="Maximum"
            ),
            threshold=0,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(alarm_topic))
