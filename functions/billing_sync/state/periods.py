"""DynamoDB adapter for the posting calendar, kept in the master-data table (pk-only, string `pk`).

One item per entity, `PERIODS#<entity>`: an attribute per period that was ever closed or reopened
(`P<YYYY-MM>`: closed, changed_at, changed_by) and its trail (`T<YYYY-MM>`: every close and reopen, oldest
first), so `is_closed` is one GetItem and a change is one UpdateItem. An index item `PERIODS` holds the
set of entities with a calendar, so listing reads no more than it shows (no scan of master data).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from billing_sync.aws.errors import store_error
from billing_sync.domain.ports import PeriodState

_CALENDAR = "period calendar"
_INDEX_KEY = "PERIODS"
_STATE = "P"
_TRAIL = "T"

DEFAULT_CACHE_SECONDS = 30.0
"""How long one instance trusts a calendar it read. Posting asks once per document, and a warm posting
Lambda would otherwise read the same item for every record of every batch; a close is a rare, planned act
(done days after month end, when nothing dated in that month still arrives), so half a minute of
staleness on a warm instance costs nothing, and the instance that changes the calendar forgets its copy."""


def _key(legal_entity: str) -> dict[str, Any]:
    return {"pk": {"S": f"PERIODS#{legal_entity}"}}


class DynamoPeriodCalendar:
    """Implements PeriodCalendar. Raises RetryablePostingError (transient) or BillingSyncError from the SDK."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        *,
        cache_seconds: float = DEFAULT_CACHE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._table = table_name
        self._cache_seconds = cache_seconds
        self._monotonic = monotonic
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    def is_closed(self, legal_entity: str, period: str) -> bool:
        state = self._item(legal_entity).get(_STATE + period)
        return bool(state and state["M"]["closed"]["BOOL"])

    def set_closed(self, legal_entity: str, period: str, *, closed: bool, at: datetime, by: str) -> None:
        change = {
            "M": {
                "closed": {"BOOL": closed},
                "changed_at": {"S": at.astimezone(UTC).isoformat()},
                "changed_by": {"S": by},
            }
        }
        try:
            self._client.update_item(
                TableName=self._table,
                Key=_key(legal_entity),
                UpdateExpression="SET #state = :change, #trail = list_append(if_not_exists(#trail, :empty), :changes), "
                "legal_entity = :entity",
                ExpressionAttributeNames={"#state": _STATE + period, "#trail": _TRAIL + period},
                ExpressionAttributeValues={
                    ":change": change,
                    ":changes": {"L": [change]},
                    ":empty": {"L": []},
                    ":entity": {"S": legal_entity},
                },
            )
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": _INDEX_KEY}},
                UpdateExpression="ADD entities :entity",
                ExpressionAttributeValues={":entity": {"SS": [legal_entity]}},
            )
        except (BotoCoreError, ClientError) as exc:
            verb = "close" if closed else "reopen"
            raise store_error(exc, _CALENDAR, f"{verb} {legal_entity} {period}") from exc
        self._cache.pop(legal_entity, None)

    def periods(self, legal_entity: str | None = None) -> list[PeriodState]:
        entities = [legal_entity] if legal_entity is not None else self._entities()
        states = [
            _state(entity, name[len(_STATE) :], value["M"])
            for entity in entities
            for name, value in self._read(entity).items()
            if name.startswith(_STATE) and name != "pk"
        ]
        return sorted(states, key=lambda state: (state.period, state.legal_entity))

    def history(self, legal_entity: str, period: str) -> list[PeriodState]:
        """Every close and reopen of `period`, oldest first (the audit trail)."""
        trail = self._read(legal_entity).get(_TRAIL + period, {"L": []})["L"]
        return [_state(legal_entity, period, change["M"]) for change in trail]

    def _item(self, legal_entity: str) -> dict[str, Any]:
        now = self._monotonic()
        cached = self._cache.get(legal_entity)
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        item = self._read(legal_entity)
        self._cache[legal_entity] = (now, item)
        return item

    def _read(self, legal_entity: str) -> dict[str, Any]:
        try:
            response = self._client.get_item(TableName=self._table, Key=_key(legal_entity), ConsistentRead=True)
        except (BotoCoreError, ClientError) as exc:
            raise store_error(exc, _CALENDAR, f"read the calendar of {legal_entity}") from exc
        return dict(response.get("Item") or {})

    def _entities(self) -> list[str]:
        try:
            response = self._client.get_item(TableName=self._table, Key={"pk": {"S": _INDEX_KEY}}, ConsistentRead=True)
        except (BotoCoreError, ClientError) as exc:
            raise store_error(exc, _CALENDAR, "list the entities with a calendar") from exc
        return sorted((response.get("Item") or {}).get("entities", {}).get("SS", []))


def _state(legal_entity: str, period: str, value: dict[str, Any]) -> PeriodState:
    return PeriodState(
        legal_entity=legal_entity,
        period=period,
        closed=value["closed"]["BOOL"],
        changed_at=datetime.fromisoformat(value["changed_at"]["S"]),
        changed_by=value["changed_by"]["S"],
    )
