"""Master data as an instance read or wrote it in the last `seconds`: customers and the catalogue.

A warm posting function reads the same customer, prices and products for invoice after invoice (a
month's invoice run repeats a handful of prices thousands of times). Only what exists is kept: a missing
customer, price or product is read again every time, so it never looks present and an event that waits
for it is released as soon as it is stored. What this instance stores replaces its copy at once; a change
stored by another instance is seen within `seconds`, the same trust the period calendar gives a copy, and
no different from that event having arrived a moment earlier.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from billing_sync.domain.events import CustomerUpserted
from billing_sync.domain.ports import MasterDataStore, Version

DEFAULT_SECONDS = 30.0
CACHED_KINDS = frozenset({"price", "product"})
"""The catalogue; other records (links a refund looks up) are read through every time."""
_LIMIT = 10_000


class RecentMasterDataStore:
    """Implements MasterDataStore over another one, keeping what exists for `seconds`."""

    def __init__(
        self,
        inner: MasterDataStore,
        *,
        seconds: float = DEFAULT_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._seconds = seconds
        self._monotonic = monotonic
        self._kept: dict[tuple[str, ...], tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def upsert_customer(
        self, *, source: str, customer: CustomerUpserted, legal_entity: str, as_of: datetime, version: str = ""
    ) -> bool:
        stored = self._inner.upsert_customer(
            source=source, customer=customer, legal_entity=legal_entity, as_of=as_of, version=version
        )
        key = ("customer", source, customer.customer_id)
        self._keep(key, legal_entity) if stored else self._forget(key)
        return stored

    def customer_exists(self, *, source: str, customer_id: str) -> bool:
        return self.customer_legal_entity(source=source, customer_id=customer_id) is not None

    def customer_legal_entity(self, *, source: str, customer_id: str) -> str | None:
        key = ("customer", source, customer_id)
        if (kept := self._kept_value(key)) is not None:
            return str(kept)
        legal_entity = self._inner.customer_legal_entity(source=source, customer_id=customer_id)
        if legal_entity is not None:
            self._keep(key, legal_entity)
        return legal_entity

    def upsert_record(self, *, kind: str, source: str, record_id: str, data: dict[str, Any], version: Version) -> bool:
        stored = self._inner.upsert_record(kind=kind, source=source, record_id=record_id, data=data, version=version)
        key = (kind, source, record_id)
        if kind in CACHED_KINDS:
            self._keep(key, copy.deepcopy(data)) if stored else self._forget(key)
        return stored

    def get_record(self, *, kind: str, source: str, record_id: str) -> dict[str, Any] | None:
        if kind not in CACHED_KINDS:
            return self._inner.get_record(kind=kind, source=source, record_id=record_id)
        key = (kind, source, record_id)
        if (kept := self._kept_value(key)) is not None:
            return copy.deepcopy(kept)  # type: ignore[no-any-return]
        record = self._inner.get_record(kind=kind, source=source, record_id=record_id)
        if record is not None:
            self._keep(key, copy.deepcopy(record))
        return record

    def _kept_value(self, key: tuple[str, ...]) -> Any:
        with self._lock:
            kept = self._kept.get(key)
        if kept is None or self._monotonic() - kept[0] >= self._seconds:
            return None
        return kept[1]

    def _keep(self, key: tuple[str, ...], value: Any) -> None:
        with self._lock:
            if len(self._kept) >= _LIMIT:
                self._kept.clear()  # a bound, not an eviction policy: entries live seconds anyway
            self._kept[key] = (self._monotonic(), value)

    def _forget(self, key: tuple[str, ...]) -> None:
        with self._lock:
            self._kept.pop(key, None)
