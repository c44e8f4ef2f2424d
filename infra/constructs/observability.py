from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from constructs import Construct


class Observability(Construct):
    """Alarms an operator acts on: anything in the exception queue, any function error."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        exception_queue: sqs.IQueue,
        functions: dict[str, lambda_.IFunction],
    ) -> None:
        super().__init__(scope, construct_id)
        self.exception_queue_alarm = cloudwatch.Alarm(
            self,
            "ExceptionQueueNotEmpty",
            alarm_description="Events are waiting in the exception queue: inspect, fix, redrive",
            metric=exception_queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic=cloudwatch.Stats.MAXIMUM
            ),
            threshold=1,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.function_error_alarms = {
            name: cloudwatch.Alarm(
                self,
                f"{name}Errors",
                alarm_description=f"{name} raised unhandled errors",
                metric=function.metric_errors(period=Duration.minutes(5), statistic=cloudwatch.Stats.SUM),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            for name, function in functions.items()
        }
