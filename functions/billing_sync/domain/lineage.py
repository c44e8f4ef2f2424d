"""Lineage: where every accepted event stands, and the record an operator needs to act on it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict

from billing_sync.domain.errors import ExceptionCategory


class LineageStatus(StrEnum):
    CLAIMED = "CLAIMED"  # a worker is posting it now (lease)
    POSTED = "POSTED"
    IGNORED = "IGNORED"  # unsupported type, acknowledged and recorded
    EXCEPTION = "EXCEPTION"  # in an exception queue, needs a person
    PENDING = "PENDING"  # failed retryably (ERP transient); the queue retries it
    WAITING = "WAITING"  # held by name until what it depends on posts, up to the horizon


class EventIdentity(BaseModel):
    """Who an accepted event is and where its raw payload lies; every lineage and exception record says it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str
    source: str
    source_event_id: str
    event_type: str
    source_api_version: str | None = None
    raw_ref: str | None = None

    def identity(self) -> dict[str, Any]:
        return self.model_dump(include=set(EventIdentity.model_fields))


class EventRef(EventIdentity):
    """Identity of an accepted event, known even when it could not be normalised."""

    received_at: AwareDatetime
    normalised_at: AwareDatetime | None = None


class LineageRecord(EventIdentity):
    model_config = ConfigDict(frozen=True, extra="ignore")

    status: LineageStatus
    category: ExceptionCategory | None = None
    reason: str | None = None
    attempts: int = 0
    first_seen: AwareDatetime
    last_seen: AwareDatetime
    erp_document_ids: tuple[str, ...] = ()
    checkpoints: dict[str, AwareDatetime] = {}
    redrives: tuple[str, ...] = ()  # "<when> by <caller>: <filters>", oldest first


class ExceptionStage(StrEnum):
    """Where the event stopped: operators redrive ingest exceptions from the raw archive, the rest as events."""

    INGEST = "ingest"
    POSTING = "posting"


class ExceptionRecord(EventIdentity):
    """What lands in the exception queue and store: enough to fix the cause and redrive.

    `missing_key` names what is missing for MAPPING (the mapping key) and DEPENDENCY_PENDING (what the
    event waited for); `event` is the canonical event of a posting exception, or the source's own payload
    of an ingest exception that never reached the raw archive (a delivery the partner function gave up on).
    """

    category: ExceptionCategory
    reason: str
    attempts: int
    first_seen: datetime
    last_seen: datetime
    stage: ExceptionStage = ExceptionStage.POSTING
    missing_key: str | None = None
    event: dict[str, Any] | None = None
