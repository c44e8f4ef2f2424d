"""The posting function's copy of customers and the catalogue: what exists, for 30 s at most."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from billing_sync.domain.events import CustomerUpserted
from billing_sync.domain.ports import Version
from billing_sync.state.recent import RecentMasterDataStore
from billing_sync_ops.in_memory.stores import InMemoryMasterDataStore

T0 = datetime(2026, 11, 1, tzinfo=UTC)


class CountingStore(InMemoryMasterDataStore):
    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    def customer_legal_entity(self, *, source: str, customer_id: str) -> str | None:
        self.reads += 1
        return super().customer_legal_entity(source=source, customer_id=customer_id)

    def get_record(self, *, kind: str, source: str, record_id: str) -> dict[str, Any] | None:
        self.reads += 1
        return super().get_record(kind=kind, source=source, record_id=record_id)


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def store_customer(store: Any, legal_entity: str, *, version: str = "evt_1") -> bool:
    return bool(
        store.upsert_customer(
            source="stripe",
            customer=CustomerUpserted(customer_id="cus_1"),
            legal_entity=legal_entity,
            as_of=T0,
            version=version,
        )
    )


def test_a_missing_customer_is_read_every_time_and_seen_as_soon_as_another_instance_stores_it() -> None:
    # GIVEN a customer no one has stored yet
    inner, ticks = CountingStore(), Ticks()
    recent = RecentMasterDataStore(inner, monotonic=ticks)
    assert recent.customer_legal_entity(source="stripe", customer_id="cus_1") is None
    # WHEN another instance stores it (straight into the table)
    store_customer(inner, "US01")
    # THEN the next look reads and finds it: a missing customer is never kept
    assert recent.customer_legal_entity(source="stripe", customer_id="cus_1") == "US01"
    assert inner.reads == 2


def test_a_customer_is_kept_for_30_seconds_then_read_again() -> None:
    # GIVEN a customer read once
    inner, ticks = CountingStore(), Ticks()
    store_customer(inner, "US01")
    recent = RecentMasterDataStore(inner, monotonic=ticks)
    recent.customer_legal_entity(source="stripe", customer_id="cus_1")
    # WHEN another instance moves it to another entity
    store_customer(inner, "EU01", version="evt_2")
    # THEN the copy answers for 30 s, then the table does
    ticks.now = 29.9
    assert recent.customer_legal_entity(source="stripe", customer_id="cus_1") == "US01"
    ticks.now = 30.0
    assert recent.customer_legal_entity(source="stripe", customer_id="cus_1") == "EU01"
    assert inner.reads == 2


def test_what_this_instance_stores_replaces_its_copy_at_once_and_a_stale_version_does_not() -> None:
    # GIVEN a customer this instance stored
    inner, ticks = CountingStore(), Ticks()
    recent = RecentMasterDataStore(inner, monotonic=ticks)
    assert store_customer(recent, "US01", version="evt_2")
    # WHEN an older version arrives and is refused
    assert not store_customer(recent, "EU01", version="evt_1")
    # THEN the stored version is read from the table, not the refused one kept
    assert recent.customer_legal_entity(source="stripe", customer_id="cus_1") == "US01"
    assert inner.reads == 1
    # AND the copy is then kept: no read for the next invoice
    assert recent.customer_legal_entity(source="stripe", customer_id="cus_1") == "US01"
    assert inner.reads == 1


def test_only_the_catalogue_is_kept_and_a_kept_record_cannot_be_changed_by_its_reader() -> None:
    # GIVEN a price and a refund's link stored
    inner, ticks = CountingStore(), Ticks()
    recent = RecentMasterDataStore(inner, monotonic=ticks)
    version = Version(as_of=T0, source_event_id="evt_1")
    recent.upsert_record(
        kind="price", source="stripe", record_id="price_1", data={"usage_type": "licensed"}, version=version
    )
    recent.upsert_record(kind="refund_credit_note", source="stripe", record_id="re_1", data={"a": 1}, version=version)
    # WHEN both are read twice, and a reader changes what it got
    price = recent.get_record(kind="price", source="stripe", record_id="price_1")
    assert price is not None
    price["usage_type"] = "metered"
    recent.get_record(kind="price", source="stripe", record_id="price_1")
    recent.get_record(kind="refund_credit_note", source="stripe", record_id="re_1")
    recent.get_record(kind="refund_credit_note", source="stripe", record_id="re_1")
    # THEN the price is kept (no read) and unchanged; the link is read each time
    assert recent.get_record(kind="price", source="stripe", record_id="price_1") == {"usage_type": "licensed"}
    assert inner.reads == 2
