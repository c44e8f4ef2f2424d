"""Use case: post one canonical event to the ERP, exactly once, in whatever order events arrive.

claim (conditional write) -> resolve what it depends on (or wait for it by name) -> build the documents
(accounting) -> create them by deterministic external id -> lineage -> release what waited for them.
A retry after an unknown outcome (crash after the ERP accepted, timeout) is safe because the ERP
adapter creates by external id only when no document with that id exists; a second version of a
posted document with other amounts is an exception, never silently dropped.

With an ERP whose create by external id is itself conditional (the embedded ledger's conditional put,
`claim_documents=False`), a document rule takes no claim and reads no lineage first: the conditional
create lets one document through under concurrent deliveries and retries, and lineage is written once,
POSTED unless it already says POSTED (then the delivery is a duplicate), counting the attempt in the same
write. Only a path that would record something else (waiting, pending, parked, ignored) reads lineage
first, so a late duplicate is never parked or held. Sagas keep the claim: their executions hold it.

What waits for a created document is released by the keys `resolver.released_by` names: here, after
lineage, or (`release_documents=False`) by a consumer of the ERP's change stream (the ledger table's
stream), which sees every created document after its write, so nothing that holds before it is missed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import pydantic

from billing_sync.domain.bookkeeping import Bookkeeper
from billing_sync.domain.errors import (
    ClaimInFlightError,
    DependencyPendingError,
    DocumentConflictError,
    ExceptionCategory,
    MappingError,
    NothingToPostError,
    PermanentPostingError,
    RetryablePostingError,
)
from billing_sync.domain.events import CustomerUpsertedEvent, FinanceEvent, validate_finance_event
from billing_sync.domain.journal import ErpDocument, ErpRef
from billing_sync.domain.lineage import EventRef, ExceptionStage, LineageRecord, LineageStatus
from billing_sync.domain.mapping import AccountMapping
from billing_sync.domain.outcomes import OutcomeRecorder
from billing_sync.domain.periods import moved_note
from billing_sync.domain.ports import (
    Claim,
    ClaimState,
    ErpClient,
    ExceptionQueue,
    LineageStore,
    MasterDataStore,
    PostingQueue,
    SourceReader,
    Version,
    Waiter,
    WaitingRoom,
    Workflows,
)
from billing_sync.domain.posting.resolver import Resolver, released_by
from billing_sync.domain.posting.rules import POSTING_RULES, MasterDataUpdate, Plan, PostingRule, RuleKind
from billing_sync.domain.retry import Delivery, retries_exhausted
from billing_sync.domain.waiting import release_waiters

DEFAULT_WAIT_HORIZON = timedelta(days=3)
"""Stripe retries a webhook for up to three days; a dependency missing longer than that needs a person."""


class PostingStatus(StrEnum):
    POSTED = "POSTED"
    DUPLICATE = "DUPLICATE"  # already posted earlier; nothing sent to the ERP
    IGNORED = "IGNORED"  # nothing to book (a zero-value document)
    WAITING = "WAITING"  # held until what it depends on posts
    STARTED = "STARTED"  # handed to a saga (a Step Functions execution) that books it and records the outcome
    EXCEPTION = "EXCEPTION"  # parked in the exception queue with a category


@dataclass(frozen=True)
class PostingResult:
    event_id: str
    status: PostingStatus
    erp_document_ids: tuple[str, ...] = ()
    category: ExceptionCategory | None = None
    waiting_for: str | None = None


class _UnsupportedForPostingError(PermanentPostingError):
    category = ExceptionCategory.UNSUPPORTED


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
        waiting_room: WaitingRoom | None = None,
        requeue: PostingQueue | None = None,
        wait_horizon: timedelta = DEFAULT_WAIT_HORIZON,
        catalogue_required: bool = False,
        workflows: Workflows | None = None,
        saga_lease: timedelta = DEFAULT_WAIT_HORIZON + timedelta(days=1),
        bookkeeper: Bookkeeper | None = None,
        reader: SourceReader | None = None,
        claim_documents: bool = True,
        release_documents: bool = True,
    ) -> None:
        self._claim_documents = claim_documents
        self._release_documents = release_documents
        self._erp = erp
        self._lineage = lineage
        self._master_data = master_data
        self._clock = clock
        self._claim_lease = claim_lease
        self._waiting = waiting_room
        self._requeue = requeue
        self._horizon = wait_horizon
        self._workflows = workflows
        self._saga_lease = saga_lease
        self._outcomes = OutcomeRecorder(lineage=lineage, exceptions=exceptions, clock=clock)
        self._bookkeeper = bookkeeper or Bookkeeper(mapping=mapping, erp=erp)
        self._world = Resolver(
            erp=erp,
            master_data=master_data,
            mapping=mapping,
            catalogue_required=catalogue_required,
            reader=reader,
        )

    def handle(self, detail: Mapping[str, Any], *, delivery: Delivery | None = None) -> PostingResult:
        """Posts a canonical event given as JSON data; raises RetryablePostingError to be retried."""
        try:
            event: FinanceEvent = validate_finance_event(detail)
        except pydantic.ValidationError as exc:
            return self._park_unreadable(detail, exc)
        return self.post(event, delivery=delivery)

    def post(self, event: FinanceEvent, *, delivery: Delivery | None = None) -> PostingResult:
        """Raises RetryablePostingError (the queue retries); parks permanent failures, and a transient one
        on the `delivery`'s last receive (see domain.retry)."""
        ref = _event_ref(event)
        rule = POSTING_RULES.get(event.event_type)  # type: ignore[call-overload]
        if rule is None:
            now = self._clock()
            error = _UnsupportedForPostingError(f"{event.event_type} is not posted by this version")
            return self._park(event, ref, attempts=1, first_seen=now, error=error)
        if rule.kind is RuleKind.MASTER_DATA:
            try:
                return self._upsert_master_data(event, ref, rule)
            except Exception as exc:
                if (exhausted := retries_exhausted(exc, delivery)) is None:
                    raise
                now = self._clock()
                return self._park(
                    event, ref, attempts=delivery.receive_count if delivery else 1, first_seen=now, error=exhausted
                )

        now = self._clock()
        unclaimed = rule.kind is RuleKind.DOCUMENT and not self._claim_documents
        if unclaimed:
            claim = _Sighting(lambda: self._lineage_read(event.event_id, now=now))
        else:
            lease = self._saga_lease if rule.kind is RuleKind.SAGA else self._claim_lease
            claim = _Sighting.of(self._lineage.claim(ref, now=now, lease_until=now + lease))
            if claim.state is ClaimState.ALREADY_POSTED:
                return PostingResult(event.event_id, PostingStatus.DUPLICATE, claim.erp_document_ids)
            if claim.state is ClaimState.IN_FLIGHT:
                if rule.kind is RuleKind.SAGA:
                    return self._ensure_workflow(event, rule, attempt=claim.attempts)
                if delivery is not None and delivery.last:
                    # Another delivery of the same event holds the claim; if its worker dies, that message
                    # returns and claims again after the lease. This copy can go without being dead-lettered.
                    return PostingResult(event.event_id, PostingStatus.DUPLICATE)
                raise ClaimInFlightError(f"event {event.event_id} is being posted by another worker")
        try:
            plan = self._plan_or_wait(event, rule, claim, unclaimed=unclaimed)
            if isinstance(plan, _Held):
                category = ExceptionCategory.DEPENDENCY_PENDING
                return PostingResult(event.event_id, PostingStatus.WAITING, category=category, waiting_for=plan.key)
            if plan.workflow is not None:
                started = self._start_workflow(event, plan.workflow, attempt=claim.attempts)
                return PostingResult(event.event_id, PostingStatus.STARTED, waiting_for=started)
            document_ids = tuple(self._create(event, document) for document in plan.documents)
            self._link(event, plan)
        except Exception as exc:
            if claim.state is ClaimState.ALREADY_POSTED:
                # Unclaimed, lineage (read only now) says an earlier delivery posted it: a late duplicate is
                # never held, ignored, parked or retried because the world changed after it posted.
                return PostingResult(event.event_id, PostingStatus.DUPLICATE, claim.erp_document_ids)
            return self._not_posted(event, ref, claim, exc, delivery=delivery, unclaimed=unclaimed)
        note = "; ".join(part for part in (plan.note, moved_note(plan.documents)) if part) or None
        if unclaimed:
            held = self._record_posted(event, note=note, document_ids=document_ids, first_seen=now)
            if held is not None:  # an earlier delivery recorded it: its documents are these
                return PostingResult(event.event_id, PostingStatus.DUPLICATE, held.erp_document_ids)
        else:
            self._lineage.mark_posted(event.event_id, document_ids=document_ids, now=self._clock(), note=note)
        released = (key for document in plan.documents for key in released_by(document))
        self._release(plan.provides + (tuple(released) if self._release_documents else ()))
        return PostingResult(event.event_id, PostingStatus.POSTED, document_ids)

    def _not_posted(
        self,
        event: FinanceEvent,
        ref: EventRef,
        claim: _Sighting,
        exc: Exception,
        *,
        delivery: Delivery | None,
        unclaimed: bool,
    ) -> PostingResult:
        """Ignored, parked, or noted pending and raised again for the queue to retry."""
        if isinstance(exc, NothingToPostError):
            self._outcomes.settled(
                ref,
                status=LineageStatus.IGNORED,
                reason=exc.reason,
                attempts=claim.attempts,
                first_seen=claim.first_seen,
                checkpoints=_checkpoints(event),
            )
            return PostingResult(event.event_id, PostingStatus.IGNORED)
        if isinstance(exc, PermanentPostingError):
            return self._park(event, ref, attempts=claim.attempts, first_seen=claim.first_seen, error=exc)
        if (exhausted := retries_exhausted(exc, delivery)) is not None:
            return self._park(event, ref, attempts=claim.attempts, first_seen=claim.first_seen, error=exhausted)
        if isinstance(exc, RetryablePostingError):
            self._mark_pending(event, claim, exc.category, exc.reason, unclaimed=unclaimed)
        else:
            reason = f"{type(exc).__name__}: {exc}"
            self._mark_pending(event, claim, ExceptionCategory.INTERNAL, reason, unclaimed=unclaimed)
        raise exc

    def sweep(self) -> list[PostingResult]:
        """Posts again every held event: one that can now post does, one past its horizon is parked.

        Run on a schedule, it heals a release that was missed (a requeue that failed after posting).
        """
        if self._waiting is None:
            return []
        results = []
        for waiter in self._waiting.all_waiting():
            try:
                result = self.handle(waiter.event)
            except RetryablePostingError:
                continue  # still held; the next sweep tries again
            if result.status is not PostingStatus.WAITING or result.waiting_for != waiter.key:
                self._waiting.drop(waiter.key, waiter.event_id)
            results.append(result)
        return results

    # ---- waiting by name ----

    def _lineage_read(self, event_id: str, *, now: datetime) -> Claim:
        """In place of a claim, on a path other than POSTED: what lineage holds (one read)."""
        held = self._lineage.get(event_id)
        if held is not None and held.status is LineageStatus.POSTED:
            return Claim(ClaimState.ALREADY_POSTED, held.attempts, held.first_seen, held.erp_document_ids)
        if held is None:
            return Claim(ClaimState.CLAIMED, 1, now)
        return Claim(ClaimState.CLAIMED, held.attempts + 1, held.first_seen)

    def _plan_or_wait(
        self, event: FinanceEvent, rule: PostingRule, claim: _Sighting, *, unclaimed: bool
    ) -> Plan | _Held:
        """The plan, or _Held when the event is now held by the name of what it waits for.

        Raises _AlreadyPostedError for an unclaimed event lineage says is POSTED: a late duplicate never waits.
        """
        try:
            return self._plan(event, rule)
        except DependencyPendingError as exc:
            if self._waiting is None or exc.key is None:
                raise
            pending = exc
        if claim.state is ClaimState.ALREADY_POSTED:
            raise _AlreadyPostedError(event.event_id)
        first_seen = claim.first_seen
        while True:
            if self._clock() >= first_seen + self._horizon:
                raise _HorizonPassedError(
                    f"{pending.reason}; still missing after {self._horizon} (waited for {pending.key})"
                ) from pending
            held_key = pending.key
            assert held_key is not None
            self._waiting.hold(
                Waiter(
                    key=held_key,
                    event_id=event.event_id,
                    event=event.model_dump(mode="json"),
                    wait_until=first_seen + self._horizon,
                )
            )
            # It may have posted between the first look and the hold: look again before sleeping on it.
            try:
                plan = self._plan(event, rule)
            except DependencyPendingError as again:
                if again.key == pending.key:
                    self._note(
                        event,
                        claim,
                        LineageStatus.WAITING,
                        ExceptionCategory.DEPENDENCY_PENDING,
                        f"waiting for {pending.key}: {pending.reason}",
                        unclaimed=unclaimed,
                    )
                    return _Held(held_key)
                self._waiting.drop(held_key, event.event_id)
                if again.key is None:
                    raise
                pending = again
                continue
            self._waiting.drop(held_key, event.event_id)
            return plan

    def _plan(self, event: FinanceEvent, rule: PostingRule) -> Plan:
        """The rule's plan with every document translated and placed in an open period (a missing rate waits)."""
        plan = rule.plan(event, self._world)
        if not plan.documents:
            return plan
        documents = tuple(
            self._bookkeeper.finish(document, settlement=plan.settlements.get(document.external_id))
            for document in plan.documents
        )
        return dataclasses.replace(plan, documents=documents)

    def _release(self, keys: tuple[str, ...]) -> None:
        release_waiters(keys, waiting=self._waiting, requeue=self._requeue)

    # ---- documents and master data ----

    def _record_posted(
        self, event: FinanceEvent, *, note: str | None, document_ids: tuple[str, ...], first_seen: datetime
    ) -> LineageRecord | None:
        """Lineage POSTED in one write that counts the attempt; the record already POSTED, if one is."""
        now = self._clock()
        record = LineageRecord(
            **_event_ref(event).identity(),
            status=LineageStatus.POSTED,
            reason=note,
            attempts=1,
            first_seen=first_seen,
            last_seen=now,
            erp_document_ids=document_ids,
            checkpoints={**_checkpoints(event), "posted": now},
        )
        return self._lineage.record(record, unless_posted=True, count_attempt=True)

    def _link(self, event: FinanceEvent, plan: Plan) -> None:
        version = Version(as_of=event.occurred_at, source_event_id=event.source_event_id)
        for link in plan.links:
            self._master_data.upsert_record(
                kind=link.kind, source=event.source, record_id=link.record_id, data=link.data, version=version
            )

    def _start_workflow(self, event: FinanceEvent, workflow: str, *, attempt: int) -> str:
        """Starts the saga that books the event; its execution holds the claim until it records the outcome.

        The execution name is the event id and the claim attempt: a duplicate start is a no-op, and a
        redrive after an exception starts a new execution.
        """
        if self._workflows is None:
            raise _UnsupportedForPostingError(f"{event.event_type} needs the {workflow} workflow, not configured here")
        name = f"{event.event_id}-{attempt}"
        self._workflows.start(workflow, name=name, event=event.model_dump(mode="json"))
        return name

    def _ensure_workflow(self, event: FinanceEvent, rule: PostingRule, *, attempt: int) -> PostingResult:
        """A saga's claim belongs to execution `<event id>-<attempt>`: start it again, which is a no-op when it
        exists. It starts it when the delivery that claimed could neither start it nor release the claim
        (a throttle after a failed start), which would otherwise hold the claim for the whole saga lease with
        nothing running. An execution that ended without recording is parked when it ends (record_ended)."""
        workflow = self._plan(event, rule).workflow
        assert workflow is not None, f"the {rule.event_type} saga rule plans no workflow"
        started = self._start_workflow(event, workflow, attempt=attempt)
        return PostingResult(event.event_id, PostingStatus.STARTED, waiting_for=started)

    def _create(self, event: FinanceEvent, document: ErpDocument) -> str:
        ref = self._erp.create_document(document)
        if not ref.created:
            _check_same_version(event, document, ref)
        return ref.document_id

    def _upsert_master_data(self, event: FinanceEvent, ref: EventRef, rule: PostingRule) -> PostingResult:
        """Newest version wins, so master data needs no claim, and it never waits."""
        now = self._clock()
        try:
            plan = rule.plan(event, self._world)
        except PermanentPostingError as exc:
            return self._park(event, ref, attempts=1, first_seen=now, error=exc)
        document_ids: tuple[str, ...] = ()
        reason = plan.note
        update = plan.master_data
        fresh = update is None or self._store(event, update)
        if update is not None and not fresh:
            reason = f"superseded: a newer version of the {update.kind} is already stored"
        elif update is not None and update.customer is not None:
            document_ids = (self._erp.upsert_customer(update.customer).document_id,)
        self._outcomes.settled(
            ref,
            status=LineageStatus.POSTED,
            reason=reason,
            attempts=1,
            first_seen=event.received_at,
            checkpoints=_checkpoints(event),
            document_ids=document_ids,
        )
        if fresh:
            self._release(plan.provides)
        return PostingResult(event.event_id, PostingStatus.POSTED, document_ids)

    def _store(self, event: FinanceEvent, update: MasterDataUpdate) -> bool:
        """Stores the record unless a newer version is stored; False when this one is stale."""
        if isinstance(event, CustomerUpsertedEvent):
            return self._master_data.upsert_customer(
                source=event.source,
                customer=event.data,
                legal_entity=event.legal_entity,
                as_of=event.occurred_at,
                version=event.source_event_id,
            )
        version = Version(as_of=event.occurred_at, source_event_id=event.source_event_id)
        return self._master_data.upsert_record(
            kind=update.kind, source=event.source, record_id=update.record_id, data=update.data, version=version
        )

    # ---- outcomes ----

    def _mark_pending(
        self, event: FinanceEvent, claim: _Sighting, category: ExceptionCategory, reason: str, *, unclaimed: bool
    ) -> None:
        """Releases the claim and says why, so lineage explains the retry (and a dead letter)."""
        self._note(event, claim, LineageStatus.PENDING, category, reason, unclaimed=unclaimed)

    def _note(
        self,
        event: FinanceEvent,
        claim: _Sighting,
        status: LineageStatus,
        category: ExceptionCategory,
        reason: str,
        *,
        unclaimed: bool,
    ) -> None:
        """Says why the event is not posted yet: on the claim, or (unclaimed) as a whole record that never
        overwrites POSTED, since a concurrent delivery of the same event may have posted it meanwhile."""
        now = self._clock()
        if not unclaimed:
            self._lineage.mark_failed(event.event_id, status=status, category=category, reason=reason, now=now)
            return
        record = LineageRecord(
            **_event_ref(event).identity(),
            status=status,
            category=category,
            reason=reason,
            attempts=claim.attempts,
            first_seen=claim.first_seen,
            last_seen=now,
            checkpoints=_checkpoints(event),
        )
        self._lineage.record(record, unless_posted=True)

    def _park(
        self, event: FinanceEvent, ref: EventRef, *, attempts: int, first_seen: datetime, error: PermanentPostingError
    ) -> PostingResult:
        self._outcomes.parked(
            ref,
            category=error.category,
            reason=error.reason,
            attempts=attempts,
            first_seen=first_seen,
            checkpoints=_checkpoints(event),
            stage=ExceptionStage.POSTING,
            event=event.model_dump(mode="json"),
            missing_key=_missing_key(error),
        )
        return PostingResult(event.event_id, PostingStatus.EXCEPTION, category=error.category)

    def _park_unreadable(self, detail: Mapping[str, Any], exc: pydantic.ValidationError) -> PostingResult:
        now = self._clock()
        event_id = str(detail.get("event_id") or _digest(detail))
        ref = EventRef(
            event_id=event_id,
            source=str(detail.get("source", "unknown")),
            source_event_id=str(detail.get("source_event_id", event_id)),
            event_type=str(detail.get("event_type", "unknown")),
            raw_ref=detail.get("raw_ref") if isinstance(detail.get("raw_ref"), str) else None,
            received_at=now,
        )
        self._outcomes.parked(
            ref,
            category=ExceptionCategory.MALFORMED,
            reason=f"not a valid canonical event: {exc.error_count()} error(s): {_first_error(exc)}",
            attempts=1,
            first_seen=now,
            checkpoints={},
            stage=ExceptionStage.POSTING,
            event=dict(detail),
        )
        return PostingResult(event_id, PostingStatus.EXCEPTION, category=ExceptionCategory.MALFORMED)


