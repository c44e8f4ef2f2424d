"""Per-function settings, parsed once per cold start from the environment the stack sets."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEFAULT_MAPPING_FILE = Path(__file__).parent / "config" / "account_mapping.json"


class SettingsError(RuntimeError):
    """The function's environment is incomplete; the message names what is missing."""


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        env = os.environ if environ is None else environ
        try:
            return cls.model_validate({key.lower(): value for key, value in env.items()})
        except ValidationError as exc:
            problems = ", ".join(f"{'.'.join(map(str, e['loc'])).upper()} ({e['msg']})" for e in exc.errors())
            raise SettingsError(f"{cls.__name__}: invalid or missing environment: {problems}") from None


class IngestSettings(_Settings):
    billing_bus_name: str = Field(min_length=1)
    raw_archive_bucket: str = Field(min_length=1)
    lineage_table_name: str = Field(min_length=1)
    exception_queue_url: str = Field(min_length=1)
    exception_table_name: str | None = Field(default=None, min_length=1)
    default_legal_entity: str = "US01"


class WebhookSettings(IngestSettings):
    stripe_webhook_secret_name: str = Field(min_length=1)
    secret_cache_seconds: int = Field(default=300, ge=0)


class PostingSettings(_Settings):
    lineage_table_name: str = Field(min_length=1)
    ledger_table_name: str = Field(min_length=1)
    master_data_table_name: str = Field(min_length=1)
    exception_queue_url: str = Field(min_length=1)
    exception_table_name: str | None = Field(default=None, min_length=1)
    waiting_room_table_name: str = Field(min_length=1)
    posting_queue_url: str = Field(min_length=1)
    mapping_file: Path = DEFAULT_MAPPING_FILE
    claim_lease_seconds: int = Field(default=90, ge=1)
    wait_horizon_seconds: int = Field(default=3 * 24 * 3600, ge=1)
    catalogue_required: bool = True
    refund_saga_arn: str | None = Field(default=None, min_length=1)
    saga_wait_seconds: int = Field(default=300, ge=1, description="The refund saga's wait between looks.")
    saga_max_waits: int = Field(default=864, ge=0, description="Looks before DEPENDENCY_PENDING (864 x 300 s = 3 d).")
    # Kept equal to the posting queue's redrive maxReceiveCount: the last receive parks with a reason.
    posting_max_receive_count: int = Field(default=8, ge=1)
    posting_retry_base_seconds: int = Field(default=30, ge=0, le=43200)
    posting_retry_cap_seconds: int = Field(default=900, ge=0, le=43200)  # SQS visibility is at most 12 h
    erp_circuit_failure_threshold: int = Field(default=5, ge=1)
    erp_circuit_cool_down_seconds: int = Field(default=60, ge=1, le=900)  # SQS DelaySeconds is at most 900
    # The read-only Stripe API (payouts, a charge's balance transaction): a restricted key in Secrets Manager.
    stripe_api_key_secret_arn: str | None = Field(default=None, min_length=1)
    stripe_api_base: str = Field(default="https://api.stripe.com", pattern=r"^https?://")
    stripe_api_timeout_seconds: float = Field(default=5.0, gt=0, le=20)
    secret_cache_seconds: int = Field(default=300, ge=0)
    # True where the stack runs the release function on the ledger stream: posting then leaves the
    # release of what waits for its documents to it (one waiting-room query per key off the posting path).
    release_on_ledger_stream: bool = False


class ReleaseSettings(_Settings):
    """The release function (ledger stream -> waiting room -> posting queue)."""

    waiting_room_table_name: str = Field(min_length=1)
    posting_queue_url: str = Field(min_length=1)


class BalancesSettings(_Settings):
    """The running balances function (ledger stream -> balances table) and the KPI function."""

    balances_table_name: str = Field(min_length=1)
    mapping_file: Path = DEFAULT_MAPPING_FILE


class KpiSettings(BalancesSettings):
    lineage_table_name: str = Field(min_length=1)
    exception_table_name: str = Field(min_length=1)
    # Only posted events this recent are timed: the scheduled function reads lineage of the last window.
    kpi_window_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)


class LineageApiSettings(_Settings):
    lineage_table_name: str = Field(min_length=1)
    ledger_table_name: str = Field(min_length=1)
    # Where reconciliation reports lie; without it the trail carries no reconciliation status.
    reconciliation_bucket: str | None = Field(default=None, min_length=1)


class ReconciliationSettings(_Settings):
    lineage_table_name: str = Field(min_length=1)
    ledger_table_name: str = Field(min_length=1)
    reconciliation_bucket: str = Field(min_length=1)
    reconciliation_glue_database: str | None = Field(default=None, min_length=1)
    reconciliation_athena_workgroup: str | None = Field(default=None, min_length=1)
    # duckdb: the engine layer in this function; athena: the same SQL, transpiled, in the workgroup.
    reconciliation_engine: Literal["duckdb", "athena"] = "duckdb"
    # The billing side: raw payloads say which documents events delivered; the mapping places them.
    raw_archive_bucket: str | None = Field(default=None, min_length=1)
    default_legal_entity: str = "US01"
    mapping_file: Path = DEFAULT_MAPPING_FILE
    athena_timeout_seconds: int = Field(default=840, ge=10, le=890)
    stripe_api_key_secret_arn: str | None = Field(default=None, min_length=1)
    stripe_api_base: str = Field(default="https://api.stripe.com", pattern=r"^https?://")
    secret_cache_seconds: int = Field(default=300, ge=0)


@cache
def webhook_settings() -> WebhookSettings:
    return WebhookSettings.from_env()


@cache
def partner_settings() -> IngestSettings:
    return IngestSettings.from_env()


@cache
def posting_settings() -> PostingSettings:
    return PostingSettings.from_env()


@cache
def release_settings() -> ReleaseSettings:
    return ReleaseSettings.from_env()


@cache
def balances_settings() -> BalancesSettings:
    return BalancesSettings.from_env()


@cache
def kpi_settings() -> KpiSettings:
    return KpiSettings.from_env()


@cache
def lineage_api_settings() -> LineageApiSettings:
    return LineageApiSettings.from_env()


@cache
def reconciliation_settings() -> ReconciliationSettings:
    return ReconciliationSettings.from_env()
