"""DynamoDB write requests and round trips per posted event, counted on moto through the real composition root.

A document rule on the embedded ledger takes no claim and reads no lineage first: the conditional ledger
put by external id, one lineage write (POSTED unless already POSTED); the round-trip floor is in
test_round_trip_floor. Counts are exact (not timed) so a write added back on the posting path fails.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from billing_sync.composition.posting import posting_service
from billing_sync.domain.errors import ExceptionCategory
from billing_sync.domain.lineage import LineageRecord, LineageStatus
from billing_sync.domain.posting import PostingStatus
from billing_sync.erp.ledger import DynamoLedgerErpClient
from billing_sync.state.dynamo import DynamoLineageStore
from billing_sync_ops.bench import AwsCallCounter
from billing_sync_ops.samples import invoice_event, invoice_payment_event, load_event
from tests.fakes.stores import InMemoryLineageStore
from tests.functional.aws_fixtures import AwsResources
from tests.functional.posting_harness import canonical

CUSTOMER = "cus_QfR7xKp2LmN9aT"  # of stripe_customer_created
T0 = datetime(2026, 11, 1, 1, 0, 5, tzinfo=UTC)


class CrashAfterErpAcceptedError(Exception):
    """The worker dies after the ledger accepted the document."""


def post_counted(name_or_payload: str | dict) -> tuple[Counter[str], int, PostingStatus]:
    """(DynamoDB calls by operation, DynamoDB write requests, status) of posting one event."""
    event = canonical(name_or_payload)
    counter = AwsCallCounter()
    with counter.counting():
        result = posting_service().post(event)
    calls = Counter({name.removeprefix("dynamodb."): n for name, n in counter.calls.items() if "dynamodb." in name})
    return calls, sum(counter.ddb_writes.values()), result.status


def test_an_invoice_and_its_payment_write_twice_each(aws: AwsResources) -> None:
    # GIVEN a known customer
    assert post_counted("stripe_customer_created")[2] is PostingStatus.POSTED
    invoice = load_event("stripe_invoice_finalized")
    # WHEN its invoice, then the invoice's payment post
    invoice_calls, invoice_writes, invoice_status = post_counted(invoice)
    payment_calls, payment_writes, payment_status = post_counted(invoice_payment_event(invoice))
    # THEN each makes two write requests: the conditional ledger put and one lineage write
    assert (invoice_status, payment_status) == (PostingStatus.POSTED, PostingStatus.POSTED)
    assert (invoice_writes, payment_writes) == (2, 2)
    assert (invoice_calls["PutItem"], invoice_calls["UpdateItem"]) == (1, 1)
    assert (payment_calls["PutItem"], payment_calls["UpdateItem"]) == (1, 1)
    # AND the reads are counted too: no lineage read; the invoice's two prices (not in master data, so read
    # every time) and the period calendar; the payment's invoice is known to the instance that posted it;
    # and, without the ledger stream's release function, the waiting room for what waited on each
    assert invoice_calls == Counter(GetItem=3, Query=1, PutItem=1, UpdateItem=1)
    assert payment_calls == Counter(Query=3, PutItem=1, UpdateItem=1)
    # AND lineage and books are whole
    lineage = DynamoLineageStore(aws.dynamodb, "lineage")
    assert {record.status for record in lineage.scan()} == {LineageStatus.POSTED}
    assert all(record.source_event_id and record.erp_document_ids for record in lineage.scan())
    assert DynamoLedgerErpClient(aws.dynamodb, "ledger").trial_balance()[:2] == (2, True)


def test_a_duplicate_is_refused_by_the_conditional_writes(aws: AwsResources) -> None:
    # GIVEN a posted invoice
    post_counted("stripe_customer_created")
    post_counted("stripe_invoice_finalized")
    lineage = DynamoLineageStore(aws.dynamodb, "lineage")
    event_id = canonical("stripe_invoice_finalized").event_id
    before = lineage.get(event_id)
    # WHEN it is delivered again
    calls, writes, status = post_counted("stripe_invoice_finalized")
    # THEN the conditional ledger put and the conditional lineage write both refuse: a duplicate, with no
    # lineage read before them; the books and lineage are as they were
    assert status is PostingStatus.DUPLICATE
    assert (calls["PutItem"], calls["UpdateItem"], writes) == (1, 1, 2)
    assert "Query" not in calls
    assert DynamoLedgerErpClient(aws.dynamodb, "ledger").trial_balance()[:2] == (1, True)
    assert lineage.get(event_id) == before


def test_a_credit_note_writes_its_document_and_lineage_once(aws: AwsResources) -> None:
    # GIVEN a customer and its invoice posted
    post_counted("stripe_customer_created_lifecycle")
    post_counted("stripe_invoice_finalized_june")
    # WHEN a credit note before payment posts
    calls, writes, status = post_counted("stripe_credit_note_created_pre_payment")
    # THEN two writes: the credit memo's conditional ledger put and one lineage write (no refund: no link)
    assert status is PostingStatus.POSTED
    assert writes == 2
    assert calls == Counter(Query=1, PutItem=1, UpdateItem=1)


@pytest.mark.parametrize("sample", ["stripe_customer_created"])
def test_a_customer_upsert_writes_master_data_the_erp_customer_and_lineage(aws: AwsResources, sample: str) -> None:
    # WHEN a customer is upserted (master data: newest version wins, no claim)
    calls, writes, status = post_counted(sample)
    # THEN three writes: the master-data record, the ERP customer, lineage; and the waiting-room query
    assert status is PostingStatus.POSTED
    assert writes == 3
    assert calls == Counter(PutItem=2, UpdateItem=1, Query=1)


def test_a_crash_between_the_ledger_put_and_lineage_posts_once_on_retry(
    aws: AwsResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the ledger accepts the invoice but the worker dies before lineage says POSTED
    post_counted("stripe_customer_created")
    real_record = DynamoLineageStore.record

    def crash_on_posted(store: DynamoLineageStore, record: LineageRecord, **options: bool) -> None:
        if record.status is LineageStatus.POSTED:
            raise CrashAfterErpAcceptedError("killed")
        real_record(store, record, **options)

    monkeypatch.setattr(DynamoLineageStore, "record", crash_on_posted)
    with pytest.raises(CrashAfterErpAcceptedError):
        post_counted("stripe_invoice_finalized")
    monkeypatch.setattr(DynamoLineageStore, "record", real_record)
    # WHEN the message comes back
    calls, writes, status = post_counted("stripe_invoice_finalized")
    # THEN the conditional put finds the document this event created: no second document, lineage POSTED
    assert status is PostingStatus.POSTED
    assert DynamoLedgerErpClient(aws.dynamodb, "ledger").trial_balance()[:2] == (1, True)
    assert (calls["PutItem"], writes) == (1, 2)
    event_id = canonical("stripe_invoice_finalized").event_id
    assert DynamoLineageStore(aws.dynamodb, "lineage").get(event_id).status is LineageStatus.POSTED


def test_a_second_version_with_other_amounts_is_an_exception_without_a_claim(aws: AwsResources) -> None:
    # GIVEN an invoice posted from one event
    post_counted("stripe_customer_created")
    first = invoice_event(
        invoice_id="in_conflict", customer_id=CUSTOMER, event_id="evt_conflict_a", lines=[(2900, 0, 0)]
    )
    assert post_counted(first)[2] is PostingStatus.POSTED
    # WHEN another event says the same invoice is for another amount
    second = invoice_event(
        invoice_id="in_conflict", customer_id=CUSTOMER, event_id="evt_conflict_b", lines=[(3900, 0, 0)]
    )
    status = post_counted(second)[2]
    # THEN it is parked as a conflict and the ledger keeps the first version only
    assert status is PostingStatus.EXCEPTION
    lineage = DynamoLineageStore(aws.dynamodb, "lineage").get(canonical(second).event_id)
    assert (lineage.status, lineage.category) == (LineageStatus.EXCEPTION, ExceptionCategory.VALIDATION)
    assert "in_conflict" in (lineage.reason or "")
    assert DynamoLedgerErpClient(aws.dynamodb, "ledger").trial_balance()[:2] == (1, True)


@pytest.fixture(params=["fake", "dynamodb"])
def lineage_store(request: pytest.FixtureRequest, aws: AwsResources) -> object:
    if request.param == "fake":
        return InMemoryLineageStore()
    return DynamoLineageStore(aws.dynamodb, "lineage")


def test_a_note_unless_posted_never_overwrites_posted(lineage_store: DynamoLineageStore) -> None:
    # GIVEN one event recorded POSTED and another PENDING
    def record(event_id: str, status: LineageStatus) -> LineageRecord:
        return LineageRecord(
            event_id=event_id,
            source="stripe",
            source_event_id=f"evt_{event_id}",
            event_type="invoice.issued",
            status=status,
            first_seen=T0,
            last_seen=T0,
        )

    lineage_store.record(record("posted", LineageStatus.POSTED))
    lineage_store.record(record("pending", LineageStatus.PENDING))
    # WHEN a delivery that lost the race notes WAITING on both, unless posted
    lineage_store.record(record("posted", LineageStatus.WAITING), unless_posted=True)
    lineage_store.record(record("pending", LineageStatus.WAITING), unless_posted=True)
    lineage_store.record(record("new", LineageStatus.WAITING), unless_posted=True)
    # THEN POSTED stays POSTED; the others take the note
    assert lineage_store.get("posted").status is LineageStatus.POSTED
    assert lineage_store.get("pending").status is LineageStatus.WAITING
    assert lineage_store.get("new").status is LineageStatus.WAITING


def test_posted_unless_posted_counts_the_attempt_and_returns_what_was_already_posted(
    lineage_store: DynamoLineageStore,
) -> None:
    # GIVEN an event that waited once (attempt 1, first seen at T0)
    later = T0 + timedelta(hours=2)

    def record(status: LineageStatus, *, at: datetime, documents: tuple[str, ...] = ()) -> LineageRecord:
        return LineageRecord(
            event_id="evt",
            source="stripe",
            source_event_id="evt_1",
            event_type="invoice.issued",
            status=status,
            attempts=1,
            first_seen=at,
            last_seen=at,
            erp_document_ids=documents,
        )

    lineage_store.record(record(LineageStatus.WAITING, at=T0))
    # WHEN it posts: POSTED unless posted, counting the attempt, with this delivery's time as a stand-in
    held = lineage_store.record(
        record(LineageStatus.POSTED, at=later, documents=("LDG-1",)), unless_posted=True, count_attempt=True
    )
    # THEN it was not posted before; the attempt is counted and the first sighting kept
    assert held is None
    posted = lineage_store.get("evt")
    assert (posted.status, posted.attempts, posted.first_seen) == (LineageStatus.POSTED, 2, T0)
    # WHEN a duplicate delivery tries the same
    held = lineage_store.record(
        record(LineageStatus.POSTED, at=later, documents=("LDG-1",)), unless_posted=True, count_attempt=True
    )
    # THEN it is refused and told what was posted; nothing changed
    assert held is not None and (held.status, held.erp_document_ids) == (LineageStatus.POSTED, ("LDG-1",))
    assert lineage_store.get("evt") == posted
    # AND an event lineage never saw starts at attempt 1 with the stand-in as its first sighting
    lineage_store.record(
        record(LineageStatus.POSTED, at=later).model_copy(update={"event_id": "fresh"}),
        unless_posted=True,
        count_attempt=True,
    )
    fresh = lineage_store.get("fresh")
    assert (fresh.attempts, fresh.first_seen) == (1, later)
