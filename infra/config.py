"""Deployment configuration, read once from CDK context."""

from __future__ import annotations

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
RECONCILIATION_ENGINES = ("duckdb", "athena")
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

    @classmethod
    def from_context(cls, node: Node) -> BillingSyncConfig:
        """Reads `stage`, `defaultLegalEntity`, `stripePartnerEventBusName`, `powertoolsLayerVersion`,
        `waitHorizonHours`, `catalogueRequired` ("false" posts invoices without product and price events),
        `alarmEmail` (an address subscribed to the alarm topic), `sagaWaitSeconds` and `sagaMaxWaits` (the refund
        saga's wait between looks for the payment it refunds, and how many looks before it gives up) and
        `recognitionSchedule` (the EventBridge Scheduler expression, in UTC, of the revenue recognition job),
        `reconciliationSchedule` (the same for the monthly reconciliation of the previous month),
        `legalEntities` (comma-separated entities the Athena tables project; default: the mapping's entities) and
        `reconciliationEngine` (`duckdb` in the function, the default, or `athena` in the workgroup)."""
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
        )


def _int_context(node: Node, key: str, default: int, *, minimum: int) -> int:
    # Read explicitly rather than with `or`: 0 is a valid number of waits.
    raw = node.try_get_context(key)
    value = default if raw is None or str(raw).strip() == "" else int(raw)
    if value < minimum:
        raise ValueError(f"context {key} must be at least {minimum}, got {value}")
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


def _schedule_context(node: Node, key: str, default: str) -> str:
    raw = str(node.try_get_context(key) or "").strip() or default
    if not _SCHEDULE_EXPRESSION.match(raw):
        raise ValueError(f"context {key} must be a Scheduler expression such as {default!r}, got {raw!r}")
    return raw
