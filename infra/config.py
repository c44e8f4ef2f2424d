"""Deployment configuration, read once from CDK context."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

from constructs import Node

DEFAULT_STAGE = "dev"
DEFAULT_LEGAL_ENTITY = "US01"
# Layer version 27 is the one the Powertools v3 installation page publishes for every python3xx-arm64
# variant; its build installs `aws-lambda-powertools[all]`, which brings pydantic v2 and aws-xray-sdk.
DEFAULT_POWERTOOLS_LAYER_VERSION = 27
# Stripe retries a webhook for up to three days: what is still missing after that needs a person.
DEFAULT_WAIT_HORIZON_HOURS = 72
# The refund saga looks for the payment it refunds every 5 minutes for 864 looks: the same three days.
DEFAULT_SAGA_WAIT_SECONDS = 300
DEFAULT_SAGA_MAX_WAITS = 864
# 02:30 UTC on the 1st: recognition counts days in UTC, so the previous month has ended.
DEFAULT_RECOGNITION_SCHEDULE = "cron(30 2 1 * ? *)"
# 06:00 UTC on the 2nd: after recognition has released the month, before finance starts the close.
DEFAULT_RECONCILIATION_SCHEDULE = "cron(0 6 2 * ? *)"
# duckdb: in the function (ordinary volumes); athena: the same SQL in the workgroup (beyond one function's memory).
DEFAULT_RECONCILIATION_ENGINE = "duckdb"
# Seven years (with two leap days): the usual retention of financial records and their evidence.
DEFAULT_ARCHIVE_RETENTION_DAYS = 2557
# S3 Object Lock accepts at most 100 years of default retention.
MAX_ARCHIVE_RETENTION_DAYS = 36500
RECONCILIATION_ENGINES = ("duckdb", "athena")
# Reserved instances of each ingest function (webhook, partner bus); the webhook stage admits as many requests
# a second, so API Gateway answers 429 before Lambda runs out (infra/constructs/ingest_api.py).
DEFAULT_INGEST_RESERVED_CONCURRENCY = 50
# Both ingest functions reserve this many: a default account (1000) keeps 100 unreserved for Lambda and
# the rest for every other function, so the two reserve at most 800 between them.
MAX_INGEST_RESERVED_CONCURRENCY = 400
# Requests one IP may send in five minutes before the web ACL answers 429: 20 a second on average,
# 40 % of the default stage rate, so no single address can take the whole stage.
DEFAULT_WEBHOOK_RATE_LIMIT_PER_IP = 6000
# WAF's bounds for a rate-based rule's limit.
WAF_RATE_LIMIT_BOUNDS = (10, 2_000_000_000)
_SCHEDULE_EXPRESSION = re.compile(r"^(cron|rate|at)\(.+\)$")
_LEGAL_ENTITY = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


@dataclass(frozen=True, kw_only=True)
class BillingSyncConfig:
    stage: str = DEFAULT_STAGE
    default_legal_entity: str = DEFAULT_LEGAL_ENTITY
    stripe_partner_event_bus_name: str | None = None
    powertools_layer_version: int = DEFAULT_POWERTOOLS_LAYER_VERSION
    wait_horizon_hours: int = DEFAULT_WAIT_HORIZON_HOURS
    catalogue_required: bool = True
    alarm_email: str | None = None
    saga_wait_seconds: int = DEFAULT_SAGA_WAIT_SECONDS
    saga_max_waits: int = DEFAULT_SAGA_MAX_WAITS
    recognition_schedule: str = DEFAULT_RECOGNITION_SCHEDULE
    reconciliation_schedule: str = DEFAULT_RECONCILIATION_SCHEDULE
    # The legal entities Athena's partition projection enumerates (the account mapping's when not given).
    legal_entities: tuple[str, ...] = ()
    reconciliation_engine: str = DEFAULT_RECONCILIATION_ENGINE
    archive_retention_days: int = DEFAULT_ARCHIVE_RETENTION_DAYS
    # CIDRs allowed to call the webhook route (Stripe's published webhook IPs); empty: any source.
    webhook_source_ips: tuple[str, ...] = ()
    webhook_rate_limit_per_ip: int = DEFAULT_WEBHOOK_RATE_LIMIT_PER_IP
    ingest_reserved_concurrency: int = DEFAULT_INGEST_RESERVED_CONCURRENCY

    @classmethod
    def from_context(cls, node: Node) -> BillingSyncConfig:
        """Reads `stage`, `defaultLegalEntity`, `stripePartnerEventBusName`, `powertoolsLayerVersion`,
        `waitHorizonHours`, `catalogueRequired` ("false" posts invoices without product and price events),
        `alarmEmail` (an address subscribed to the alarm topic), `sagaWaitSeconds` and `sagaMaxWaits` (the refund
        saga's wait between looks for the payment it refunds, and how many looks before it gives up) and
        `recognitionSchedule` (the EventBridge Scheduler expression, in UTC, of the revenue recognition job),
        `reconciliationSchedule` (the same for the monthly reconciliation of the previous month),
        `legalEntities` (comma-separated entities the Athena tables project; default: the mapping's entities) and
        `reconciliationEngine` (`duckdb` in the function, the default, or `athena` in the workgroup) and
        `archiveRetentionDays` (how long object lock keeps every raw payload version, governance mode, and when
        lifecycle expires superseded versions: 1 to 36500 days, default 2557, seven years),
        `webhookSourceIps` (comma-separated IPs or CIDRs, such as Stripe's published webhook IPs: the web ACL then
        blocks the webhook route for every other source), `webhookRateLimitPerIp` (requests one IP may send in
        five minutes before the web ACL answers 429, default 6000) and `ingestReservedConcurrency` (reserved
        instances of the webhook and partner-bus functions, 1 to 400, default 50; the webhook stage's rate and
        burst limits follow it)."""
        partner_bus = node.try_get_context("stripePartnerEventBusName")
        alarm_email = str(node.try_get_context("alarmEmail") or "").strip()
        catalogue = node.try_get_context("catalogueRequired")
        return cls(
            stage=str(node.try_get_context("stage") or DEFAULT_STAGE),
            default_legal_entity=str(node.try_get_context("defaultLegalEntity") or DEFAULT_LEGAL_ENTITY),
            stripe_partner_event_bus_name=str(partner_bus) if partner_bus else None,
            powertools_layer_version=int(
                node.try_get_context("powertoolsLayerVersion") or DEFAULT_POWERTOOLS_LAYER_VERSION
            ),
            wait_horizon_hours=int(node.try_get_context("waitHorizonHours") or DEFAULT_WAIT_HORIZON_HOURS),
            catalogue_required=str(catalogue).lower() not in {"false", "0", "no"} if catalogue is not None else True,
            alarm_email=alarm_email or None,
            saga_wait_seconds=_int_context(node, "sagaWaitSeconds", DEFAULT_SAGA_WAIT_SECONDS, minimum=1),
            saga_max_waits=_int_context(node, "sagaMaxWaits", DEFAULT_SAGA_MAX_WAITS, minimum=0),
            recognition_schedule=_schedule_context(node, "recognitionSchedule", DEFAULT_RECOGNITION_SCHEDULE),
            reconciliation_schedule=_schedule_context(node, "reconciliationSchedule", DEFAULT_RECONCILIATION_SCHEDULE),
            legal_entities=_entities_context(node, "legalEntities"),
            reconciliation_engine=_choice_context(
                node, "reconciliationEngine", RECONCILIATION_ENGINES, DEFAULT_RECONCILIATION_ENGINE
            ),
            archive_retention_days=_int_context(
                node,
                "archiveRetentionDays",
                DEFAULT_ARCHIVE_RETENTION_DAYS,
                minimum=1,
                maximum=MAX_ARCHIVE_RETENTION_DAYS,
            ),
            webhook_source_ips=_cidrs_context(node, "webhookSourceIps"),
            webhook_rate_limit_per_ip=_int_context(
                node,
                "webhookRateLimitPerIp",
                DEFAULT_WEBHOOK_RATE_LIMIT_PER_IP,
                minimum=WAF_RATE_LIMIT_BOUNDS[0],
                maximum=WAF_RATE_LIMIT_BOUNDS[1],
            ),
            ingest_reserved_concurrency=_int_context(
                node,
                "ingestReservedConcurrency",
                DEFAULT_INGEST_RESERVED_CONCURRENCY,
                minimum=1,
                maximum=MAX_INGEST_RESERVED_CONCURRENCY,
            ),
        )


def _int_context(node: Node, key: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
    # Read explicitly rather than with `or`: 0 is a valid number of waits.
    raw = node.try_get_context(key)
    value = default if raw is None or str(raw).strip() == "" else int(raw)
    if value < minimum:
        raise ValueError(f"context {key} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"context {key} must be at most {maximum}, got {value}")
    return value


def _choice_context(node: Node, key: str, choices: tuple[str, ...], default: str) -> str:
    value = str(node.try_get_context(key) or "").strip().lower() or default
    if value not in choices:
        raise ValueError(f"context {key} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _entities_context(node: Node, key: str) -> tuple[str, ...]:
    raw = node.try_get_context(key)
    values = raw if isinstance(raw, list) else str(raw or "").split(",")
    entities = tuple(dict.fromkeys(str(value).strip() for value in values if str(value).strip()))
    for entity in entities:
        if not _LEGAL_ENTITY.match(entity):
            raise ValueError(f"context {key} holds {entity!r}, not a legal entity code (letters, digits, _ or -)")
    return entities


def _cidrs_context(node: Node, key: str) -> tuple[str, ...]:
    """Networks in CIDR notation (a bare address is its own /32 or /128); host bits set are refused."""
    raw = node.try_get_context(key)
    values = raw if isinstance(raw, list) else str(raw or "").split(",")
    cidrs = []
    for value in (str(value).strip() for value in values):
        if not value:
            continue
        try:
            cidrs.append(str(ipaddress.ip_network(value, strict=True)))
        except ValueError as exc:
            raise ValueError(f"context {key} holds {value!r}, not an IP address or CIDR: {exc}") from None
    return tuple(dict.fromkeys(cidrs))


def _schedule_context(node: Node, key: str, default: str) -> str:
    raw = str(node.try_get_context(key) or "").strip() or default
    if not _SCHEDULE_EXPRESSION.match(raw):
        raise ValueError(f"context {key} must be a Scheduler expression such as {default!r}, got {raw!r}")
    return raw
