"""Ports: what the use cases need from the outside world. Adapters implement these."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from billing_sync.domain.errors import ExceptionCategory

if TYPE_CHECKING:  # annotations only: an ingest function never loads the journal, FX or event models for them
    from billing_sync.domain.events import CustomerUpserted, FinanceEvent, InvoiceLine
    from billing_sync.domain.fx import Rate
    from billing_sync.domain.journal import DocumentKind, ErpCustomer, ErpDocument, ErpRef
    from billing_sync.domain.lineage import EventRef, ExceptionRecord, LineageRecord


class ErpClient(Protocol):
    """An ERP reached by external ids (NetSuite's `eid:` upserts fit this shape).

    Methods raise ErpTransientError (retry) or ErpRejectedError (a person must look).
    """

    def upsert_customer(self, customer: ErpCustomer) -> ErpRef: ...

    def find_document(self, external_id: str) -> ErpRef | None:
        """Where the document lives and its figures (total, currency, the event it was posted from)."""
        ...

    def applied_to(self, external_id: str) -> list[ErpDocument]:
        """Every document applied to `external_id`, whole."""
        ...

    def list_documents(self, kind: DocumentKind) -> Iterator[ErpDocument]:
        """Every posted document of `kind` (for scheduled jobs such as revenue recognition)."""
        ...

    def posted_documents(self, legal_entity: str | None = None) -> Iterator[ErpDocument]:
        """Every posted document (of `legal_entity`), whole: for the trial balance and month-end revaluation."""
        ...

    def find_by_reference(self, reference: str) -> ErpRef | None:
        """The document carrying the source's `reference` (a payment by its payment intent), if posted."""
        ...

    def get_document(self, external_id: str) -> ErpDocument | None:
        """The whole document as posted (lines and journal), for credits and reversals."""
        ...

    def create_document(self, document: ErpDocument) -> ErpRef:
        """Creates the document unless one with its external id exists; then returns that one."""
        ...

    def applied_total(self, external_id: str, kind: DocumentKind) -> int:
        """The totals of the documents of `kind` applied to `external_id` (an invoice's payments, a payment's
        refunds), each document counted once."""
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

    def mark_posted(
        self, event_id: str, *, document_ids: tuple[str, ...], now: datetime, note: str | None = None
    ) -> None:
        """`note` says what a posting without documents established (an invoice's payments complete)."""
        ...

    def mark_failed(
        self,
        event_id: str,
        *,
        status: str,
        category: ExceptionCategory,
        reason: str,
        now: datetime,
    ) -> None: ...

    def note_redrive(self, event_id: str, *, at: datetime, by: str, how: str) -> None:
        """Adds an operator's redrive to the event's trail: when, who (caller identity) and how (filters)."""
        ...

    def record(
        self, record: LineageRecord, *, unless_posted: bool = False, count_attempt: bool = False
    ) -> LineageRecord | None:
        """Writes a whole record (ignored, exception at ingest, posted without a claim); with `unless_posted`
        a POSTED record stays as it is and is returned. The claim and this add the body `raw_ref` names to
        `raw_bodies`. With `count_attempt` the stored attempts go up by one and the stored first sighting
        is kept (the record's own stand in when there is none), so posting needs no read before it."""
        ...

    def note_archived(self, ref: EventRef) -> None:
        """Adds the body `ref.raw_ref` names to the event's `raw_bodies` and changes nothing else; an event
        lineage does not know yet is recorded PENDING (received, on its way to posting)."""
        ...

    def get(self, event_id: str) -> LineageRecord | None: ...


@dataclass(frozen=True)
class Version:
    """Orders versions of one master-data record: source time, then source event id."""

    as_of: datetime
    source_event_id: str


class MasterDataStore(Protocol):
    """Customers, products, prices and subscriptions as the source last said, newest version wins.

    Each upsert stores the record unless a newer version is stored and returns False when it was stale;
    the same version is stored again, so a retry after a failure further on applies it fully.
    """

    def upsert_customer(
        self, *, source: str, customer: CustomerUpserted, legal_entity: str, as_of: datetime, version: str = ""
    ) -> bool: ...

    def customer_exists(self, *, source: str, customer_id: str) -> bool: ...

    def customer_legal_entity(self, *, source: str, customer_id: str) -> str | None:
        """The legal entity the customer belongs to, or None when the customer is not synchronised."""
        ...

    def upsert_record(self, *, kind: str, source: str, record_id: str, data: dict[str, Any], version: Version) -> bool:
        """A product, price or subscription (kind) as a JSON object."""
        ...

    def get_record(self, *, kind: str, source: str, record_id: str) -> dict[str, Any] | None: ...


@dataclass(frozen=True)
class Waiter:
    key: str
    event_id: str
    event: dict[str, Any]
    wait_until: datetime


class WaitingRoom(Protocol):
    """Events held by the name of what they wait for, released when it posts (promise 7)."""

    def hold(self, waiter: Waiter) -> None: ...

    def drop(self, key: str, event_id: str) -> None: ...

    def waiting_for(self, key: str) -> list[Waiter]:
        """Every event waiting for `key` (they stay held until dropped)."""
        ...

    def all_waiting(self) -> list[Waiter]:
        """Every held event, for the periodic sweep (the room holds only what waits)."""
        ...


class PostingQueue(Protocol):
    def requeue(self, event: dict[str, Any]) -> None:
        """Sends a canonical event (as JSON data) back to the posting queue; raises PublishError."""
        ...


class ExceptionQueue(Protocol):
    def send(self, record: ExceptionRecord) -> None: ...


@dataclass(frozen=True)
class Archived:
    """A stored raw body: `ref` names its object version and digest (see lineage.archived_ref); `resent`
    says the source event id already had a body in the archive."""

    ref: str
    resent: bool = False


class RawArchive(Protocol):
    def put(self, *, source: str, source_event_id: str, body: bytes) -> Archived:
        """Stores the raw payload, keeping every earlier body of the same source event; raises PublishError."""
        ...


class EventPublisher(Protocol):
    def publish(self, event: FinanceEvent) -> None:
        """Makes the event durable on the bus; raises PublishError otherwise."""
        ...


class Workflows(Protocol):
    def start(self, workflow: str, *, name: str, event: dict[str, Any]) -> bool:
        """Starts the named workflow for a canonical event; False when an execution of that name exists
        (a duplicate start is a no-op). Raises PublishError when it could not be started."""
        ...


class RateTable(Protocol):
    """Daily exchange rates as data (ECB reference rates loaded by a command)."""

    def rate(self, base: str, quote: str, on: date) -> Rate | None:
        """The latest rate published on or before `on`, looking back over a weekend or holiday (a few days);
        None when there is none, never a guess."""
        ...

    def put_rates(self, rates: Iterable[Rate]) -> int:
        """Stores rates (a rate for the same pair and day is replaced); returns how many."""
        ...


@dataclass(frozen=True)
class PeriodState:
    legal_entity: str
    period: str  # YYYY-MM
    closed: bool
    changed_at: datetime | None = None
    changed_by: str | None = None


class PeriodCalendar(Protocol):
    """Each entity's posting periods as data: every period is open until it is closed."""

    def is_closed(self, legal_entity: str, period: str) -> bool: ...

    def set_closed(self, legal_entity: str, period: str, *, closed: bool, at: datetime, by: str) -> None: ...

    def periods(self, legal_entity: str | None = None) -> list[PeriodState]:
        """Every period that was ever closed or reopened, oldest first."""
        ...


@dataclass(frozen=True)
class BalanceTransaction:
    """A Stripe balance transaction: money moving through the Stripe balance, in its settlement currency.

    `amount` and `fee` are in `currency` (settlement) minor units; `exchange_rate` is set when Stripe
    converted the presentment currency (settlement per presentment major unit).
    """

    id: str
    type: str  # charge, payment, refund, adjustment, payout, stripe_fee, ...
    amount: int
    fee: int
    net: int
    currency: str
    created: datetime
    source: str | None = None  # ch_…, re_…, dp_…, po_…
    exchange_rate: Decimal | None = None
    reporting_category: str | None = None
    fee_details: tuple[tuple[str, int], ...] = ()  # (type, amount) per fee component
    payment_intent: str | None = None  # the source charge's payment intent, when the reader knows it


class SourceReader(Protocol):
    """Read-only access to the billing platform's API (Stripe: a restricted key)."""

    def balance_transaction(self, balance_transaction_id: str) -> BalanceTransaction | None: ...

    def charge_balance_transaction(self, charge_id: str) -> BalanceTransaction | None:
        """The balance transaction of a charge (by the charge's `balance_transaction`), None if not found yet."""
        ...

    def payout_balance_transactions(self, payout_id: str) -> list[BalanceTransaction] | None:
        """Every balance transaction a payout settles (the payout's own included), None if not found yet."""
        ...

    def invoice_lines(self, invoice_id: str) -> list[dict[str, Any]] | None:
        """Every line of an invoice as the source's API returns it, None if not found yet."""
        ...

    def complete_invoice_lines(self, invoice_id: str) -> tuple[InvoiceLine, ...] | None:
        """Every line of an invoice whose event carried a truncated list, as canonical lines; None if not
        found yet."""
        ...

    def list_created(self, collection: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Every object of `collection` (`invoices`, `invoice_payments`, `credit_notes`, `refunds`,
        `balance_transactions`) created in [start, end), as the source's list API returns them (for
        reconciliation: what the source holds, delivered as an event or not)."""
        ...
