"""Ports: what the use cases need from the outside world. Adapters implement these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from billing_sync.domain.errors import ExceptionCategory
from billing_sync.domain.events import CustomerUpserted, FinanceEvent
from billing_sync.domain.journal import ErpCustomer, ErpDocument, ErpRef
from billing_sync.domain.lineage import EventRef, ExceptionRecord, LineageRecord


class ErpClient(Protocol):
    """An ERP reached by external ids (NetSuite's `eid:` upserts fit this shape).

    Methods raise ErpTransientError (retry) or ErpRejectedError (a person must look).
    """

    def upsert_customer(self, customer: ErpCustomer) -> ErpRef: ...

    def find_document(self, external_id: str) -> ErpRef | None: ...

    def create_document(self, document: ErpDocument) -> ErpRef:
        """Creates the document unless one with its external id exists; then returns that one."""
        ...


class ClaimState(StrEnum):
    CLAIMED = "CLAIMED"
    ALREADY_POSTED = "ALREADY_POSTED"
    IN_FLIGHT = "IN_FLIGHT"


@dataclass(frozen=True)
class Claim:
    state: ClaimState
    attempts: int
    first_seen: datetime
    erp_document_ids: tuple[str, ...] = ()


class LineageStore(Protocol):
    def claim(self, ref: EventRef, *, now: datetime, lease_until: datetime) -> Claim:
        """Conditionally takes the event for posting: one writer wins, a POSTED event stays posted."""
        ...

    def mark_posted(self, event_id: str, *, document_ids: tuple[str, ...], now: datetime) -> None: ...

    def mark_failed(
        self,
        event_id: str,
        *,
        status: str,
        category: ExceptionCategory,
        reason: str,
        now: datetime,
    ) -> None: ...

    def record(self, record: LineageRecord) -> None:
        """Writes a whole record (ignored, exception at ingest, posted without a claim)."""
        ...

    def get(self, event_id: str) -> LineageRecord | None: ...


class MasterDataStore(Protocol):
    def upsert_customer(self, *, source: str, customer: CustomerUpserted, legal_entity: str, as_of: datetime) -> bool:
        """Stores the customer unless a newer version is stored; returns False when it was stale.

        The same version is stored again, so a retry after a failure further on applies it fully.
        """
        ...

    def customer_exists(self, *, source: str, customer_id: str) -> bool: ...


class ExceptionQueue(Protocol):
    def send(self, record: ExceptionRecord) -> None: ...


class RawArchive(Protocol):
    def put(self, *, source: str, source_event_id: str, body: bytes) -> str:
        """Stores the raw payload; returns its key."""
        ...


class EventPublisher(Protocol):
    def publish(self, event: FinanceEvent) -> None:
        """Makes the event durable on the bus; raises PublishError otherwise."""
        ...
