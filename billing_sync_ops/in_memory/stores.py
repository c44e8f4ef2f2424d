"""In-memory lineage, master data, archive, bus and exception queue with the adapters' semantics."""

from __future__ import annotations

import hashlib
import threading
from datetime import datetime
from typing import Any

from billing_sync.domain.errors import ExceptionCategory
from billing_sync.domain.events import CustomerUpserted, FinanceEvent
from billing_sync.domain.lineage import (
    EventRef,
    ExceptionRecord,
    LineageRecord,
    LineageStatus,
    archived_body,
    archived_ref,
    raw_location,
    raw_version,
    with_body,
)
from billing_sync.domain.ports import Archived, Claim, ClaimState, Version, Waiter


class InMemoryLineageStore:
    def __init__(self) -> None:
        self.records: dict[str, LineageRecord] = {}
        self.leases: dict[str, datetime] = {}
        self.fail_mark_posted: list[Exception] = []
        self._lock = threading.Lock()

    def claim(self, ref: EventRef, *, now: datetime, lease_until: datetime) -> Claim:
        with self._lock:
            held = self.records.get(ref.event_id)
            if held is not None:
                live_claim = held.status is LineageStatus.CLAIMED and self.leases.get(ref.event_id, now) >= now
                if held.status is LineageStatus.POSTED or live_claim:
                    state = ClaimState.ALREADY_POSTED if held.status is LineageStatus.POSTED else ClaimState.IN_FLIGHT
                    return Claim(state, held.attempts, held.first_seen, held.erp_document_ids)
            attempts = (held.attempts if held else 0) + 1
            first_seen = held.first_seen if held else now
            checkpoints = {"received": ref.received_at, "claimed": now}
            if ref.normalised_at:
                checkpoints["normalised"] = ref.normalised_at
            self.records[ref.event_id] = LineageRecord(
                **ref.identity(),
                status=LineageStatus.CLAIMED,
                attempts=attempts,
                first_seen=first_seen,
                last_seen=now,
                checkpoints={**(held.checkpoints if held else {}), **checkpoints},
                redrives=held.redrives if held else (),
                raw_bodies=with_body(
                    held.raw_bodies if held else (), archived_body(ref.raw_ref, received_at=ref.received_at)
                ),
            )
            self.leases[ref.event_id] = lease_until
            return Claim(ClaimState.CLAIMED, attempts, first_seen)

    def mark_posted(
        self, event_id: str, *, document_ids: tuple[str, ...], now: datetime, note: str | None = None
    ) -> None:
        if self.fail_mark_posted:
            raise self.fail_mark_posted.pop(0)
        with self._lock:
            held = self.records[event_id]
            self.records[event_id] = held.model_copy(
                update={
                    "status": LineageStatus.POSTED,
                    "erp_document_ids": document_ids,
                    "last_seen": now,
                    "category": None,
                    "reason": note,
                    "checkpoints": {**held.checkpoints, "posted": now},
                }
            )

    def mark_failed(
        self, event_id: str, *, status: str, category: ExceptionCategory, reason: str, now: datetime
    ) -> None:
        with self._lock:
            held = self.records[event_id]
            self.records[event_id] = held.model_copy(
                update={"status": LineageStatus(status), "category": category, "reason": reason, "last_seen": now}
            )
            self.leases.pop(event_id, None)

    def note_redrive(self, event_id: str, *, at: datetime, by: str, how: str) -> None:
        with self._lock:
            held = self.records.get(event_id)
            if held is not None:
                entry = f"{at.isoformat(timespec='microseconds')} by {by}: {how}"
                self.records[event_id] = held.model_copy(
                    update={"redrives": (*held.redrives, entry), "checkpoints": {**held.checkpoints, "redriven": at}}
                )

    def record(
        self, record: LineageRecord, *, unless_posted: bool = False, count_attempt: bool = False
    ) -> LineageRecord | None:
        with self._lock:
            held = self.records.get(record.event_id)
            if unless_posted and held is not None and held.status is LineageStatus.POSTED:
                return held
            # As the DynamoDB adapter updates the item: earlier checkpoints, the redrive trail and the
            # archived bodies are kept.
            kept = (
                {"redrives": held.redrives, "checkpoints": {**held.checkpoints, **record.checkpoints}} if held else {}
            )
            received_at = record.checkpoints.get("received", record.first_seen)
            kept["raw_bodies"] = with_body(
                held.raw_bodies if held else (), archived_body(record.raw_ref, received_at=received_at)
            )
            if count_attempt:
                kept["attempts"] = (held.attempts if held else 0) + 1
                kept["first_seen"] = held.first_seen if held else record.first_seen
            self.records[record.event_id] = record.model_copy(update=kept)
            return None

    def note_archived(self, ref: EventRef) -> None:
        body = archived_body(ref.raw_ref, received_at=ref.received_at)
        if body is None:
            return
        with self._lock:
            held = self.records.get(ref.event_id)
            if held is None:
                held = LineageRecord(
                    **ref.identity(),
                    status=LineageStatus.PENDING,
                    first_seen=ref.received_at,
                    last_seen=ref.received_at,
                    checkpoints={"received": ref.received_at},
                )
            self.records[ref.event_id] = held.model_copy(update={"raw_bodies": with_body(held.raw_bodies, body)})

    def get(self, event_id: str) -> LineageRecord | None:
        return self.records.get(event_id)


