"""`billing-sync period close|reopen|list`: each legal entity's posting calendar, kept as data.

Every period is open until it is closed. A document dated in a closed period follows its entity's
`closed_period_policy` (move to the first open period, or park as PERIOD_CLOSED); recognition always
moves. Closing and reopening keep a trail: who (the caller's identity) and when. An unknown entity or a
malformed period is bad usage (exit 2) and nothing is written.
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from billing_sync.domain.periods import parse_period
from billing_sync.domain.ports import PeriodState
from billing_sync.state.periods import DynamoPeriodCalendar
from billing_sync_ops.ops.output import EXIT_OK, emit
from billing_sync_ops.ops.revenue import load_mapping
from billing_sync_ops.ops.target import Target


def period_argument(text: str) -> str:
    """The argparse type of a period: YYYY-MM."""
    try:
        return parse_period(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def usage_error(legal_entity: str | None, mapping_file: Path | None) -> str | None:
    """Why the command cannot run (an unknown entity, an unreadable mapping), checked before any target."""
    if legal_entity is None:
        return None
    try:
        mapping = load_mapping(mapping_file)
    except ValueError as exc:
        return str(exc)
    if legal_entity not in mapping.legal_entities:
        known = ", ".join(sorted(mapping.legal_entities))
        return f"unknown legal entity {legal_entity!r}: the mapping knows {known}"
    return None


def calendar_of(target: Target) -> DynamoPeriodCalendar:
    """Raises TargetNotFoundError when the target has no master-data table."""
    return DynamoPeriodCalendar(target.client("dynamodb"), target.output("MasterDataTableName"), cache_seconds=0)


def set_period(target: Target, legal_entity: str, period: str, *, closed: bool, as_json: bool) -> int:
    """Closes or reopens `period` of `legal_entity`; doing it twice changes nothing the second time."""
    calendar = calendar_of(target)
    command = "period close" if closed else "period reopen"
    changed = calendar.is_closed(legal_entity, period) != closed
    if changed:
        calendar.set_closed(legal_entity, period, closed=closed, at=datetime.now(UTC), by=target.caller)
    history = calendar.history(legal_entity, period)
    payload = {
        "command": command,
        "target": target.description,
        "legal_entity": legal_entity,
        "period": period,
        "closed": closed,
        "changed": changed,
        "trail": [_change(state) for state in history],
    }
    emit(as_json, payload, _render_change)
    return EXIT_OK


def list_periods(target: Target, legal_entity: str | None, *, as_json: bool) -> int:
    calendar = calendar_of(target)
    rows = [
        {**_change(state), "trail": [_change(change) for change in calendar.history(state.legal_entity, state.period)]}
        for state in calendar.periods(legal_entity)
    ]
    payload = {"command": "period list", "target": target.description, "legal_entity": legal_entity, "periods": rows}
    emit(as_json, payload, _render_list)
    return EXIT_OK


def _change(state: PeriodState) -> dict[str, Any]:
    return {
        "legal_entity": state.legal_entity,
        "period": state.period,
        "closed": state.closed,
        "changed_at": state.changed_at.isoformat() if state.changed_at else None,
        "changed_by": state.changed_by,
    }


def _render_change(payload: dict[str, Any]) -> str:
    status = "closed" if payload["closed"] else "open"
    verb = "is now" if payload["changed"] else "was already"
    lines = [f"{payload['legal_entity']} {payload['period']} {verb} {status} on {payload['target']}"]
    lines += [_render_trail(change) for change in payload["trail"]]
    return "\n".join(lines)


def _render_trail(change: dict[str, Any]) -> str:
    verb = "closed" if change["closed"] else "reopened"
    return f"    {verb} {change['changed_at']} by {change['changed_by']}"


def _render_list(payload: dict[str, Any]) -> str:
    if not payload["periods"]:
        scope = payload["legal_entity"] or "any entity"
        return f"no period of {scope} was ever closed on {payload['target']}: every period is open"
    lines = [f"{'entity':<8} {'period':<8} {'status':<7} last change"]
    for row in payload["periods"]:
        status = "closed" if row["closed"] else "open"
        lines.append(
            f"{row['legal_entity']:<8} {row['period']:<8} {status:<7} {row['changed_at']} by {row['changed_by']}"
        )
    return "\n".join(lines)
