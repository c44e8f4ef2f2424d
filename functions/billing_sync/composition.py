"""Composition roots: one cached factory per function, called inside the handler, never at import.

Tests replace a factory's result by clearing its cache after changing the environment, or build the
domain services directly with fakes.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from billing_sync.domain.ingest import IngestService
from billing_sync.domain.mapping import AccountMapping
from billing_sync.domain.posting import PostingService
from billing_sync.domain.webhook import WebhookIntake
from billing_sync.settings import IngestSettings, partner_settings, posting_settings, webhook_settings


def utc_now() -> datetime:
    return datetime.now(UTC)


@cache
def _client(service: str) -> Any:
    import boto3  # deferred: keeps cold-start import cost out of module import

    return boto3.client(service)  # type: ignore[call-overload]


def _ingest_service(settings: IngestSettings) -> IngestService:
    from billing_sync.messaging import EventBridgePublisher, S3RawArchive, SqsExceptionQueue
    from billing_sync.sources.stripe import StripeNormaliser
    from billing_sync.state.dynamo import DynamoLineageStore

    return IngestService(
        normaliser=StripeNormaliser(default_legal_entity=settings.default_legal_entity),
        archive=S3RawArchive(_client("s3"), settings.raw_archive_bucket),
        publisher=EventBridgePublisher(_client("events"), settings.billing_bus_name),
        lineage=DynamoLineageStore(_client("dynamodb"), settings.lineage_table_name),
        exceptions=SqsExceptionQueue(_client("sqs"), settings.exception_queue_url),
        clock=utc_now,
    )


def parse_secret_list(value: str) -> list[str]:
    """A secret holds a JSON list of signing secrets (rotation) or a single secret."""
    text = value.strip()
    secrets = json.loads(text) if text.startswith("[") else [text]
    if not secrets or not all(isinstance(s, str) and s for s in secrets):
        raise ValueError("the webhook secret must be a non-empty string or a JSON list of them")
    return secrets


@cache
def webhook_intake() -> WebhookIntake:
    from aws_lambda_powertools.utilities import parameters

    from billing_sync.sources.stripe import verify_signature

    settings = webhook_settings()

    def check_signature(body: bytes, header: str | None) -> None:
        secret = parameters.get_secret(settings.stripe_webhook_secret_name, max_age=settings.secret_cache_seconds)
        verify_signature(body, header, parse_secret_list(str(secret)), now=int(time.time()))

    return WebhookIntake(check_signature=check_signature, ingest=_ingest_service(settings))


@cache
def partner_ingest() -> IngestService:
    return _ingest_service(partner_settings())


@cache
def posting_service() -> PostingService:
    from billing_sync.erp.ledger import DynamoLedgerErpClient
    from billing_sync.messaging import SqsExceptionQueue
    from billing_sync.state.dynamo import DynamoLineageStore, DynamoMasterDataStore

    settings = posting_settings()
    dynamodb = _client("dynamodb")
    return PostingService(
        erp=DynamoLedgerErpClient(dynamodb, settings.ledger_table_name),
        lineage=DynamoLineageStore(dynamodb, settings.lineage_table_name),
        master_data=DynamoMasterDataStore(dynamodb, settings.master_data_table_name),
        exceptions=SqsExceptionQueue(_client("sqs"), settings.exception_queue_url),
        mapping=AccountMapping.model_validate_json(settings.mapping_file.read_bytes()),
        clock=utc_now,
        claim_lease=timedelta(seconds=settings.claim_lease_seconds),
    )


def reset() -> None:
    """Forget every built adapter (tests, and the local runtime after it changes the environment)."""
    for factory in (_client, webhook_intake, partner_ingest, posting_service):
        factory.cache_clear()
    from aws_lambda_powertools.utilities import parameters

    from billing_sync import settings

    parameters.clear_caches()
    for cached in (settings.webhook_settings, settings.partner_settings, settings.posting_settings):
        cached.cache_clear()
