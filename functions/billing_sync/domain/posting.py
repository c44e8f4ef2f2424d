"""Use case: post one canonical event to the ERP, exactly once.

claim (conditional write) -> validate -> map -> post with a deterministic external id -> lineage.
A retry after an unknown outcome (crash after the ERP accepted, timeout) is safe because the ERP
adapter creates by external id only when no document with that id exists.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import pydantic

from billing_sync.domain import accounting
from billing_sync.domain.errors import (
    ClaimInFlightError,
    DependencyPendingError,
    ExceptionCategory,
    NothingToPostError,
    PermanentPostingError,
    RetryablePostingError,
)
from billing_sync.domain.events import (
    FINANCE_EVENT,
    POSTABLE_EVENT,
    POSTABLE_EVENT_TYPES,
    CustomerUpsertedEvent,
    FinanceEvent,
    InvoiceIssuedEvent,
    PaymentSettledEvent,
)
from billing_sync.domain.journal import ErpRef
from billing_sync.domain.lineage import EventRef, ExceptionRecord, LineageRecord, LineageStatus
from billing_sync.domain.mapping import AccountMapping
from billing_sync.domain.ports import ClaimState, ErpClient, ExceptionQueue, LineageStore, MasterDataStore


class PostingStatus(StrEnum):
    POSTED = "POSTED"
    DUPLICATE = "DUPLICATE"  # already posted earlier; nothing sent to the ERP
    IGNORED = "IGNORED"  # nothing to book (a zero-value document)
    EXCEPTION = "EXCEPTION"  # parked in the exception queue with a category


@dataclass(frozen=True)
class PostingResult:
    event_id: str
    status: PostingStatus
    erp_document_ids: tuple[str, ...] = ()
    category: ExceptionCategory | None = None


class PostingService:
    def __init__(
        self,
        *,
        erp: ErpClient,
        lineage: LineageStore,
        master_data: MasterDataStore,
        exceptions: ExceptionQueue,
        mapping: AccountMapping,
        clock: Callable[[], datetime],
        claim_lease: timedelta,
    ) -> None:
        self._erp = erp
        self._lineage = lineage
        self._master_data = master_data
        self._exceptions = exceptions
        self._mapping = mapping
        self._clock = clock
        self._claim_lease = claim_lease

    def handle(self, detail: Mapping[str, Any]) -> PostingResult:
        """Posts a canonical event given as JSON data; raises RetryablePostingError to be retried."""
        adapter = POSTABLE_EVENT if detail.get("event_type") in POSTABLE_EVENT_TYPES else FINANCE_EVENT
        try:
            event: FinanceEvent = adapter.validate_python(detail)
        except pydantic.ValidationError as exc:
            return self._park_unreadable(detail, exc)
        return self.post(event)

    def post(self, event: FinanceEvent) -> PostingResult:
        """Raises RetryablePostingError (the queue retries); parks permanent failures."""
        if isinstance(event, CustomerUpsertedEvent):
            return self._upsert_customer(event)
        if not isinstance(event, InvoiceIssuedEvent | PaymentSettledEvent):
            return self._park(event, attempts=1, first_seen=self._clock(), error=_unsupported(event))

        now = self._clock()
        claim = self._lineage.claim(_event_ref(event), now=now, lease_until=now + self._claim_lease)
        if claim.state is ClaimState.ALREADY_POSTED:
            return PostingResult(event.event_id, PostingStatus.DUPLICATE, claim.erp_document_ids)
        if claim.state is ClaimState.IN_FLIGHT:
            raise ClaimInFlightError(f"event {event.event_id} is being posted by another worker")

        try:
            ref = self._post_document(event)
        except NothingToPostError as exc:
            return self._ignore(event, attempts=claim.attempts, first_seen=claim.first_seen, reason=exc.reason)
        except PermanentPostingError as exc:
            return self._park(event, attempts=claim.attempts, first_seen=claim.first_seen, error=exc)
        except RetryablePostingError as exc:
            self._mark_pending(event, exc.category, exc.reason)
            raise
        except Exception as exc:
            self._mark_pending(event, ExceptionCategory.INTERNAL, f"{type(exc).__name__}: {exc}")
            raise
        self._lineage.mark_posted(event.event_id, document_ids=(ref.document_id,), now=self._clock())
        return PostingResult(event.event_id, PostingStatus.POSTED, (ref.document_id,))

    def _mark_pending(self, event: FinanceEvent, category: ExceptionCategory, reason: str) -> None:
        """Releases the claim and says why, so lineage explains the retry (and a dead letter)."""
        self._lineage.mark_failed(
            event.event_id, status=LineageStatus.PENDING, category=category, reason=reason, now=self._clock()
        )

    def _post_document(self, event: InvoiceIssuedEvent | PaymentSettledEvent) -> ErpRef:
        if isinstance(event, InvoiceIssuedEvent):
            document = accounting.invoice_document(event, self._mapping)
            if not self._master_data.customer_exists(source=event.source, customer_id=event.data.customer_id):
                raise DependencyPendingError(f"customer {event.data.customer_id} is not synchronised yet")
            return self._erp.create_document(document)
        payment = event.data
        if payment.amount == 0:
            raise NothingToPostError(f"payment for invoice {payment.invoice_id} settles a zero amount")
        invoice_external_id = accounting.invoice_external_id(event.source, payment.invoice_id)
        invoice = self._erp.find_document(invoice_external_id)
        if invoice is None:
            raise DependencyPendingError(f"invoice {invoice_external_id} is not posted yet")
        # A charge does not carry its invoice's metadata; the invoice's entity is authoritative.
        legal_entity = invoice.legal_entity or event.legal_entity
        return self._erp.create_document(accounting.payment_document(event, self._mapping, legal_entity=legal_entity))

    def _upsert_customer(self, event: CustomerUpsertedEvent) -> PostingResult:
        now = self._clock()
        try:
            customer = accounting.erp_customer(event, self._mapping)
        except PermanentPostingError as exc:
            return self._park(event, attempts=1, first_seen=now, error=exc)
        document_ids: tuple[str, ...] = ()
        fresh = self._master_data.upsert_customer(
            source=event.source, customer=event.data, legal_entity=event.legal_entity, as_of=event.occurred_at
        )
        if fresh:
            document_ids = (self._erp.upsert_customer(customer).document_id,)
        self._lineage.record(
            LineageRecord(
                **_event_ref(event).identity(),
                status=LineageStatus.POSTED,
                reason=None if fresh else "superseded: a newer version of the customer is already stored",
                attempts=1,
                first_seen=event.received_at,
                last_seen=now,
                erp_document_ids=document_ids,
                checkpoints=_checkpoints(event, posted=now),
            )
        )
        return PostingResult(event.event_id, PostingStatus.POSTED, document_ids)

    def _ignore(self, event: FinanceEvent, *, attempts: int, first_seen: datetime, reason: str) -> PostingResult:
        now = self._clock()
        self._lineage.record(
            LineageRecord(
                **_event_ref(event).identity(),
                status=LineageStatus.IGNORED,
                reason=reason,
                attempts=attempts,
                first_seen=first_seen,
                last_seen=now,
                checkpoints=_checkpoints(event, ignored=now),
            )
        )
        return PostingResult(event.event_id, PostingStatus.IGNORED)

    def _park(
        self, event: FinanceEvent, *, attempts: int, first_seen: datetime, error: PermanentPostingError
    ) -> PostingResult:
        now = self._clock()
        self._exceptions.send(
            ExceptionRecord(
                **_event_ref(event).identity(),
                category=error.category,
                reason=error.reason,
                attempts=attempts,
                first_seen=first_seen,
                last_seen=now,
                event=event.model_dump(mode="json"),
            )
        )
        self._lineage.record(
            LineageRecord(
                **_event_ref(event).identity(),
                status=LineageStatus.EXCEPTION,
                category=error.category,
                reason=error.reason,
                attempts=attempts,
                first_seen=first_seen,
                last_seen=now,
                checkpoints=_checkpoints(event, exception=now),
            )
        )
        return PostingResult(event.event_id, PostingStatus.EXCEPTION, category=error.category)

    def _park_unreadable(self, detail: Mapping[str, Any], exc: pydantic.ValidationError) -> PostingResult:
        now = self._clock()
        event_id = str(detail.get("event_id") or _digest(detail))
        record = ExceptionRecord(
            event_id=event_id,
            source=str(detail.get("source", "unknown")),
            source_event_id=str(detail.get("source_event_id", event_id)),
            event_type=str(detail.get("event_type", "unknown")),
            category=ExceptionCategory.MALFORMED,
            reason=f"not a valid canonical event: {exc.error_count()} error(s): {_first_error(exc)}",
            attempts=1,
            first_seen=now,
            last_seen=now,
            raw_ref=detail.get("raw_ref") if isinstance(detail.get("raw_ref"), str) else None,
            event=dict(detail),
        )
        self._exceptions.send(record)
        self._lineage.record(
            LineageRecord(
                **record.identity(),
                status=LineageStatus.EXCEPTION,
                category=record.category,
                reason=record.reason,
                attempts=1,
                first_seen=now,
                last_seen=now,
                checkpoints={"exception": now},
            )
        )
        return PostingResult(event_id, PostingStatus.EXCEPTION, category=record.category)


class _UnsupportedForPostingError(PermanentPostingError):
    category = ExceptionCategory.UNSUPPORTED


def _unsupported(event: FinanceEvent) -> PermanentPostingError:
    return _UnsupportedForPostingError(f"{event.event_type} is not posted by this version")


def _event_ref(event: FinanceEvent) -> EventRef:
    return EventRef(
        event_id=event.event_id,
        source=event.source,
        source_event_id=event.source_event_id,
        event_type=event.event_type,
        source_api_version=event.source_api_version,
        raw_ref=event.raw_ref,
        received_at=event.received_at,
        normalised_at=event.normalised_at,
    )


def _checkpoints(event: FinanceEvent, **later: datetime) -> dict[str, datetime]:
    return {"received": event.received_at, "normalised": event.normalised_at, **later}


def _digest(detail: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(detail, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _first_error(exc: pydantic.ValidationError) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(str(part) for part in first['loc'])}: {first['msg']}"
