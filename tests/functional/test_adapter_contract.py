"""Contract: each in-memory fake and its DynamoDB adapter (on moto) pass the same assertions.

The posting promises are proven against the fakes; this keeps the fakes honest.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

import billing_sync
from billing_sync.domain.accounting import invoice_document, payment_document
from billing_sync.domain.errors import ExceptionCategory
from billing_sync.domain.events import CustomerUpserted
from billing_sync.domain.journal import DocumentKind
from billing_sync.domain.lineage import EventRef, LineageRecord, LineageStatus
from billing_sync.domain.mapping import AccountMapping
from billing_sync.domain.ports import ClaimState, ErpClient, LineageStore, MasterDataStore, Version, Waiter, WaitingRoom
from billing_sync.erp.ledger import DynamoLedgerErpClient, ledger_document_id
from billing_sync.sources.stripe import StripeNormaliser
from billing_sync.state.dynamo import DynamoLineageStore, DynamoMasterDataStore, DynamoWaitingRoom
from tests.builders import load_event
from tests.fakes.erp import InMemoryErpClient
from tests.fakes.stores import InMemoryLineageStore, InMemoryMasterDataStore, InMemoryWaitingRoom
from tests.functional.aws_fixtures import create_ledger, create_table, create_waiting_room

T0 = datetime(2026, 11, 1, 1, 0, 5, tzinfo=UTC)
LEASE = timedelta(seconds=30)
MAPPING = AccountMapping.model_validate_json(
    (Path(billing_sync.__file__).parent / "config" / "account_mapping.json").read_bytes()
)


def canonical(sample: str):
    event = StripeNormaliser(default_legal_entity="US01").normalise(
        load_event(sample), received_at=T0, raw_ref=f"raw/stripe/{sample}.json"
    )
    assert event is not None
    return event


def event_ref(sample: str) -> EventRef:
    event = canonical(sample)
    return EventRef(
        event_id=event.event_id,
        source=event.source,
        source_event_id=event.source_event_id,
        event_type=event.event_type,
        raw_ref=event.raw_ref,
        received_at=event.received_at,
        normalised_at=event.normalised_at,
    )


def customer(sample: str = "stripe_customer_created") -> CustomerUpserted:
    return canonical(sample).data


# ---- moto -------------------------------------------------------------------------------------


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def dynamodb(aws_credentials: None) -> Iterator[Any]:
    with mock_aws():
        yield boto3.client("dynamodb", region_name="us-east-1")


# ---- the pairs --------------------------------------------------------------------------------


@pytest.fixture(params=["in_memory", "dynamo_ledger"])
def erp(request: pytest.FixtureRequest) -> ErpClient:
    if request.param == "in_memory":
        return InMemoryErpClient()
    client = request.getfixturevalue("dynamodb")
    return DynamoLedgerErpClient(client, create_ledger(client))


@pytest.fixture(params=["in_memory", "dynamo"])
def lineage(request: pytest.FixtureRequest) -> LineageStore:
    if request.param == "in_memory":
        return InMemoryLineageStore()
    client = request.getfixturevalue("dynamodb")
    return DynamoLineageStore(client, create_table(client, "lineage"))


@pytest.fixture(params=["in_memory", "dynamo"])
def master_data(request: pytest.FixtureRequest) -> MasterDataStore:
    if request.param == "in_memory":
        return InMemoryMasterDataStore()
    client = request.getfixturevalue("dynamodb")
    return DynamoMasterDataStore(client, create_table(client, "master-data"))


# ---- ErpClient --------------------------------------------------------------------------------


def test_create_document_is_idempotent_by_external_id(erp):
    # GIVEN the USD invoice document
    document = invoice_document(canonical("stripe_invoice_finalized"), MAPPING)

    # WHEN it is created twice
    first = erp.create_document(document)
    second = erp.create_document(document)

    # THEN the second call finds the first document and creates nothing
    assert first.created is True
    assert second.created is False
    assert second.document_id == first.document_id == ledger_document_id(document.external_id)
    assert second.external_id == first.external_id == "stripe-invoice-in_1QvDDlNx4RkL2mQejBTD4pmw"
    assert document_count(erp) == 1


def test_find_document_returns_none_until_the_document_exists(erp):
    # GIVEN
    document = invoice_document(canonical("stripe_invoice_finalized_jpy"), MAPPING)

    # WHEN / THEN
    assert erp.find_document(document.external_id) is None
    created = erp.create_document(document)
    found = erp.find_document(document.external_id)
    assert found is not None
    assert (found.external_id, found.document_id, found.created) == (document.external_id, created.document_id, False)
    assert erp.find_document("stripe-invoice-in_does_not_exist") is None


def document_count(erp: ErpClient) -> int:
    if isinstance(erp, InMemoryErpClient):
        return len(erp.documents)
    assert isinstance(erp, DynamoLedgerErpClient)
    return sum(1 for _ in erp.journals())


# ---- LineageStore -----------------------------------------------------------------------------


def test_a_claim_is_exclusive_while_leased_and_reclaimable_after(lineage):
    # GIVEN an event never seen
    ref = event_ref("stripe_invoice_finalized")

    # WHEN / THEN the first worker claims it
    first = lineage.claim(ref, now=T0, lease_until=T0 + LEASE)
    assert (first.state, first.attempts, first.first_seen) == (ClaimState.CLAIMED, 1, T0)

    # WHEN / THEN a second worker within the lease sees it in flight
    during = lineage.claim(ref, now=T0 + timedelta(seconds=10), lease_until=T0 + timedelta(seconds=10) + LEASE)
    assert (during.state, during.attempts) == (ClaimState.IN_FLIGHT, 1)

    # WHEN / THEN once the lease has expired another worker takes it over
    later = T0 + LEASE + timedelta(seconds=1)
    taken_over = lineage.claim(ref, now=later, lease_until=later + LEASE)
    assert (taken_over.state, taken_over.attempts, taken_over.first_seen) == (ClaimState.CLAIMED, 2, T0)
    assert lineage.get(ref.event_id).status is LineageStatus.CLAIMED


def test_a_posted_event_stays_posted(lineage):
    # GIVEN a claimed event posted as one ERP document
    ref = event_ref("stripe_invoice_paid")
    lineage.claim(ref, now=T0, lease_until=T0 + LEASE)
    lineage.mark_posted(ref.event_id, document_ids=("LDG-0001",), now=T0 + timedelta(seconds=2))

    # WHEN it is claimed again, even long after the lease
    again = lineage.claim(ref, now=T0 + timedelta(hours=1), lease_until=T0 + timedelta(hours=1) + LEASE)

    # THEN
    assert again.state is ClaimState.ALREADY_POSTED
    assert again.erp_document_ids == ("LDG-0001",)
    assert again.attempts == 1
    record = lineage.get(ref.event_id)
    assert (record.status, record.erp_document_ids) == (LineageStatus.POSTED, ("LDG-0001",))
    assert record.checkpoints["posted"] == T0 + timedelta(seconds=2)


def test_a_failed_event_can_be_claimed_again_at_once(lineage):
    # GIVEN a claim that failed retryably, well within its lease
    ref = event_ref("stripe_invoice_finalized_kwd")
    lineage.claim(ref, now=T0, lease_until=T0 + LEASE)
    lineage.mark_failed(
        ref.event_id,
        status=LineageStatus.PENDING,
        category=ExceptionCategory.ERP_TRANSIENT,
        reason="ledger throttled",
        now=T0 + timedelta(seconds=1),
    )
    failed = lineage.get(ref.event_id)
    assert (failed.status, failed.category, failed.reason) == (
        LineageStatus.PENDING,
        ExceptionCategory.ERP_TRANSIENT,
        "ledger throttled",
    )

    # WHEN the retry claims it
    retry = lineage.claim(ref, now=T0 + timedelta(seconds=5), lease_until=T0 + timedelta(seconds=5) + LEASE)

    # THEN
    assert (retry.state, retry.attempts, retry.first_seen) == (ClaimState.CLAIMED, 2, T0)


def test_a_record_round_trips(lineage):
    # GIVEN an exception recorded at ingest
    record = LineageRecord(
        event_id="0d6c4c86-4a0e-5b1a-9f3e-8f1f1c2a7b10",
        source="stripe",
        source_event_id="evt_1QOAm0Nx4RkL2mQeLed9Jrig",
        event_type="invoice.finalized",
        status=LineageStatus.EXCEPTION,
        category=ExceptionCategory.MALFORMED,
        reason="'ZZZ' is not a known ISO 4217 currency code",
        attempts=1,
        first_seen=T0,
        last_seen=T0 + timedelta(microseconds=250),
        raw_ref="raw/stripe/evt_1QOAm0Nx4RkL2mQeLed9Jrig.json",
        checkpoints={"received": T0, "exception": T0 + timedelta(microseconds=250)},
    )

    # WHEN
    lineage.record(record)

    # THEN
    assert lineage.get(record.event_id) == record
    assert lineage.get("00000000-0000-5000-8000-000000000000") is None


# ---- MasterDataStore --------------------------------------------------------------------------


def test_a_redrive_is_noted_in_the_trail_and_survives_a_later_record(lineage):
    # GIVEN an event parked as MAPPING
    parked = LineageRecord(
        **event_ref("stripe_invoice_finalized").identity(),
        status=LineageStatus.EXCEPTION,
        category=ExceptionCategory.MAPPING,
        reason="no tax_payable account",
        attempts=1,
        first_seen=T0,
        last_seen=T0,
        checkpoints={"received": T0, "exception": T0},
    )
    lineage.record(parked)

    # WHEN an operator redrives it, and it is recorded again afterwards
    lineage.note_redrive(
        parked.event_id, at=T0 + LEASE, by="arn:aws:sts::1:assumed-role/ops/jo", how="--category MAPPING"
    )
    lineage.record(parked.model_copy(update={"status": LineageStatus.IGNORED, "category": None, "reason": "x"}))
    lineage.note_redrive("never-accepted", at=T0, by="ops", how="--event-id never-accepted")

    # THEN the trail says when, who and how, and is kept
    held = lineage.get(parked.event_id)
    assert len(held.redrives) == 1
    assert "by arn:aws:sts::1:assumed-role/ops/jo: --category MAPPING" in held.redrives[0]
    assert held.checkpoints["redriven"] == T0 + LEASE
    assert (held.status, held.category) == (LineageStatus.IGNORED, None)
    assert lineage.get("never-accepted") is None


def test_master_data_keeps_the_newest_version(master_data):
    # GIVEN a customer stored as of T0
    us_customer = customer()
    assert master_data.upsert_customer(source="stripe", customer=us_customer, legal_entity="US01", as_of=T0) is True

    # WHEN / THEN the same version is applied again (a retry heals a half-done upsert), an older one is
    # stale, a newer one is stored
    assert master_data.upsert_customer(source="stripe", customer=us_customer, legal_entity="US01", as_of=T0) is True
    older = T0 - timedelta(seconds=1)
    assert master_data.upsert_customer(source="stripe", customer=us_customer, legal_entity="US01", as_of=older) is False
    newer = T0 + timedelta(microseconds=1)
    assert master_data.upsert_customer(source="stripe", customer=us_customer, legal_entity="US01", as_of=newer) is True


def test_customer_exists_per_source_and_id(master_data):
    # GIVEN
    master_data.upsert_customer(source="stripe", customer=customer(), legal_entity="US01", as_of=T0)

    # WHEN / THEN
    assert master_data.customer_exists(source="stripe", customer_id="cus_QfR7xKp2LmN9aT") is True
    assert master_data.customer_exists(source="stripe", customer_id="cus_QgT3mWq8ZsV1bK") is False
    assert master_data.customer_exists(source="chargebee", customer_id="cus_QfR7xKp2LmN9aT") is False


def test_a_payment_adds_to_what_its_invoice_received_exactly_once(erp):
    # GIVEN the USD invoice posted
    erp.create_document(invoice_document(canonical("stripe_invoice_finalized"), MAPPING))
    invoice = erp.find_document("stripe-invoice-in_1QvDDlNx4RkL2mQejBTD4pmw")
    assert (invoice.total, invoice.currency, erp.applied_total(invoice.external_id, DocumentKind.PAYMENT)) == (
        41623,
        "USD",
        0,
    )
    assert invoice.customer_external_id == "stripe-customer-cus_QfR7xKp2LmN9aT"
    payment = payment_document(canonical("stripe_invoice_payment_paid"), MAPPING, invoice=invoice)

    # WHEN its payment is created twice
    first, second = erp.create_document(payment), erp.create_document(payment)

    # THEN it counts once, and the second answer is the first document with its figures
    assert (first.created, second.created) == (True, False)
    assert second.document_id == first.document_id
    assert (second.total, second.source_event_id) == (41623, payment.source_event_id)
    assert erp.applied_total(invoice.external_id, DocumentKind.PAYMENT) == 41623


def test_a_payment_is_found_by_its_payment_intent(erp):
    # GIVEN the USD invoice and its payment (payment intent pi_3Q4Syi…) posted
    erp.create_document(invoice_document(canonical("stripe_invoice_finalized"), MAPPING))
    invoice = erp.find_document("stripe-invoice-in_1QvDDlNx4RkL2mQejBTD4pmw")
    payment = payment_document(canonical("stripe_invoice_payment_paid"), MAPPING, invoice=invoice)
    erp.create_document(payment)

    # WHEN / THEN a refund finds it by the reference, and an unknown reference finds nothing
    found = erp.find_by_reference("payment_intent:pi_3Q4SyiNx4RkL2mQerHzQjS0T")
    assert (found.external_id, found.total, found.currency) == (payment.external_id, 41623, "USD")
    assert erp.find_by_reference("payment_intent:pi_unknown") is None


def test_get_document_returns_the_document_as_posted(erp):
    # GIVEN
    document = invoice_document(canonical("stripe_invoice_finalized_lifecycle_first"), MAPPING)
    erp.create_document(document)

    # WHEN / THEN lines (with their service periods) and journal round-trip
    assert erp.get_document(document.external_id) == document
    assert erp.get_document("stripe-invoice-in_unknown") is None


def test_master_data_records_keep_the_newest_version_then_the_higher_event_id(master_data):
    # GIVEN a price stored at T0 from evt_b
    price = {"price_id": "price_1", "product_id": "prod_1", "usage_type": "licensed"}
    newer = {**price, "usage_type": "metered"}
    assert master_data.upsert_record(
        kind="price", source="stripe", record_id="price_1", data=price, version=Version(T0, "evt_b")
    )

    # WHEN an older update, and one at the same second from a lower event id, arrive
    stale = Version(T0 - timedelta(seconds=1), "evt_z")
    same_second_lower = Version(T0, "evt_a")

    # THEN both are recorded as stale and the stored version stays; a newer one is applied
    assert (
        master_data.upsert_record(kind="price", source="stripe", record_id="price_1", data=newer, version=stale)
        is False
    )
    assert (
        master_data.upsert_record(
            kind="price", source="stripe", record_id="price_1", data=newer, version=same_second_lower
        )
        is False
    )
    assert master_data.get_record(kind="price", source="stripe", record_id="price_1") == price
    assert master_data.upsert_record(
        kind="price", source="stripe", record_id="price_1", data=newer, version=Version(T0, "evt_c")
    )
    assert master_data.get_record(kind="price", source="stripe", record_id="price_1") == newer
    assert master_data.get_record(kind="product", source="stripe", record_id="price_1") is None


@pytest.fixture(params=["in_memory", "dynamo"])
def waiting_room(request: pytest.FixtureRequest) -> WaitingRoom:
    if request.param == "in_memory":
        return InMemoryWaitingRoom()
    client = request.getfixturevalue("dynamodb")
    return DynamoWaitingRoom(client, create_waiting_room(client))


def test_the_waiting_room_holds_by_key_until_dropped(waiting_room):
    # GIVEN two events waiting for one invoice and one for a customer
    until = T0 + timedelta(days=3)
    for key, event_id in (("document:inv-1", "e1"), ("document:inv-1", "e2"), ("customer:stripe:cus_1", "e3")):
        waiting_room.hold(Waiter(key=key, event_id=event_id, event={"event_id": event_id}, wait_until=until))
    waiting_room.hold(Waiter(key="document:inv-1", event_id="e1", event={"event_id": "e1"}, wait_until=until))

    # WHEN / THEN they are found by the key they wait for, once each, and leave when dropped
    assert sorted(w.event_id for w in waiting_room.waiting_for("document:inv-1")) == ["e1", "e2"]
    waiting_room.drop("document:inv-1", "e1")
    assert [w.event for w in waiting_room.waiting_for("document:inv-1")] == [{"event_id": "e2"}]
    assert sorted(w.event_id for w in waiting_room.all_waiting()) == ["e2", "e3"]
    assert {w.wait_until for w in waiting_room.all_waiting()} == {until}


# ---- the embedded ledger's books --------------------------------------------------------------


def test_the_ledger_trial_balance_balances_per_currency_after_posting(dynamodb):
    # GIVEN the ledger on moto with the USD and JPY invoices posted (and the USD invoice paid)
    ledger = DynamoLedgerErpClient(dynamodb, create_ledger(dynamodb))
    for document in (
        invoice_document(canonical("stripe_invoice_finalized"), MAPPING),
        invoice_document(canonical("stripe_invoice_finalized_jpy"), MAPPING),
    ):
        ledger.create_document(document)
    invoice = ledger.find_document("stripe-invoice-in_1QvDDlNx4RkL2mQejBTD4pmw")
    ledger.create_document(payment_document(canonical("stripe_invoice_payment_paid"), MAPPING, invoice=invoice))
    ledger.create_document(invoice_document(canonical("stripe_invoice_finalized"), MAPPING))

    # WHEN
    count, balanced, rows = ledger.trial_balance()

    # THEN
    assert (count, balanced) == (3, True)
    per_currency: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        per_currency[row.currency][0] += row.debit
        per_currency[row.currency][1] += row.credit
    assert dict(per_currency) == {"USD": [41623 + 41623, 41623 + 41623], "JPY": [29400, 29400]}
    by_account = {(row.account, row.currency): (row.debit, row.credit) for row in rows}
    assert by_account[("1200 Accounts Receivable", "USD")] == (41623, 41623)
    assert by_account[("2310 Consumption Tax Payable", "JPY")] == (0, 2673)
    assert rows == sorted(rows, key=lambda row: (row.account, row.currency))


def test_the_ledger_stores_the_journal_it_was_given(dynamodb):
    # GIVEN
    ledger = DynamoLedgerErpClient(dynamodb, create_ledger(dynamodb))
    document = invoice_document(canonical("stripe_invoice_finalized"), MAPPING)

    # WHEN
    ref = ledger.create_document(document)

    # THEN the journal read back is the one posted, memo and all
    assert dict(ledger.journals()) == {ref.document_id: document.journal}
    stored = dynamodb.get_item(TableName="ledger", Key={"pk": {"S": "DOC#" + document.external_id}})["Item"]
    assert json.loads(stored["document_lines"]["S"])[0]["item"] == "SUB-PLATFORM"
    assert stored["total"] == {"N": "41623"}
