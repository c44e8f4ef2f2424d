"""DynamoDB round trips per posted event, counted on moto through the real composition root.

The floor for the embedded ledger: a posted document costs its conditional ledger put and one lineage
write, nothing else. Lineage is not read first (the conditional writes answer "already posted"), a
document this instance created or read is not read again (ledger documents never change), customers and
the catalogue this instance stored or read in the last 30 s are not read again, and what waits for the
new document is released by the ledger stream's consumer instead of a waiting-room query on the posting
path. Counts are exact, not timed: a round trip added back on the posting path fails here.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from typing import Any

import pytest

from billing_sync import composition
from billing_sync.composition.posting import posting_service
from billing_sync.domain.accounting import invoice_document
from billing_sync.domain.events import FinanceEvent
from billing_sync.domain.journal import DocumentKind
from billing_sync.domain.lineage import LineageStatus
from billing_sync.domain.posting import PostingService, PostingStatus
from billing_sync.domain.posting.release import DocumentRelease
from billing_sync.erp.ledger import DynamoLedgerErpClient
from billing_sync.handlers import release_waiting
from billing_sync.state.dynamo import DynamoLineageStore, DynamoWaitingRoom
from billing_sync_ops.bench import AwsCallCounter
from billing_sync_ops.lambda_runtime import LocalLambdaContext
from billing_sync_ops.samples import (
    CATALOGUE_OF_BUILT_INVOICES,
    invoice_event,
    invoice_paid_event,
    invoice_payment_event,
    load_event,
    with_event_id,
)
from tests.functional.aws_fixtures import AwsResources, drain
from tests.functional.posting_harness import CLAIM_LEASE, WaitingHarness, canonical, mapping

CUSTOMER = "cus_QfR7xKp2LmN9aT"  # of stripe_customer_created
PUT_AND_LINEAGE = Counter(PutItem=1, UpdateItem=1)


def post_counted(name_or_payload: str | dict[str, Any]) -> tuple[Counter[str], int, PostingStatus]:
    """(DynamoDB calls by operation, DynamoDB write requests, status) of posting one event."""
    counter = AwsCallCounter()
    event = canonical(name_or_payload)
    with counter.counting():
        result = posting_service().post(event)
    calls = Counter({name.removeprefix("dynamodb."): n for name, n in counter.calls.items() if "dynamodb." in name})
    return calls, sum(counter.ddb_writes.values()), result.status


def built_invoice(n: int) -> dict[str, Any]:
    return invoice_event(
        invoice_id=f"in_floor{n:03d}", customer_id=CUSTOMER, event_id=f"evt_floorinv{n:03d}", lines=[(2900, 0, 0)]
    )


@pytest.fixture
def released_by_stream(aws: AwsResources, monkeypatch: pytest.MonkeyPatch) -> AwsResources:
    """The posting function as composed where the stack runs the release function on the ledger stream."""
    monkeypatch.setenv("RELEASE_ON_LEDGER_STREAM", "true")
    composition.reset()
    return aws


@pytest.fixture
def known_customer(released_by_stream: AwsResources) -> AwsResources:
    """The catalogue and the customer stored by this instance, and one invoice posted (the period calendar read)."""
    for sample in (*CATALOGUE_OF_BUILT_INVOICES, "stripe_customer_created"):
        assert post_counted(sample)[2] is PostingStatus.POSTED
    calls, _, status = post_counted(built_invoice(0))
    # the period calendar, read once per 30 s by an instance
    assert (status, calls) == (PostingStatus.POSTED, Counter(GetItem=1, PutItem=1, UpdateItem=1))
    return released_by_stream


def test_an_invoice_and_its_payment_each_cost_the_put_and_the_lineage_write(known_customer: AwsResources) -> None:
    # GIVEN a warm instance that stored the customer and the catalogue
    invoice = built_invoice(1)
    # WHEN an invoice, then its payment post
    invoice_calls, invoice_writes, invoice_status = post_counted(invoice)
    payment_calls, payment_writes, payment_status = post_counted(invoice_payment_event(invoice))
    # THEN each is two round trips and two writes: the conditional ledger put and lineage POSTED
    assert (invoice_status, payment_status) == (PostingStatus.POSTED, PostingStatus.POSTED)
    assert (invoice_calls, invoice_writes) == (PUT_AND_LINEAGE, 2)
    assert (payment_calls, payment_writes) == (PUT_AND_LINEAGE, 2)
    # AND lineage and books are whole
    lineage = DynamoLineageStore(known_customer.dynamodb, "lineage")
    assert {record.status for record in lineage.scan()} == {LineageStatus.POSTED}
    posted = [record for record in lineage.scan() if record.event_type in ("invoice.issued", "payment.settled")]
    assert len(posted) == 3
    assert all(record.attempts == 1 and len(record.erp_document_ids) == 1 for record in posted)
    assert DynamoLedgerErpClient(known_customer.dynamodb, "ledger").trial_balance()[:2] == (3, True)


def test_a_credit_note_a_void_and_a_write_off_each_cost_the_put_and_the_lineage_write(
    released_by_stream: AwsResources,
) -> None:
    # GIVEN the lifecycle customer and three of its invoices, posted by this instance
    post_counted("stripe_customer_created_lifecycle")
    for sample in (
        "stripe_invoice_finalized_june",
        "stripe_invoice_finalized_one_off_voided",
        "stripe_invoice_finalized_one_off_uncollectible",
    ):
        assert post_counted(sample)[2] is PostingStatus.POSTED
    # WHEN a credit note, a void and a write-off of them post
    for sample in (
        "stripe_credit_note_created_pre_payment",
        "stripe_invoice_voided",
        "stripe_invoice_marked_uncollectible",
    ):
        calls, writes, status = post_counted(sample)
        # THEN each is its conditional ledger put and lineage POSTED: the invoice it needs is known
        assert (status, calls, writes) == (PostingStatus.POSTED, PUT_AND_LINEAGE, 2), sample


def test_a_duplicate_delivery_is_refused_by_both_conditional_writes(known_customer: AwsResources) -> None:
    # GIVEN a posted invoice
    lineage = DynamoLineageStore(known_customer.dynamodb, "lineage")
    before = lineage.get(canonical(built_invoice(0)).event_id)
    # WHEN it is delivered again
    calls, writes, status = post_counted(built_invoice(0))
    # THEN the ledger put and the lineage write are both refused: two round trips, nothing changed
    assert (status, calls, writes) == (PostingStatus.DUPLICATE, PUT_AND_LINEAGE, 2)
    assert lineage.get(canonical(built_invoice(0)).event_id) == before
    assert DynamoLedgerErpClient(known_customer.dynamodb, "ledger").trial_balance()[:2] == (1, True)


def test_a_customer_upsert_writes_three_times_and_releases_its_waiters_inline(
    released_by_stream: AwsResources,
) -> None:
    # WHEN a customer is upserted
    calls, writes, status = post_counted("stripe_customer_created")
    # THEN master data, the ERP customer and lineage are written, and the waiting room is asked once
    # (master data is not on the ledger stream)
    assert (status, writes) == (PostingStatus.POSTED, 3)
    assert calls == Counter(PutItem=2, UpdateItem=1, Query=1)


def test_an_instance_reads_what_it_has_not_stored_or_read(known_customer: AwsResources) -> None:
    # GIVEN an invoice posted by another instance (a fresh composition: nothing known)
    invoice = built_invoice(1)
    assert post_counted(invoice)[2] is PostingStatus.POSTED
    composition.reset()
    # WHEN its payment posts, then a new invoice of the same customer
    payment_calls = post_counted(invoice_payment_event(invoice))[0]
    invoice_calls = post_counted(built_invoice(2))[0]
    # THEN the payment reads its invoice and the period calendar; the invoice then reads its customer, price
    # and product (the calendar is known now)
    assert payment_calls == PUT_AND_LINEAGE + Counter(GetItem=2)
    assert invoice_calls == PUT_AND_LINEAGE + Counter(GetItem=3)


def test_without_the_stream_consumer_posting_releases_inline(aws: AwsResources) -> None:
    # GIVEN the posting function as the stack composes it without the release function
    for sample in (*CATALOGUE_OF_BUILT_INVOICES, "stripe_customer_created"):
        post_counted(sample)
    post_counted(built_invoice(0))
    invoice = built_invoice(1)
    # WHEN an invoice and its payment post
    invoice_calls = post_counted(invoice)[0]
    payment_calls = post_counted(invoice_payment_event(invoice))[0]
    # THEN each also asks the waiting room for what it releases: the invoice's name; the payment's name,
    # its invoice's payments and its payment intent
    assert invoice_calls == PUT_AND_LINEAGE + Counter(Query=1)
    assert payment_calls == PUT_AND_LINEAGE + Counter(Query=3)


def stream_event(dynamodb: Any, external_id: str) -> dict[str, Any]:
    """The ledger stream's INSERT record of a created document, as Lambda delivers it."""
    item = dynamodb.get_item(TableName="ledger", Key={"pk": {"S": f"DOC#{external_id}"}})["Item"]
    return {
        "Records": [
            {
                "eventID": "1",
                "eventName": "INSERT",
                "eventSource": "aws:dynamodb",
                "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/ledger/stream/2026-11-27T00:00:00.000",
                "dynamodb": {"Keys": {"pk": item["pk"]}, "NewImage": item, "SequenceNumber": "100"},
            }
        ]
    }


