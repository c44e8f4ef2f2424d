from __future__ import annotations

from typing import Any

from aws_cdk import CfnOutput, Duration, Stack
from aws_cdk import aws_events as events
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from infra.config import BillingSyncConfig
from infra.constructs.finance_dashboard import FinanceDashboard
from infra.constructs.ingest_api import IngestApi
from infra.constructs.ingest_path import IngestPath
from infra.constructs.lineage_api import LineageApi
from infra.constructs.observability import Observability, WatchedRule
from infra.constructs.partner_events import StripePartnerEvents
from infra.constructs.posting_pipeline import STRIPE_API_BASE, PostingPipeline
from infra.constructs.raw_archive import RawArchive
from infra.constructs.reconciliation import Reconciliation, mapping_legal_entities
from infra.constructs.refund_saga import RefundSaga
from infra.constructs.revenue_recognition import RevenueRecognition
from infra.constructs.running_balances import RunningBalances
from infra.constructs.state_tables import StateTables
from infra.function_factory import FunctionFactory


class BillingSyncStack(Stack):
    """Composes the billing-sync capabilities; the wiring lives in the constructs."""

    def __init__(self, scope: Construct, construct_id: str, *, config: BillingSyncConfig, **kwargs: Any):
        super().__init__(scope, construct_id, **kwargs)
        function_factory = FunctionFactory(powertools_layer_version=config.powertools_layer_version)
        tables = StateTables(self, "StateTables")
        raw_archive = RawArchive(self, "RawArchive")
        billing_bus = events.EventBus(self, "BillingBus", event_bus_name=f"billing-sync-{config.stage}")

        posting = PostingPipeline(
            self,
            "PostingPipeline",
            function_factory=function_factory,
            billing_bus=billing_bus,
            tables=tables,
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
        ingest_path = IngestPath(
            billing_bus=billing_bus,
            raw_archive=raw_archive.bucket,
            lineage_table=tables.lineage,
            exception_queue=posting.exception_queue,
            exception_table=tables.exceptions,
            default_legal_entity=config.default_legal_entity,
        )
        ingest = IngestApi(
            self, "IngestApi", stage=config.stage, function_factory=function_factory, ingest_path=ingest_path
        )
        reconciliation = Reconciliation(
            self,
            "Reconciliation",
            stage=config.stage,
            function_factory=function_factory,
            tables=tables,
            access_logs_bucket=raw_archive.access_logs_bucket,
            raw_archive=raw_archive.bucket,
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
        }
        rules = {
            "CanonicalEventsToPosting": WatchedRule(rule=posting.rule, event_bus_name=billing_bus.event_bus_name),
            "SweepWaitingRoomSchedule": WatchedRule(rule=posting.sweep_rule),
        }
        if config.stripe_partner_event_bus_name:
            partner = StripePartnerEvents(
                self,
                "StripePartnerEvents",
                partner_event_bus_name=config.stripe_partner_event_bus_name,
                function_factory=function_factory,
                ingest_path=ingest_path,
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
            alarm_email=config.alarm_email,
            stream_consumers={"MaintainBalances": balances.function},
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
        }
        for output_id, value in outputs.items():
            CfnOutput(self, output_id, value=value)
