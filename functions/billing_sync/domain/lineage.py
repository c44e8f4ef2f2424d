"""Lineage: where every accepted event stands, and the record an operator needs to act on it."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from pydantic import AwareDatetime, BaseModel, ConfigDict, StringConstraints

from billing_sync.domain.errors import ExceptionCategory


class LineageStatus(StrEnum):
    CLAIMED = "CLAIMED"  # a worker is posting it now (lease)
    POSTED = "POSTED"
    IGNORED = "IGNORED"  # unsupported type, acknowledged and recorded
    EXCEPTION = "EXCEPTION"  # in an exception queue, needs a person
    PENDING = "PENDING"  # failed retryably (ERP transient); the queue retries it
    WAITING = "WAITING"  # held by name until what it depends on posts, up to the horizon


Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
"""The SHA-256 of a byte string, as 64 lowercase hex digits."""
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class ArchivedBody(BaseModel):
    """One body the raw archive holds for an event: the SHA-256 of its bytes, the object version that keeps
    them (None where the archive keeps no versions) and when that body was first received."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    sha256: Sha256Hex
    version_id: str | None = None
    received_at: AwareDatetime


def archived_ref(location: str, *, sha256: str, version_id: str | None) -> str:
    """The raw reference of one archived body: where it lies, with its object version and digest as query.

    `s3://<bucket>/raw/stripe/<id>.json?versionId=<version>&sha256=<hex>`: a resend of the same source event
    with another body shares the location and differs in version and digest.
    """
    query = {"versionId": version_id, "sha256": sha256} if version_id else {"sha256": sha256}
    return f"{location}?{urlencode(query)}"


def raw_location(raw_ref: str) -> str:
    """Where a raw reference's object lies, without the version and digest."""
    return raw_ref.partition("?")[0]


def raw_version(raw_ref: str) -> str | None:
    """The object version a raw reference names, if any."""
    return parse_qs(raw_ref.partition("?")[2]).get("versionId", [None])[0]


def archived_body(raw_ref: str | None, *, received_at: datetime) -> ArchivedBody | None:
    """The archived body a raw reference names, or None for a reference without a digest (older events,
    replays from the archive, payloads that never reached it)."""
    if not raw_ref:
        return None
    query = parse_qs(raw_ref.partition("?")[2])
    digest = query.get("sha256", [""])[0]
    if not _SHA256_HEX.fullmatch(digest):
        return None
    return ArchivedBody(sha256=digest, version_id=query.get("versionId", [None])[0], received_at=received_at)


def with_body(bodies: tuple[ArchivedBody, ...], body: ArchivedBody | None) -> tuple[ArchivedBody, ...]:
    """`bodies` and `body`, first received first; a body already known by its digest keeps its first entry."""
    if body is None or any(known.sha256 == body.sha256 for known in bodies):
        return bodies
    return tuple(sorted((*bodies, body), key=lambda known: known.received_at))


class EventIdentity(BaseModel):
    """Who an accepted event is and where its raw payload lies; every lineage and exception record says it."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

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
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    status: LineageStatus
    category: ExceptionCategory | None = None
    reason: str | None = None
    attempts: int = 0
    first_seen: AwareDatetime
    last_seen: AwareDatetime
    erp_document_ids: tuple[str, ...] = ()
    checkpoints: dict[str, AwareDatetime] = {}
    redrives: tuple[str, ...] = ()  # "<when> by <caller>: <filters>", oldest first
    # Every body archived under this event's id, first received first: a resend with another body is a
    # second entry with another digest; the same body again adds none.
    raw_bodies: tuple[ArchivedBody, ...] = ()


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