def posting_lanes(details: Sequence[Mapping[str, Any]]) -> list[list[int]]:
    """Indexes of `details` (canonical events as JSON data) split into lanes that may post in parallel.

    Events about the same invoice or credit note share a lane, and so does every event of a customer
    whose upsert is among them; a lane keeps arrival order. Lanes only spare a wait: the waiting room
    still makes any order post the same books.
    """
    keys = [_lane_keys(detail) for detail in details]
    owned = {key for own, _ in keys for key in own}
    parent = list(range(len(details)))

    def root(index: int) -> int:
        while parent[index] != index:
            parent[index] = parent[parent[index]]
            index = parent[index]
        return index

    first: dict[str, int] = {}
    for index, (own, refers) in enumerate(keys):
        for key in sorted(own | (refers & owned)):
            if key in first:
                parent[root(index)] = root(first[key])
            else:
                first[key] = index
    lanes: dict[int, list[int]] = {}
    for index in range(len(details)):
        lanes.setdefault(root(index), []).append(index)
    return list(lanes.values())


def _lane_keys(detail: Mapping[str, Any]) -> tuple[frozenset[str], frozenset[str]]:
    """(what the event is about, what it refers to) by name, from its payload's ids."""
    data = detail.get("data")
    if not isinstance(data, Mapping):
        return frozenset(), frozenset()
    own = {f"{name}:{data[name]}" for name in ("invoice_id", "credit_note_id") if isinstance(data.get(name), str)}
    customer = data.get("customer_id")
    refers: set[str] = set()
    if isinstance(customer, str):
        (own if detail.get("event_type") == "customer.upserted" else refers).add(f"customer_id:{customer}")
    return frozenset(own), frozenset(refers)


