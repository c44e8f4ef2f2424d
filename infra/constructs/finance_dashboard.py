from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from billing_sync.domain import kpis
from infra.constructs.function_schedule import ScheduledRun, schedule_function
from infra.constructs.state_tables import StateTables
from infra.function_factory import FunctionFactory

KPI_SCHEDULE = "rate(1 hour)"
KPI_PERIOD = Duration.hours(1)
KPI_TIMEOUT = Duration.minutes(2)
# Completeness below 100% in two consecutive hourly runs: an invoice is parked, not just in flight.
COMPLETENESS_PERIODS = 2
# Billing event -> ERP acknowledgement: the posting queue retries for minutes; 15 min p95 is an outage.
LATENCY_P95_THRESHOLD_MS = 15 * 60 * 1000
OLDEST_EXCEPTION_THRESHOLD = Duration.days(2)
ALL_ENTITIES = "ALL"


class FinanceDashboard(Construct):
    """The hourly KPI function (EventBridge Scheduler), a CloudWatch dashboard of its metrics and the alarms.

    The KPI function only reads (balances, lineage, exceptions) and emits EMF metrics with a low-cardinality
    `legal_entity` dimension (the mapping's entities, and `ALL` for cross-entity figures).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        function_factory: FunctionFactory,
        tables: StateTables,
        exception_queue: sqs.IQueue,
        alarm_topic: sns.ITopic,
        legal_entities: Sequence[str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = function_factory.create(
            self,
            "PublishKpisFunction",
            handler_module="publish_kpis",
            timeout=KPI_TIMEOUT,
            description="Publishes the finance KPIs as CloudWatch metrics (hourly schedule)",
            environment={
                "BALANCES_TABLE_NAME": tables.balances.table_name,
                "LINEAGE_TABLE_NAME": tables.lineage.table_name,
                "EXCEPTION_TABLE_NAME": tables.exceptions.table_name,
            },
        )
        for table in (tables.balances, tables.lineage, tables.exceptions):
            table.grant_read_data(self.function)
        assert self.function.role is not None
        NagSuppressions.add_resource_suppressions(
            self.function.role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="grant_read_data adds each table's indexes (index/*): the exception store's "
                    "open-by-category index is how the function lists open exceptions without a scan.",
                    applies_to=[
                        {"regex": "/^Resource::<StateTables(Balances|Lineage|Exceptions).*\\.Arn>/index/\\*$/g"}
                    ],
                )
            ],
            apply_to_children=True,
        )
        self.schedule_role, self.schedule = schedule_function(
            self,
            self.function,
            ScheduledRun(
                name="PublishKpis",
                expression=KPI_SCHEDULE,
                description="Publishes the finance KPIs every hour",
                role_description="Lets the KPI schedule invoke its function and dead-letter",
                function_id_prefix="FinanceDashboardPublishKpisFunction",
                payload={"scheduled_time": scheduler.ContextAttribute.scheduled_time},
                retry_attempts=2,
                max_event_age=Duration.hours(1),
            ),
            dead_letter_queue=exception_queue,
        )

        namespace, service = function_factory.metrics_namespace, function_factory.service_name

        def metric(
            name: str, entity: str, statistic: str = cloudwatch.Stats.MAXIMUM, *, labelled: bool = True
        ) -> cloudwatch.Metric:
            # An alarm on a labelled metric renders as a metric-math alarm; alarms take the plain metric.
            return cloudwatch.Metric(
                namespace=namespace,
                metric_name=name,
                dimensions_map={"service": service, kpis.KPI_NAMESPACE_DIMENSION: entity},
                period=KPI_PERIOD,
                statistic=statistic,
                label=f"{name} {entity}" if labelled else None,
            )

        action = cloudwatch_actions.SnsAction(alarm_topic)
        self.completeness_alarms: dict[str, cloudwatch.Alarm] = {}
        for entity in legal_entities:
            alarm = cloudwatch.Alarm(
                self,
                f"InvoiceCompleteness{entity}",
                alarm_description=f"Fewer than all billed invoices of {entity} reached the ERP for 2 hours",
                metric=metric(kpis.INVOICE_COMPLETENESS_COUNT, entity, cloudwatch.Stats.MINIMUM, labelled=False),
                threshold=100,
                comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
                evaluation_periods=COMPLETENESS_PERIODS,
                # No data is the KPI function not running: its own error alarm says so.
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            alarm.add_alarm_action(action)
            self.completeness_alarms[entity] = alarm
        self.latency_alarm = cloudwatch.Alarm(
            self,
            "PostingLatencyP95",
            alarm_description="Posting latency p95 (billing event -> ERP acknowledgement) is over 15 minutes",
            metric=metric(kpis.POSTING_LATENCY_P95, ALL_ENTITIES, labelled=False),
            threshold=LATENCY_P95_THRESHOLD_MS,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.latency_alarm.add_alarm_action(action)
        self.oldest_exception_alarm = cloudwatch.Alarm(
            self,
            "OldestExceptionAge",
            alarm_description="An exception has been open for more than 2 days: fix and redrive it",
            metric=metric(kpis.OLDEST_EXCEPTION_AGE, ALL_ENTITIES, labelled=False),
            threshold=OLDEST_EXCEPTION_THRESHOLD.to_seconds(),
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluation_periods=1,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.oldest_exception_alarm.add_alarm_action(action)
        # Built after Observability (it needs the topic), so its function's own alarms are made here, alike.
        self.function_alarms = [
            cloudwatch.Alarm(
                self,
                f"PublishKpis{name}",
                alarm_description=f"The KPI function: {name.lower()} (its metrics stop; the dashboard goes stale)",
                metric=self.function.metric(name, period=Duration.minutes(5), statistic=cloudwatch.Stats.SUM),
                threshold=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                evaluation_periods=1,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            for name in ("Errors", "Throttles")
        ]
        for alarm in self.function_alarms:
            alarm.add_alarm_action(action)

        self.dashboard = cloudwatch.Dashboard(self, "FinanceDashboard", default_interval=Duration.days(7))
        self.dashboard.add_widgets(
            cloudwatch.GraphWidget(
                title="Invoice completeness (%)",
                left=[metric(kpis.INVOICE_COMPLETENESS_COUNT, e) for e in legal_entities]
                + [metric(kpis.INVOICE_COMPLETENESS_AMOUNT, e) for e in legal_entities],
                left_y_axis=cloudwatch.YAxisProps(min=0, max=100),
                width=12,
            ),
            cloudwatch.GraphWidget(
                title="Posting latency (ms)",
                left=[
                    metric(name, ALL_ENTITIES)
                    for name in (kpis.POSTING_LATENCY_P50, kpis.POSTING_LATENCY_P95, kpis.POSTING_LATENCY_MAX)
                ],
                width=12,
            ),
        )
        self.dashboard.add_widgets(
            cloudwatch.AlarmWidget(title="Oldest open exception", alarm=self.oldest_exception_alarm, width=8),
            cloudwatch.GraphWidget(
                title="Open exceptions by category",
                left=[
                    cloudwatch.MathExpression(
                        expression=f"SEARCH('{{{namespace},service,category,{kpis.KPI_NAMESPACE_DIMENSION}}} "
                        f"MetricName=\"{kpis.OPEN_EXCEPTIONS}\"', 'Maximum', 3600)",
                        label="",
                        period=KPI_PERIOD,
                    )
                ],
                width=8,
            ),
            cloudwatch.GraphWidget(
                title="Reconciliation differences by class",
                left=[
                    cloudwatch.MathExpression(
                        expression=f"SEARCH('{{{namespace},service,class,{kpis.KPI_NAMESPACE_DIMENSION}}} "
                        f"MetricName=\"{kpis.RECONCILIATION_DIFFERENCES}\"', 'Maximum', 3600)",
                        label="",
                        period=KPI_PERIOD,
                    )
                ],
                width=8,
            ),
        )
        self.dashboard.add_widgets(
            *[
                cloudwatch.GraphWidget(
                    title=f"{title} (minor units, by currency)",
                    left=[
                        cloudwatch.MathExpression(
                            expression=f"SEARCH('{{{namespace},service,currency,{kpis.KPI_NAMESPACE_DIMENSION}}} "
                            f"MetricName=\"{name}\"', 'Maximum', 3600)",
                            label="",
                            period=KPI_PERIOD,
                        )
                    ],
                    width=12,
                )
                for title, name in (
                    ("Unapplied cash", kpis.UNAPPLIED_CASH),
                    ("Deferred revenue variance", kpis.DEFERRED_REVENUE_VARIANCE),
                )
            ]
        )
