"""One recorder of outcomes for ingest and posting: lineage says where every event stands, and an event
that needs a person is also sent to the exception queue with its category."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from billing_sync.domain.errors import ExceptionCategory
from billing_sync.domain.lineage import EventIdentity, ExceptionRecord, ExceptionStage, LineageRecord, LineageStatus
from billing_sync.domain.ports import ExceptionQueue, LineageStore


class OutcomeRecorder:
    def __init__(self, *, lineage: LineageStore, exceptions: ExceptionQueue, clock: Callable[[], datetime]) -> None:
        self._lineage = lineage
        self._exceptions = exceptions
        self._clock = clock

    def settled(
        self,
        identity: EventIdentity,
        *,
        status: LineageStatus,
        attempts: int,
        first_seen: datetime,
        checkpoints: Mapping[str, datetime],
        reason: str | None = None,
        category: ExceptionCategory | None = None,
        document_ids: tuple[str, ...] = (),
    ) -> None:
        """Records a final outcome that needs nobody: POSTED without a claim, or IGNORED."""
        now = self._clock()
        self._lineage.record(
            LineageRecord(
                **identity.identity(),
                status=status,
                category=category,
                reason=reason,
                attempts=attempts,
                first_seen=first_seen,
                last_seen=now,
                erp_document_ids=document_ids,
                checkpoints={**checkpoints, status.lower(): now},
            )
        )

    def parked(
        self,
        identity: EventIdentity,
        *,
        category: ExceptionCategory,
        reason: str,
        attempts: int,
        first_seen: datetime,
        checkpoints: Mapping[str, datetime],
        stage: ExceptionStage,
        event: dict[str, Any] | None = None,
        missing_key: str | None = None,
    ) -> None:
        """Sends the exception record (raises PublishError when it cannot), then records lineage."""
        now = self._clock()
        self._exceptions.send(
            ExceptionRecord(
                **identity.identity(),
                category=category,
                reason=reason,
                attempts=attempts,
                first_seen=first_seen,
                last_seen=now,
                stage=stage,
                missing_key=missing_key,
                event=event,
            )
        )
        self._lineage.record(
            LineageRecord(
                **identity.identity(),
                status=LineageStatus.EXCEPTION,
                category=category,
                reason=reason,
                attempts=attempts,
                first_seen=first_seen,
                last_seen=now,
                checkpoints={**checkpoints, "exception": now},
            )
        )
