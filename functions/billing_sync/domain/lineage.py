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
    PENDING = "PENDING"  # failed retryably (dependency, ERP transient); the queue retries it


class EventRef(BaseModel):
    """Identity of an accepted event, known even when it could not be normalised."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str
    source: str
    source_event_id: str
    event_type: str
    source_api_version: str | None = None
    raw_ref: str | None = None
    received_at: AwareDatetime
    normalised_at: AwareDatetime | None = None

    def identity(self) -> dict[str, Any]:
        """The fields every lineage and exception record repeats."""
        return self.model_dump(
            include={"event_id", "source", "source_event_id", "event_type", "source_api_version", "raw_ref"}
        )


class LineageRecord(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: str
    source: str
    source_event_id: str
    event_type: str
    source_api_version: str | None = None
    status: LineageStatus
    category: ExceptionCategory | None = None
    reason: str | None = None
    attempts: int = 0
    first_seen: AwareDatetime
    last_seen: AwareDatetime
    raw_ref: str | None = None
    erp_document_ids: tuple[str, ...] = ()
    checkpoints: dict[str, AwareDatetime] = {}


class ExceptionRecord(BaseModel):
    """What lands in an exception queue: enough to fix the cause and redrive."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str
    source: str
    source_event_id: str
    event_type: str
    source_api_version: str | None = None
    category: ExceptionCategory
    reason: str
    attempts: int
    first_seen: datetime
    last_seen: datetime
    raw_ref: str | None = None
    event: dict[str, Any] | None = None
