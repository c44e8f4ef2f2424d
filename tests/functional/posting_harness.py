"""A posting service wired to in-memory fakes, with a clock the test moves."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from billing_sync.domain.bookkeeping import Bookkeeper
from billing_sync.domain.events import FinanceEvent
from billing_sync.domain.mapping import AccountMapping
from billing_sync.domain.ports import SourceReader
from billing_sync.domain.posting import PostingService
from billing_sync.domain.posting.service import DEFAULT_WAIT_HORIZON, PostingResult
from billing_sync.settings import DEFAULT_MAPPING_FILE
from billing_sync.sources.stripe import StripeNormaliser
from tests.builders import load_event
from tests.fakes.erp import InMemoryErpClient
from tests.fakes.rates import InMemoryRateTable, sample_rate_table
from tests.fakes.stores import (
    InMemoryExceptionQueue,
    InMemoryLineageStore,
    InMemoryMasterDataStore,
    InMemoryPostingQueue,
    InMemoryWaitingRoom,
    RecordingWorkflows,
)

CLAIM_LEASE = timedelta(seconds=90)


def mapping() -> AccountMapping:
    return AccountMapping.model_validate_json(DEFAULT_MAPPING_FILE.read_bytes())


def canonical(event_name_or_payload: str | dict) -> FinanceEvent:
    payload = load_event(event_name_or_payload) if isinstance(event_name_or_payload, str) else event_name_or_payload
    event = StripeNormaliser(default_legal_entity="US01").normalise(
        payload, received_at=datetime(2026, 11, 1, 0, 0, 5, tzinfo=UTC), raw_ref="raw/stripe/test.json"
    )
    assert event is not None, "sample must be a supported type"
    return event


@dataclass
class Clock:
    now: datetime = datetime(2026, 11, 1, 1, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class PostingHarness:
    """Without a waiting room a missing dependency raises for the queue to retry (the adapter-free path)."""

    erp: InMemoryErpClient = field(default_factory=InMemoryErpClient)
    lineage: InMemoryLineageStore = field(default_factory=InMemoryLineageStore)
    master_data: InMemoryMasterDataStore = field(default_factory=InMemoryMasterDataStore)
    exceptions: InMemoryExceptionQueue = field(default_factory=InMemoryExceptionQueue)
    clock: Clock = field(default_factory=Clock)
    waiting_room: InMemoryWaitingRoom | None = None
    requeue: InMemoryPostingQueue | None = None
    wait_horizon: timedelta = DEFAULT_WAIT_HORIZON
    catalogue_required: bool = False
    workflows: RecordingWorkflows = field(default_factory=RecordingWorkflows)
    rates: InMemoryRateTable = field(default_factory=sample_rate_table)
    reader: SourceReader | None = None  # the Stripe API; None: no balance transactions, rates from the table

    @property
    def bookkeeper(self) -> Bookkeeper:
        return Bookkeeper(mapping=mapping(), erp=self.erp, rates=self.rates)

    @property
    def service(self) -> PostingService:
        return PostingService(
            erp=self.erp,
            lineage=self.lineage,
            master_data=self.master_data,
            exceptions=self.exceptions,
            mapping=mapping(),
            clock=self.clock,
            claim_lease=CLAIM_LEASE,
            waiting_room=self.waiting_room,
            requeue=self.requeue,
            wait_horizon=self.wait_horizon,
            catalogue_required=self.catalogue_required,
            workflows=self.workflows,
            bookkeeper=self.bookkeeper,
            reader=self.reader,
        )


@dataclass
class WaitingHarness(PostingHarness):
    """The posting service as deployed: events wait by name in a waiting room and are released to a queue."""

    waiting_room: InMemoryWaitingRoom | None = field(default_factory=InMemoryWaitingRoom)
    requeue: InMemoryPostingQueue | None = field(default_factory=InMemoryPostingQueue)

    @property
    def room(self) -> InMemoryWaitingRoom:
        assert self.waiting_room is not None
        return self.waiting_room

    @property
    def queue(self) -> InMemoryPostingQueue:
        assert self.requeue is not None
        return self.requeue

    def post(self, *samples: str | dict[str, Any]) -> list[PostingResult]:
        return [self.service.post(canonical(sample)) for sample in samples]

    def drain(self) -> list[PostingResult]:
        """Delivers every requeued (released) event through `handle`, as the posting queue would."""
        results = []
        while self.queue.messages:
            results.append(self.service.handle(self.queue.messages.pop(0)))
        return results
