"""In-memory posting calendar with the Dynamo adapter's semantics (open until closed, a trail of changes)."""

from __future__ import annotations

from datetime import datetime

from billing_sync.domain.ports import PeriodState


class InMemoryPeriodCalendar:
    def __init__(self) -> None:
        self.trail: dict[tuple[str, str], list[PeriodState]] = {}

    def is_closed(self, legal_entity: str, period: str) -> bool:
        changes = self.trail.get((legal_entity, period))
        return bool(changes and changes[-1].closed)

    def set_closed(self, legal_entity: str, period: str, *, closed: bool, at: datetime, by: str) -> None:
        change = PeriodState(legal_entity=legal_entity, period=period, closed=closed, changed_at=at, changed_by=by)
        self.trail.setdefault((legal_entity, period), []).append(change)

    def periods(self, legal_entity: str | None = None) -> list[PeriodState]:
        states = [changes[-1] for (entity, _), changes in self.trail.items() if legal_entity in (None, entity)]
        return sorted(states, key=lambda state: (state.period, state.legal_entity))

    def history(self, legal_entity: str, period: str) -> list[PeriodState]:
        return list(self.trail.get((legal_entity, period), []))