def test_the_ledger_stream_releases_a_payment_that_arrived_before_its_invoice(
    known_customer: AwsResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a payment that arrived before its invoice and waits for it by name
    aws = known_customer
    monkeypatch.setenv("WAITING_ROOM_TABLE_NAME", "waiting-room")
    invoice = built_invoice(1)
    payment = invoice_payment_event(invoice)
    assert post_counted(payment)[2] is PostingStatus.WAITING
    # WHEN the invoice posts: two round trips, no waiting-room query on the posting path
    calls, _, status = post_counted(invoice)
    assert (status, calls) == (PostingStatus.POSTED, PUT_AND_LINEAGE)
    external_id = f"stripe-invoice-{invoice['data']['object']['id']}"
    assert len(DynamoWaitingRoom(aws.dynamodb, "waiting-room").waiting_for(f"document:{external_id}")) == 1
    # AND the ledger stream delivers the new document to the release function
    record = stream_event(aws.dynamodb, external_id)
    counter = AwsCallCounter()
    with counter.counting():
        response = release_waiting.lambda_handler(record, LocalLambdaContext("ReleaseWaitingFunction", 30))
    # THEN the payment is back on the posting queue and out of the room: one query, one send, one delete
    assert response == {"batchItemFailures": []}
    assert counter.calls == Counter({"dynamodb.Query": 1, "sqs.SendMessage": 1, "dynamodb.DeleteItem": 1})
    assert DynamoWaitingRoom(aws.dynamodb, "waiting-room").all_waiting() == []
    [message] = drain(aws.sqs, aws.capture_queue_url)
    result = posting_service().handle(json.loads(message["Body"])["detail"])
    assert result.status is PostingStatus.POSTED
    assert DynamoLedgerErpClient(aws.dynamodb, "ledger").trial_balance()[:2] == (3, True)


# ---- the production shape (no claim, release on the ledger stream) in any order, on the fakes ----


def stream_world() -> tuple[WaitingHarness, PostingService, DocumentRelease]:
    world = WaitingHarness(catalogue_required=True)
    service = PostingService(
        erp=world.erp,
        lineage=world.lineage,
        master_data=world.master_data,
        exceptions=world.exceptions,
        mapping=mapping(),
        clock=world.clock,
        claim_lease=CLAIM_LEASE,
        waiting_room=world.waiting_room,
        requeue=world.requeue,
        bookkeeper=world.bookkeeper,
        claim_documents=False,
        release_documents=False,
    )
    return world, service, DocumentRelease(waiting=world.room, requeue=world.queue)


def history(customers: int, invoices: int) -> list[FinanceEvent]:
    payloads: list[dict[str, Any]] = [load_event(name) for name in CATALOGUE_OF_BUILT_INVOICES]
    ids = [f"cus_Str{n:04d}Nx4RkL2mQe" for n in range(customers)]
    for n, customer in enumerate(ids):
        event = with_event_id(load_event("stripe_customer_created"), f"evt_1StrCus{n:04d}Nx4RkL2mQe")
        event["data"]["object"]["id"] = customer
        payloads.append(event)
    for n in range(invoices):
        invoice = invoice_event(
            invoice_id=f"in_1Str{n:05d}Nx4RkL2mQe",
            customer_id=ids[n % customers],
            event_id=f"evt_1StrInv{n:05d}Nx4RkL2mQe",
            lines=[(4900 * (1 + n % 4), 490 * (n % 2), 391 + n % 7), (25000, 0, 2219)],
        )
        amount_due = invoice["data"]["object"]["amount_due"]
        first = amount_due // 3 + n % 5
        payloads += [
            invoice,
            invoice_payment_event(invoice, amount=first),
            invoice_payment_event(invoice, amount=amount_due - first),
            invoice_paid_event(invoice),
        ]
    return [canonical(payload) for payload in payloads]


@pytest.mark.parametrize("seed", [3, 2026])
def test_with_release_on_the_stream_any_order_with_redeliveries_posts_everything_once(seed: int) -> None:
    # GIVEN a history of customers, invoices, two payments each and the paid check, with redeliveries, shuffled
    rng = random.Random(seed)
    events = history(customers=6, invoices=30)
    deliveries = events + rng.sample(events, 20)
    rng.shuffle(deliveries)
    world, service, release = stream_world()
    streamed = 0
    # WHEN they are delivered in random order, the stream delivering each created document after its post
    pending: list[dict[str, Any] | FinanceEvent] = list(deliveries)
    while pending or world.queue.messages:
        pending += world.queue.messages
        world.queue.messages.clear()
        item = pending.pop(rng.randrange(len(pending)))
        service.handle(item) if isinstance(item, dict) else service.post(item)
        created = list(world.erp.documents.values())
        for document in created[streamed:]:
            release.created(document)
        streamed = len(created)
    # THEN every event is POSTED, nothing waits, nothing was parked, each document was booked once
    statuses = Counter(world.lineage.get(event.event_id).status for event in events)
    assert statuses == Counter({LineageStatus.POSTED: len(events)})
    assert world.room.all_waiting() == []
    assert world.exceptions.records == []
    kinds = Counter(document.kind for document in world.erp.documents.values())
    assert kinds == Counter({DocumentKind.INVOICE: 30, DocumentKind.PAYMENT: 60})


def counted_calls(action: Any) -> tuple[Any, Counter[str]]:
    counter = AwsCallCounter()
    with counter.counting():
        result = action()
    return result, Counter({name.removeprefix("dynamodb."): n for name, n in counter.calls.items()})


def test_the_ledger_client_keeps_documents_that_exist_within_its_budget_and_never_a_missing_one(
    aws: AwsResources,
) -> None:
    # GIVEN an invoice document not created yet
    document = invoice_document(canonical(built_invoice(1)), mapping())
    ledger = DynamoLedgerErpClient(aws.dynamodb, "ledger")
    # WHEN it is looked up twice
    # THEN each look reads: a missing document is never kept
    assert counted_calls(lambda: ledger.find_document(document.external_id)) == (None, Counter(GetItem=1))
    assert counted_calls(lambda: ledger.get_document(document.external_id)) == (None, Counter(GetItem=1))
    # WHEN it is created: it is known without a read, whole
    ledger.create_document(document)
    found, calls = counted_calls(lambda: ledger.get_document(document.external_id))
    assert calls == Counter()
    assert found is not None and (found.total, found.journal) == (document.total, document.journal)
    # AND a client without a budget reads it every time
    unkept = DynamoLedgerErpClient(aws.dynamodb, "ledger", known_bytes=0)
    assert counted_calls(lambda: unkept.find_document(document.external_id))[1] == Counter(GetItem=1)
    assert counted_calls(lambda: unkept.find_document(document.external_id))[1] == Counter(GetItem=1)