@dataclass(frozen=True)
class _Held:
    key: str


class _Sighting:
    """The claim, or for an unclaimed event what lineage holds, read on first use: the path that ends
    POSTED never asks, so it reads nothing before its writes."""

    def __init__(self, read: Callable[[], Claim]) -> None:
        self._read = read
        self._claim: Claim | None = None

    @classmethod
    def of(cls, claim: Claim) -> _Sighting:
        sighting = cls(lambda: claim)
        sighting._claim = claim
        return sighting

    @property
    def claim(self) -> Claim:
        if self._claim is None:
            self._claim = self._read()
        return self._claim

    @property
    def state(self) -> ClaimState:
        return self.claim.state

    @property
    def attempts(self) -> int:
        return self.claim.attempts

    @property
    def first_seen(self) -> datetime:
        return self.claim.first_seen

    @property
    def erp_document_ids(self) -> tuple[str, ...]:
        return self.claim.erp_document_ids


class _AlreadyPostedError(Exception):
    """An unclaimed event that would wait or fail is already POSTED in lineage: a duplicate."""


class _HorizonPassedError(PermanentPostingError):
    category = ExceptionCategory.DEPENDENCY_PENDING


def _missing_key(error: PermanentPostingError) -> str | None:
    """What a MAPPING or DEPENDENCY_PENDING exception lacks, by name."""
    if isinstance(error, MappingError):
        return error.key
    if isinstance(error.__cause__, DependencyPendingError):
        return error.__cause__.key
    return None


def _check_same_version(event: FinanceEvent, document: ErpDocument, existing: ErpRef) -> None:
    """A document already posted from another event must carry the same amounts (promise 7)."""
    if existing.source_event_id in (None, event.event_id):
        return
    if (existing.total, existing.currency) != (document.total, document.currency):
        raise DocumentConflictError(
            f"{document.external_id} was posted from event {existing.source_event_id} for {existing.total} "
            f"{existing.currency}; event {event.event_id} ({event.source_event_id}) says {document.total} "
            f"{document.currency}"
        )


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


def _checkpoints(event: FinanceEvent) -> dict[str, datetime]:
    return {"received": event.received_at, "normalised": event.normalised_at}


def _digest(detail: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(detail, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _first_error(exc: pydantic.ValidationError) -> str:
    first = exc.errors()[0]
    return f"{'.'.join(str(part) for part in first['loc'])}: {first['msg']}"
