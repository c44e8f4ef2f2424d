"""Use case: accept a verified source event without losing it.

The raw payload is archived first (audit and replay); its raw reference names the archived version and
digest, and every lineage write of the event adds that body to the event's `raw_bodies`. A normalised
event is published to the bus; an unsupported type is recorded as IGNORED; a payload that cannot be
normalised is parked in the exception queue as MALFORMED. A published resend (the archive already held a
body for the source event id) is noted on lineage at once, since posting writes nothing for a duplicate.
Only a failure to make the event durable is an error for the caller, so the source retries; business
problems never refuse a correctly signed event.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from billing_sync.domain.errors import ExceptionCategory, MalformedEventError
from billing_sync.domain.identity import derive_event_id
from billing_sync.domain.lineage import EventRef, ExceptionStage, LineageStatus
from billing_sync.domain.outcomes import OutcomeRecorder
from billing_sync.domain.ports import EventPublisher, ExceptionQueue, LineageStore, RawArchive

if TYPE_CHECKING:  # the normaliser loads the event models when it first normalises
    from billing_sync.domain.events import FinanceEvent


class SourceIdentity(NamedTuple):
    source_event_id: str
    event_type: str
    api_version: str | None = None


class SourceNormaliser(Protocol):
    source: str

    def identify(self, payload: Any) -> SourceIdentity:
        """Who the source says the event is; raises MalformedEventError."""
        ...

    def normalise(self, payload: Mapping[str, Any], *, received_at: datetime, raw_ref: str) -> FinanceEvent | None:
        """The canonical event, or None for a type this product does not use; raises MalformedEventError."""
        ...


class IngestOutcome(StrEnum):
    PUBLISHED = "PUBLISHED"
    IGNORED = "IGNORED"
    EXCEPTION = "EXCEPTION"


@dataclass(frozen=True)
class IngestResult:
    event_id: str
    source_event_id: str
    source_event_type: str
    outcome: IngestOutcome
    event_type: str | None = None
    category: ExceptionCategory | None = None


class IngestService:
    def __init__(
        self,
        *,
        normaliser: SourceNormaliser,
        archive: RawArchive,
        publisher: EventPublisher,
        lineage: LineageStore,
        exceptions: ExceptionQueue,
        clock: Callable[[], datetime],
    ) -> None:
        self._normaliser = normaliser
        self._archive = archive
        self._publisher = publisher
        self._lineage = lineage
        self._outcomes = OutcomeRecorder(lineage=lineage, exceptions=exceptions, clock=clock)
        self._clock = clock

    def accept(self, payload: Any, raw_body: bytes) -> IngestResult:
        """Raises PublishError (or an adapter error) when the event could not be made durable."""
        try:
            identity = self._normaliser.identify(payload)
        except MalformedEventError as exc:
            return self.park_unreadable(raw_body, exc)
        return self._accept(payload, raw_body, identity, None)

    def park_unreadable(self, raw_body: bytes, error: MalformedEventError) -> IngestResult:
        """A verified body that is no readable event: archived under a digest of its bytes, parked MALFORMED.

        Raises PublishError (or an adapter error) when it could not be made durable.
        """
        identity = SourceIdentity(f"unidentified-{hashlib.sha256(raw_body).hexdigest()[:32]}", "unknown")
        return self._accept(None, raw_body, identity, error)

    def _accept(
        self, payload: Any, raw_body: bytes, identity: SourceIdentity, identity_error: MalformedEventError | None
    ) -> IngestResult:
        received_at = self._clock()
        source = self._normaliser.source
        source_event_id, source_type = identity.source_event_id, identity.event_type
        archived = self._archive.put(source=source, source_event_id=source_event_id, body=raw_body)
        raw_ref = archived.ref
        ref = EventRef(
            event_id=derive_event_id(source, source_event_id),
            source=source,
            source_event_id=source_event_id,
            event_type=source_type,
            source_api_version=identity.api_version,
            raw_ref=raw_ref,
            received_at=received_at,
        )
        try:
            if identity_error is not None:
                raise identity_error
            event = self._normaliser.normalise(payload, received_at=received_at, raw_ref=raw_ref)
        except MalformedEventError as exc:
            self._park(ref, exc)
            return IngestResult(
                ref.event_id, source_event_id, source_type, IngestOutcome.EXCEPTION, category=exc.category
            )
        if event is None:
            self._outcomes.settled(
                ref,
                status=LineageStatus.IGNORED,
                category=ExceptionCategory.UNSUPPORTED,
                reason=f"{source} event type {source_type} is not used by billing-sync",
                attempts=1,
                first_seen=received_at,
                checkpoints={"received": received_at},
            )
            return IngestResult(ref.event_id, source_event_id, source_type, IngestOutcome.IGNORED)
        self._publisher.publish(event)
        if archived.resent:
            self._lineage.note_archived(ref)
        return IngestResult(
            ref.event_id, source_event_id, source_type, IngestOutcome.PUBLISHED, event_type=event.event_type
        )

    def _park(self, ref: EventRef, error: MalformedEventError) -> None:
        self._outcomes.parked(
            ref,
            category=error.category,
            reason=error.reason,
            attempts=1,
            first_seen=ref.received_at,
            checkpoints={"received": ref.received_at},
            stage=ExceptionStage.INGEST,
        )
