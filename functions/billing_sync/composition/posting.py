"""Composition root of the posting function."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from billing_sync.aws.posting_queue import SqsPostingQueue
from billing_sync.aws.redelivery import SqsMessageRedelivery
from billing_sync.aws.workflows import StepFunctionsWorkflows
from billing_sync.composition.aws import aws_client, exception_queue, utc_now
from billing_sync.domain.events import InvoiceLine
from billing_sync.domain.mapping import AccountMapping
from billing_sync.domain.ports import BalanceTransaction, SourceReader
from billing_sync.domain.posting import PostingService
from billing_sync.domain.posting.rules import REFUND_SAGA_WORKFLOW
from billing_sync.domain.retry import RetryPolicy, RetryScheduler
from billing_sync.erp.circuit_breaker import CircuitBreaker, CircuitBreakerErpClient
from billing_sync.erp.ledger import DynamoLedgerErpClient
from billing_sync.settings import posting_settings
from billing_sync.state.dynamo import DynamoLineageStore, DynamoMasterDataStore, DynamoWaitingRoom
from billing_sync.state.recent import RecentMasterDataStore


@cache
def posting_service() -> PostingService:
    from billing_sync.composition.bookkeeping import bookkeeper  # it builds on this module's erp_client

    settings = posting_settings()
    dynamodb = aws_client("dynamodb")
    sqs = aws_client("sqs")
    return PostingService(
        erp=erp_client(),
        lineage=DynamoLineageStore(dynamodb, settings.lineage_table_name),
        master_data=RecentMasterDataStore(DynamoMasterDataStore(dynamodb, settings.master_data_table_name)),
        exceptions=exception_queue(settings.exception_queue_url, settings.exception_table_name),
        mapping=AccountMapping.model_validate_json(settings.mapping_file.read_bytes()),
        clock=utc_now,
        claim_lease=timedelta(seconds=settings.claim_lease_seconds),
        waiting_room=DynamoWaitingRoom(dynamodb, settings.waiting_room_table_name),
        requeue=SqsPostingQueue(sqs, settings.posting_queue_url),
        wait_horizon=timedelta(seconds=settings.wait_horizon_seconds),
        catalogue_required=settings.catalogue_required,
        workflows=_workflows(),
        saga_lease=timedelta(seconds=settings.saga_wait_seconds * (settings.saga_max_waits + 1) + 86400),
        bookkeeper=bookkeeper(),
        reader=stripe_reader(),
        claim_documents=False,  # the ledger creates by external id with a conditional put: no claim needed
        release_documents=not settings.release_on_ledger_stream,
    )


class _ReaderOnFirstUse:
    """A SourceReader built on its first read. Few events read Stripe, and the reader's module loads the
    Stripe wire models: about 70 ms of every posting cold start (make bench, cold_path_ratio)."""

    def __init__(self, build: Callable[[], SourceReader]) -> None:
        self._build = build
        self._reader: SourceReader | None = None

    def _built(self) -> SourceReader:
        if self._reader is None:
            self._reader = self._build()
        return self._reader

    def balance_transaction(self, balance_transaction_id: str) -> BalanceTransaction | None:
        return self._built().balance_transaction(balance_transaction_id)

    def charge_balance_transaction(self, charge_id: str) -> BalanceTransaction | None:
        return self._built().charge_balance_transaction(charge_id)

    def payout_balance_transactions(self, payout_id: str) -> list[BalanceTransaction] | None:
        return self._built().payout_balance_transactions(payout_id)

    def invoice_lines(self, invoice_id: str) -> list[dict[str, Any]] | None:
        return self._built().invoice_lines(invoice_id)

    def complete_invoice_lines(self, invoice_id: str) -> tuple[InvoiceLine, ...] | None:
        return self._built().complete_invoice_lines(invoice_id)

    def list_created(self, collection: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        return self._built().list_created(collection, start, end)


@cache
def stripe_reader() -> SourceReader | None:
    """The read-only Stripe API with the restricted key from Secrets Manager (built and read on first use)."""
    settings = posting_settings()
    secret_arn = settings.stripe_api_key_secret_arn
    if secret_arn is None:
        return None

    def api_key() -> str:
        from aws_lambda_powertools.utilities import parameters  # imports boto3: first use only

        return str(parameters.get_secret(secret_arn, max_age=settings.secret_cache_seconds)).strip()

    def build() -> SourceReader:
        from billing_sync.sources.stripe.api import StripeApiReader

        return StripeApiReader(settings.stripe_api_base, api_key, timeout_seconds=settings.stripe_api_timeout_seconds)

    return _ReaderOnFirstUse(build)


def _workflows() -> StepFunctionsWorkflows | None:
    settings = posting_settings()
    if not settings.refund_saga_arn:
        return None
    return StepFunctionsWorkflows(
        aws_client("stepfunctions"),
        {REFUND_SAGA_WORKFLOW: settings.refund_saga_arn},
        execution_input={"wait_seconds": settings.saga_wait_seconds, "max_waits": settings.saga_max_waits},
    )


@cache
def erp_client() -> CircuitBreakerErpClient:
    """The ledger behind this execution environment's circuit breaker (posting and the refund saga)."""
    settings = posting_settings()
    return CircuitBreakerErpClient(
        DynamoLedgerErpClient(aws_client("dynamodb"), settings.ledger_table_name), erp_circuit_breaker()
    )


@cache
def erp_circuit_breaker() -> CircuitBreaker:
    """One per execution environment, shared by the ERP adapter and the retry scheduler."""
    settings = posting_settings()
    return CircuitBreaker(
        failure_threshold=settings.erp_circuit_failure_threshold,
        cool_down_seconds=settings.erp_circuit_cool_down_seconds,
    )


@cache
def posting_retries() -> RetryScheduler:
    settings = posting_settings()
    return RetryScheduler(
        policy=RetryPolicy(
            base_seconds=settings.posting_retry_base_seconds,
            cap_seconds=settings.posting_retry_cap_seconds,
            max_receive_count=settings.posting_max_receive_count,
        ),
        redelivery=SqsMessageRedelivery(aws_client("sqs"), settings.posting_queue_url),
        erp=erp_circuit_breaker(),
    )