class InMemoryMasterDataStore:
    """Newest version wins, ordered by (source time, source event id), as the DynamoDB adapter does."""

    def __init__(self) -> None:
        self.customers: dict[tuple[str, str], tuple[datetime, CustomerUpserted, str]] = {}
        self.records: dict[tuple[str, str, str], tuple[tuple[datetime, str], dict[str, Any]]] = {}
        self._customer_versions: dict[tuple[str, str], tuple[datetime, str]] = {}

    def upsert_customer(
        self, *, source: str, customer: CustomerUpserted, legal_entity: str, as_of: datetime, version: str = ""
    ) -> bool:
        key = (source, customer.customer_id)
        held = self._customer_versions.get(key)
        if held is not None and held > (as_of, version):
            return False
        self._customer_versions[key] = (as_of, version)
        self.customers[key] = (as_of, customer, legal_entity)
        return True

    def customer_exists(self, *, source: str, customer_id: str) -> bool:
        return self.customer_legal_entity(source=source, customer_id=customer_id) is not None

    def customer_legal_entity(self, *, source: str, customer_id: str) -> str | None:
        held = self.customers.get((source, customer_id))
        return None if held is None else held[2]

    def upsert_record(self, *, kind: str, source: str, record_id: str, data: dict[str, Any], version: Version) -> bool:
        key = (kind, source, record_id)
        held = self.records.get(key)
        ordering = (version.as_of, version.source_event_id)
        if held is not None and held[0] > ordering:
            return False
        self.records[key] = (ordering, data)
        return True

    def get_record(self, *, kind: str, source: str, record_id: str) -> dict[str, Any] | None:
        held = self.records.get((kind, source, record_id))
        return None if held is None else held[1]


class InMemoryWaitingRoom:
    def __init__(self) -> None:
        self.waiters: dict[tuple[str, str], Waiter] = {}
        self._lock = threading.Lock()

    def hold(self, waiter: Waiter) -> None:
        with self._lock:
            self.waiters[(waiter.key, waiter.event_id)] = waiter

    def drop(self, key: str, event_id: str) -> None:
        with self._lock:
            self.waiters.pop((key, event_id), None)

    def waiting_for(self, key: str) -> list[Waiter]:
        with self._lock:
            return [waiter for (held_key, _), waiter in self.waiters.items() if held_key == key]

    def all_waiting(self) -> list[Waiter]:
        with self._lock:
            return list(self.waiters.values())


class InMemoryPostingQueue:
    """The posting queue as a list; tests drain it through the service, in any order they like."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def requeue(self, event: dict[str, Any]) -> None:
        self.messages.append(event)


class InMemoryExceptionQueue:
    def __init__(self) -> None:
        self.records: list[ExceptionRecord] = []

    def send(self, record: ExceptionRecord) -> None:
        self.records.append(record)


class InMemoryRawArchive:
    """A versioned bucket: `objects` holds each key's newest body, `versions` every body, oldest first."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.versions: dict[str, list[bytes]] = {}

    def put(self, *, source: str, source_event_id: str, body: bytes) -> Archived:
        key = f"raw/{source}/{source_event_id}.json"
        versions = self.versions.setdefault(key, [])
        versions.append(body)
        self.objects[key] = body
        digest = hashlib.sha256(body).hexdigest()
        return Archived(ref=archived_ref(key, sha256=digest, version_id=str(len(versions))), resent=len(versions) > 1)

    def body(self, raw_ref: str) -> bytes:
        """The exact body a raw reference names (its version)."""
        location, version = raw_location(raw_ref), raw_version(raw_ref)
        return self.versions[location][int(version) - 1] if version else self.objects[location]


class InMemoryPublisher:
    def __init__(self) -> None:
        self.events: list[FinanceEvent] = []
        self.fail_next: list[Exception] = []

    def publish(self, event: FinanceEvent) -> None:
        if self.fail_next:
            raise self.fail_next.pop(0)
        self.events.append(event)


class RecordingWorkflows:
    """Step Functions as far as posting sees it: executions by name, a second start of a name a no-op."""

    def __init__(self) -> None:
        self.executions: dict[str, tuple[str, dict[str, Any]]] = {}

    def start(self, workflow: str, *, name: str, event: dict[str, Any]) -> bool:
        if name in self.executions:
            return False
        self.executions[name] = (workflow, event)
        return True
