"""Alarms an operator acts on, all sent to one encrypted SNS topic.

What they watch: the exception queue (anything parked, anything parked too long), posting item failures,
webhook refusals and server errors, every function's errors and throttles, stream consumers' lag, every
rule's permanently failed deliveries, and every state machine's failed and timed-out executions.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, Fn, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

PERIOD = Duration.minutes(5)
# Parked events stay 14 days in the exception queue: page well before SQS drops the oldest one.
EXCEPTION_MAX_AGE = Duration.days(4)
# The metric the posting handler emits (Powertools EMF) once per batch item it reports as failed.
POSTING_ITEM_FAILURES_METRIC = "PostingItemFailures"
# Powertools adds the service name as the `service` dimension of every metric it emits.
SERVICE_DIMENSION = "service"
# Item failures in two of three periods: an ERP outage or an event failing every receive, not one retry.
POSTING_FAILURE_PERIODS = 3
POSTING_FAILURE_DATAPOINTS = 2
# Stripe sends only signed POSTs: a burst of 4XX is someone probing the endpoint or a rotated secret.
WEBHOOK_CLIENT_ERROR_THRESHOLD = 20
# Running balances more than this behind the ledger: reports read stale figures.
STREAM_MAX_LAG = Duration.minutes(15)


@dataclass(frozen=True, kw_only=True)
class WatchedRule:
    """An EventBridge rule whose permanently failed deliveries page someone; no bus name means the default bus."""

    rule: events.IRule
    event_bus_name: str | None = None

    def dimensions(self) -> dict[str, str]:
        if self.event_bus_name is None:
            return {"RuleName": self.rule.rule_name}
        # On a custom or partner bus, EventBridge publishes rule metrics with both dimensions, and a rule's
        # Ref there is "<bus name>|<rule name>".
        return {"EventBusName": self.event_bus_name, "RuleName": Fn.select(1, Fn.split("|", self.rule.rule_name))}


class Observability(Construct):
    """Every alarm notifies `AlarmTopic` (encrypted with `topic_key`, TLS only); `alarm_email` subscribes an
    address to it. The key's policy must let cloudwatch.amazonaws.com decrypt and generate data keys."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        exception_queue: sqs.IQueue,
        functions: dict[str, lambda_.IFunction],
        rest_api: apigateway.RestApiBase,
        rules: dict[str, WatchedRule],
        state_machines: dict[str, sfn.IStateMachine],
        metrics_namespace: str,
        service_name: str,
        topic_key: kms.IKey,
        alarm_email: str | None = None,
        stream_consumers: dict[str, lambda_.IFunction] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = self._alarm_topic(topic_key)
        if alarm_email:
            subscription = self.topic.add_subscription(subscriptions.EmailSubscription(alarm_email))
            NagSuppressions.add_resource_suppressions(
                subscription,
                [
                    NagPackSuppression(
                        id="Serverless-SNSRedrivePolicy",
                        reason="A notification, not the record: an alarm stays in ALARM and in CloudWatch's alarm "
                        "history whether or not the email arrives, and an email that bounces has no body worth "
                        "keeping in a dead-letter queue.",
                    )
                ],
            )
        self._action = cloudwatch_actions.SnsAction(self.topic)

        self.exception_queue_alarm = self._alarm(
            "ExceptionQueueNotEmpty",
            "Events are waiting in the exception queue: inspect, fix, redrive",
            exception_queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic=cloudwatch.Stats.MAXIMUM
            ),
            threshold=1,
        )
        self.exception_age_alarm = self._alarm(
            "ExceptionQueueOldestMessage",
            f"An event has been parked for more than {EXCEPTION_MAX_AGE.to_days():.0f} days; "
            "the exception queue drops it after 14",
            exception_queue.metric_approximate_age_of_oldest_message(
                period=Duration.minutes(15), statistic=cloudwatch.Stats.MAXIMUM
            ),
            threshold=EXCEPTION_MAX_AGE.to_seconds(),
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        )
        self.posting_failures_alarm = self._alarm(
            "PostingItemFailures",
            "Posting keeps failing items (ERP unavailable or an event failing every attempt)",
            cloudwatch.Metric(
                namespace=metrics_namespace,
                metric_name=POSTING_ITEM_FAILURES_METRIC,
                dimensions_map={SERVICE_DIMENSION: service_name},
                period=PERIOD,
                statistic=cloudwatch.Stats.SUM,
            ),
            threshold=1,
            evaluation_periods=POSTING_FAILURE_PERIODS,
            datapoints_to_alarm=POSTING_FAILURE_DATAPOINTS,
        )
        self.webhook_refusals_alarm = self._alarm(
            "WebhookClientErrors",
            "The webhook refuses many requests (4XX): a rotated signing secret or someone probing the endpoint",
            rest_api.metric_client_error(period=PERIOD, statistic=cloudwatch.Stats.SUM),
            threshold=WEBHOOK_CLIENT_ERROR_THRESHOLD,
        )
        self.webhook_server_errors_alarm = self._alarm(
            "WebhookServerErrors",
            "The webhook answered 5XX: Stripe retries, but ingest is failing",
            rest_api.metric_server_error(period=PERIOD, statistic=cloudwatch.Stats.SUM),
            threshold=1,
        )
        self.function_error_alarms = {
            name: self._alarm(
                f"{name}Errors",
                f"{name} raised unhandled errors",
                function.metric_errors(period=PERIOD, statistic=cloudwatch.Stats.SUM),
                threshold=1,
            )
            for name, function in functions.items()
        }
        self.function_throttle_alarms = {
            name: self._alarm(
                f"{name}Throttles",
                f"{name} was throttled (account concurrency or its event source's cap)",
                function.metric_throttles(period=PERIOD, statistic=cloudwatch.Stats.SUM),
                threshold=1,
            )
            for name, function in functions.items()
        }
        self.rule_failure_alarms = {
            name: self._alarm(
                f"{name}FailedInvocations",
                f"Rule {name} failed to deliver events to its target permanently",
                self._rule_metric("FailedInvocations", watched),
                threshold=1,
            )
            for name, watched in rules.items()
        }
        # With a DLQ, a failed delivery goes to the exception queue; this is the one case where it is lost.
        self.rule_dlq_failure_alarms = {
            name: self._alarm(
                f"{name}DlqFailures",
                f"Rule {name} could not put failed events in its dead-letter queue: they are lost",
                self._rule_metric("InvocationsFailedToBeSentToDlq", watched),
                threshold=1,
            )
            for name, watched in rules.items()
        }
        # A saga that fails has already recorded its failed step in the exception store (or could not);
        # one that times out never reached that step.
        self.execution_failure_alarms = {
            name: self._alarm(
                f"{name}ExecutionsFailed",
                f"{name} executions failed: see the exception store for the step and the cause",
                state_machine.metric_failed(period=PERIOD, statistic=cloudwatch.Stats.SUM),
                threshold=1,
            )
            for name, state_machine in state_machines.items()
        }
        self.execution_timeout_alarms = {
            name: self._alarm(
                f"{name}ExecutionsTimedOut",
                f"{name} executions timed out before recording an outcome: nothing in the exception store",
                state_machine.metric_timed_out(period=PERIOD, statistic=cloudwatch.Stats.SUM),
                threshold=1,
            )
            for name, state_machine in state_machines.items()
        }

        # A stream consumer falling behind: the ledger stream keeps records 24 h, its mapping gives up at 12 h.
        self.iterator_age_alarms = {
            name: self._alarm(
                f"{name}IteratorAge",
                f"{name} is more than {STREAM_MAX_LAG.to_minutes():.0f} minutes behind its stream",
                function.metric("IteratorAge", period=PERIOD, statistic=cloudwatch.Stats.MAXIMUM),
                threshold=STREAM_MAX_LAG.to_milliseconds(),
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            )
            for name, function in (stream_consumers or {}).items()
        }

    def _alarm_topic(self, key: kms.IKey) -> sns.Topic:
        # A customer managed key: CloudWatch cannot use the AWS managed SNS key (its policy is not editable).
        topic = sns.Topic(self, "AlarmTopic", display_name="billing-sync alarms", master_key=key, enforce_ssl=True)
        stack = Stack.of(self)
        alarms_of_this_stack_region = f"arn:{stack.partition}:cloudwatch:{stack.region}:{stack.account}:alarm:*"
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchAlarmsOfThisAccount",
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={
                    "StringEquals": {"aws:SourceAccount": stack.account},
                    "ArnLike": {"aws:SourceArn": alarms_of_this_stack_region},
                },
            )
        )
        return topic

    def _alarm(
        self,
        construct_id: str,
        description: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        comparison_operator: cloudwatch.ComparisonOperator = (
            cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
        ),
        evaluation_periods: int = 1,
        datapoints_to_alarm: int | None = None,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            construct_id,
            alarm_description=description,
            metric=metric,
            threshold=threshold,
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=datapoints_to_alarm,
            comparison_operator=comparison_operator,
            # Lambda, API Gateway, EventBridge and Step Functions publish error counts only when there are some.
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(self._action)
        return alarm

    @staticmethod
    def _rule_metric(metric_name: str, watched: WatchedRule) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace="AWS/Events",
            metric_name=metric_name,
            dimensions_map=watched.dimensions(),
            period=PERIOD,
            statistic=cloudwatch.Stats.SUM,
        )
