from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import BillingSyncConfig
from infra.constructs.audit import TableBackups
from infra.constructs.finance_dashboard import FinanceDashboard
from infra.constructs.ingest_api import IngestApi
from infra.constructs.ingest_path import IngestPath, deny_other_publishers
from infra.constructs.invocation_failures import InvocationFailures
from infra.constructs.keys import DataKeys
from infra.constructs.lineage_api import LineageApi
from infra.constructs.observability import Observability, WatchedRule
from infra.constructs.operator_policy import OperatedResources, OperatorAccess
from infra.constructs.partner_events import StripePartnerEvents
from infra.constructs.posting_pipeline import STRIPE_API_BASE, PostingPipeline
from infra.constructs.raw_archive import RawArchive
from infra.constructs.reconciliation import Reconciliation, mapping_legal_entities
from infra.constructs.refund_saga import RefundSaga
from infra.constructs.revenue_recognition import RevenueRecognition
from infra.constructs.running_balances import RunningBalances, WaitingRelease
from infra.constructs.state_tables import StateTables
from infra.function_factory import FunctionFactory


class BillingSyncStack(Stack):
    """Composes the billing-sync capabilities; the wiring lives in the constructs."""

    def __init__(self, scope: Construct, construct_id: str, *, config: BillingSyncConfig, **kwargs: Any):
        super().__init__(scope, construct_id, **kwargs)
        keys = DataKeys(self, "Keys")
        function_factory = FunctionFactory(
            powertools_layer_version=config.powertools_layer_version, log_encryption_key=keys.logs
        )
        tables = StateTables(self, "StateTables", encryption_key=keys.data)
        TableBackups(self, "TableBackups", stage=config.stage, tables=tables.every, encryption_key=keys.data)
        raw_archive = RawArchive(
            self, "RawArchive", encryption_key=keys.data, retention_days=config.archive_retention_days
        )
        billing_bus = events.EventBus(self, "BillingBus", event_bus_name=f"billing-sync-{config.stage}")

        posting = PostingPipeline(
            self,
            "PostingPipeline",
            function_factory=function_factory,
            billing_bus=billing_bus,
            tables=tables,
            keys=keys,
            wait_horizon=Duration.hours(config.wait_horizon_hours),
            catalogue_required=config.catalogue_required,
        )
        refund_saga = RefundSaga(
            self,
            "RefundSaga",
            function_factory=function_factory,
            tables=tables,
            exception_queue=posting.exception_queue,
            posting_queue=posting.posting_queue,
            environment=posting.environment,
            started_by=posting.functions,
            wait_seconds=config.saga_wait_seconds,
            max_waits=config.saga_max_waits,
            stage=config.stage,
            keys=keys,
        )
        recognition = RevenueRecognition(
            self,
            "RevenueRecognition",
            function_factory=function_factory,
            tables=tables,
            exception_queue=posting.exception_queue,
            environment=posting.environment,
            schedule_expression=config.recognition_schedule,
        )
        balances = RunningBalances(
            self,
            "RunningBalances",
            function_factory=function_factory,
            tables=tables,
            exception_queue=posting.exception_queue,
            environment={},
        )
        release = WaitingRelease(
            self,
            "WaitingRelease",
            function_factory=function_factory,
            tables=tables,
            posting_queue=posting.posting_queue,
            exception_queue=posting.exception_queue,
        )
        ingest_path = IngestPath(
            billing_bus=billing_bus,
            raw_archive=raw_archive.bucket,
            lineage_table=tables.lineage,
            exception_queue=posting.exception_queue,
            exception_table=tables.exceptions,
            default_legal_entity=config.default_legal_entity,
        )
        ingest = IngestApi(
            self,
            "IngestApi",
            stage=config.stage,
            function_factory=function_factory,
            ingest_path=ingest_path,
            keys=keys,
            reserved_concurrency=config.ingest_reserved_concurrency,
            rate_limit_per_ip=config.webhook_rate_limit_per_ip,
            allowed_source_cidrs=config.webhook_source_ips,
        )
        reconciliation = Reconciliation(
            self,
            "Reconciliation",
            stage=config.stage,
            function_factory=function_factory,
            tables=tables,
            access_logs_bucket=raw_archive.access_logs_bucket,
            raw_archive=raw_archive.bucket,
            encryption_key=keys.data,
            default_legal_entity=config.default_legal_entity,
            stripe_api_key=posting.stripe_api_key,
            stripe_api_environment={
                "STRIPE_API_KEY_SECRET_ARN": posting.stripe_api_key.secret_arn,
                "STRIPE_API_BASE": STRIPE_API_BASE,
            },
            exception_queue=posting.exception_queue,
            schedule_expression=config.reconciliation_schedule,
            legal_entities=config.legal_entities or mapping_legal_entities(),
            engine=config.reconciliation_engine,
        )
        lineage_api = LineageApi(
            self,
            "LineageApi",
            rest_api=ingest.rest_api,
            function_factory=function_factory,
            tables=tables,
            reports_bucket=reconciliation.bucket,
        )
        functions: dict[str, lambda_.IFunction] = {
            "StripeWebhook": ingest.function,
            "PostToErp": posting.function,
            "SweepWaitingRoom": posting.sweep_function,
            "RefundSagaTasks": refund_saga.task_function,
            "RecognizeRevenue": recognition.function,
            "Reconcile": reconciliation.function,
            "LineageApi": lineage_api.function,
            "MaintainBalances": balances.function,
            "ReleaseWaiting": release.function,
        }
        rules = {
            "CanonicalEventsToPosting": WatchedRule(rule=posting.rule, event_bus_name=billing_bus.event_bus_name),
            "SweepWaitingRoomSchedule": WatchedRule(rule=posting.sweep_rule),
            "RefundSagaEnded": WatchedRule(rule=refund_saga.ended_rule),
        }
        partner: StripePartnerEvents | None = None
        if config.stripe_partner_event_bus_name:
            partner = StripePartnerEvents(
                self,
                "StripePartnerEvents",
                partner_event_bus_name=config.stripe_partner_event_bus_name,
                function_factory=function_factory,
                ingest_path=ingest_path,
                reserved_concurrency=config.ingest_reserved_concurrency,
            )
            functions["StripePartnerEvents"] = partner.function
            functions["ParkFailedDelivery"] = partner.failed_delivery_function
            rules["StripePartnerEventsToNormaliser"] = WatchedRule(
                rule=partner.rule, event_bus_name=config.stripe_partner_event_bus_name
            )
        observability = Observability(
            self,
            "Observability",
            exception_queue=posting.exception_queue,
            functions=functions,
            rest_api=ingest.rest_api,
            rules=rules,
            state_machines={"RefundSaga": refund_saga.state_machine},
            metrics_namespace=function_factory.metrics_namespace,
            service_name=function_factory.service_name,
            topic_key=keys.messaging,
            alarm_email=config.alarm_email,
            stream_consumers={"MaintainBalances": balances.function, "ReleaseWaiting": release.function},
        )
        finance = FinanceDashboard(
            self,
            "FinanceDashboard",
            function_factory=function_factory,
            tables=tables,
            exception_queue=posting.exception_queue,
            alarm_topic=observability.topic,
            legal_entities=config.legal_entities or mapping_legal_entities(),
        )
        failures_kept_elsewhere = {
            "StripeWebhook": (
                ingest.function,
                "API Gateway invokes it synchronously and Stripe retries a non-2xx delivery for three days.",
            ),
            "PostToErp": (
                posting.function,
                "the SQS event source mapping invokes it; the posting queue's redrive policy moves a record that "
                "failed its last receive to the exception queue.",
            ),
            "LineageApi": (
                lineage_api.function,
                "API Gateway invokes it synchronously for a read-only GET; a failure is the caller's 5xx and "
                "changes nothing.",
            ),
            "MaintainBalances": (
                balances.function,
                "the ledger stream's event source mapping invokes it, bisects a failing batch and sends the "
                "record it cannot apply to the exception queue.",
            ),
            "ReleaseWaiting": (
                release.function,
                "the ledger stream's event source mapping invokes it, bisects a failing batch and sends the "
                "record it cannot release to the exception queue; the waiting-room sweep releases it meanwhile.",
            ),
        }
        if partner is not None:
            failures_kept_elsewhere["StripePartnerEvents"] = (
                partner.function,
                "its on-failure destination ParkFailedDelivery parks the event as an ingest exception.",
            )
            failures_kept_elsewhere["ParkFailedDelivery"] = (
                partner.failed_delivery_function,
                "its on-failure destination is the exception queue itself.",
            )
        InvocationFailures(
            self,
            "InvocationFailures",
            asynchronous={
                "SweepWaitingRoom": posting.sweep_function,
                # Step Functions invokes it synchronously (the saga retries, compensates and records a failed
                # step); the RefundSagaEnded rule invokes it asynchronously.
                "RefundSagaTasks": refund_saga.task_function,
                "RecognizeRevenue": recognition.function,
                "Reconcile": reconciliation.function,
                "PublishKpis": finance.function,
            },
            kept_elsewhere=failures_kept_elsewhere,
            key=keys.messaging,
            alarm_topic=observability.topic,
        )
        operators = OperatorAccess(
            self,
            "OperatorAccess",
            resources=OperatedResources(
                tables=tables,
                posting_queue=posting.posting_queue,
                exception_queue=posting.exception_queue,
                billing_bus=billing_bus,
                raw_archive=raw_archive.bucket,
                reports_bucket=reconciliation.bucket,
                stripe_api_key=posting.stripe_api_key,
                keys=[keys.data, keys.messaging],
            ),
        )
        # Segregation: the bus and the queues take messages only from the roles (and rules) that are meant to
        # send them, so a principal with events:PutEvents or sqs:SendMessage elsewhere in the account cannot inject.
        ingest_functions = [ingest.function, *([partner.function] if partner else [])]
        deny_other_publishers(billing_bus, roles=[*(_role(f) for f in ingest_functions), operators.role])
        # Schedules dead-letter with their own roles, which CDK grants sqs:SendMessage only; the queue's key
        # must let them encrypt too.
        schedule_roles = [recognition.schedule_role, reconciliation.schedule_role, finance.schedule_role]
        for schedule_role in schedule_roles:
            keys.messaging.grant(schedule_role, "kms:GenerateDataKey", "kms:Decrypt")
        parking_functions = [
            *ingest_functions,
            *([partner.failed_delivery_function] if partner else []),
            *posting.functions,
            refund_saga.task_function,
            balances.function,
            release.function,
        ]
        posting.admit_senders(
            posting_queue=[
                *(_role(f) for f in [*posting.functions, refund_saga.task_function, release.function]),
                operators.role,
            ],
            exception_queue=[*(_role(f) for f in parking_functions), *schedule_roles],
            exception_queue_rules=[
                posting.rule,
                posting.sweep_rule,
                refund_saga.ended_rule,
                *([partner.rule] if partner else []),
            ],
        )

        outputs = {
            "WebhookUrl": ingest.webhook_url,
            "BillingBusName": billing_bus.event_bus_name,
            "PostingQueueUrl": posting.posting_queue.queue_url,
            "ExceptionQueueUrl": posting.exception_queue.queue_url,
            "ExceptionTableName": tables.exceptions.table_name,
            "AlarmTopicArn": observability.topic.topic_arn,
            "LineageTableName": tables.lineage.table_name,
            "LedgerTableName": tables.ledger.table_name,
            "MasterDataTableName": tables.master_data.table_name,
            "WaitingRoomTableName": tables.waiting_room.table_name,
            "RawArchiveBucketName": raw_archive.bucket.bucket_name,
            "StripeWebhookSecretName": ingest.webhook_secret_name,
            "RefundSagaArn": refund_saga.state_machine.state_machine_arn,
            "RecognizeRevenueFunctionName": recognition.function.function_name,
            "ReconciliationBucketName": reconciliation.bucket.bucket_name,
            "ReconciliationGlueDatabase": reconciliation.database_name,
            "ReconciliationAthenaWorkGroup": reconciliation.work_group.name,
            "ReconcileFunctionName": reconciliation.function.function_name,
            "BalancesTableName": tables.balances.table_name,
            "PublishKpisFunctionName": finance.function.function_name,
            "OperatorPolicyArn": operators.policy.managed_policy_arn,
            "OperatorRoleArn": operators.role.role_arn,
        }
        for output_id, value in outputs.items():
            CfnOutput(self, output_id, value=value)


def _role(function: lambda_.IFunction) -> iam.IRole:
    assert function.role is not None, f"{function.node.path} has no role"
    return function.role
