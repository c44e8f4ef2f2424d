"""Composition root of the ingest functions (signed webhooks and the Stripe partner bus)."""

from __future__ import annotations

import json
import time
from functools import cache
from pathlib import Path

from billing_sync.aws.archive import S3RawArchive
from billing_sync.aws.bus import EventBridgePublisher
from billing_sync.composition.aws import aws_client, exception_queue, utc_now
from billing_sync.domain.ingest import IngestService
from billing_sync.domain.mapping import AccountMapping
from billing_sync.domain.webhook import WebhookIntake
from billing_sync.settings import DEFAULT_MAPPING_FILE, IngestSettings, partner_settings, webhook_settings
from billing_sync.sources.stripe import StripeNormaliser, verify_signature
from billing_sync.state.dynamo import DynamoLineageStore


def parse_secret_list(value: str) -> list[str]:
    """A secret holds a JSON list of signing secrets (rotation) or a single secret."""
    text = value.strip()
    secrets = json.loads(text) if text.startswith("[") else [text]
    if not secrets or not all(isinstance(s, str) and s for s in secrets):
        raise ValueError("the webhook secret must be a non-empty string or a JSON list of them")
    return secrets


def stripe_account_entities(mapping_file: Path = DEFAULT_MAPPING_FILE) -> dict[str, str]:
    """Which legal entity owns each Stripe account (`acct_…`), from the bundled account mapping."""
    mapping = AccountMapping.model_validate_json(mapping_file.read_bytes())
    return {account: code for code, entity in mapping.legal_entities.items() for account in entity.stripe_accounts}


def _ingest_service(settings: IngestSettings) -> IngestService:
    return IngestService(
        normaliser=StripeNormaliser(
            default_legal_entity=settings.default_legal_entity, stripe_accounts=stripe_account_entities()
        ),
        archive=S3RawArchive(aws_client("s3"), settings.raw_archive_bucket),
        publisher=EventBridgePublisher(aws_client("events"), settings.billing_bus_name),
        lineage=DynamoLineageStore(aws_client("dynamodb"), settings.lineage_table_name),
        exceptions=exception_queue(settings.exception_queue_url, settings.exception_table_name),
        clock=utc_now,
    )


@cache
def webhook_intake() -> WebhookIntake:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider  # imports boto3: first invocation only

    settings = webhook_settings()
    # On the shared client: Powertools' default provider builds a second boto3 session (about 0.1 s cold).
    secrets = SecretsProvider(boto3_client=aws_client("secretsmanager"))

    def check_signature(body: bytes, header: str | None) -> None:
        secret = secrets.get(settings.stripe_webhook_secret_name, max_age=settings.secret_cache_seconds)
        verify_signature(body, header, parse_secret_list(str(secret)), now=int(time.time()))

    return WebhookIntake(check_signature=check_signature, ingest=_ingest_service(settings))


@cache
def partner_ingest() -> IngestService:
    return _ingest_service(partner_settings())
