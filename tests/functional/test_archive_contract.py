"""Contract: the raw archive and lineage's archived bodies behave alike in memory and on AWS (moto).

The ingest tests run on the in-memory archive and lineage store; these assertions keep them honest
against S3 (versioned, as deployed) and DynamoDB.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from billing_sync.aws.archive import S3RawArchive, raw_object
from billing_sync.domain.events import derive_event_id
from billing_sync.domain.lineage import EventRef, LineageRecord, LineageStatus, archived_body, raw_location
from billing_sync.domain.ports import ClaimState, LineageStore, RawArchive
from billing_sync.state.dynamo import DynamoLineageStore
from tests.builders import event_payload, load_event
from tests.fakes.stores import InMemoryLineageStore, InMemoryRawArchive
from tests.functional.aws_fixtures import create_table

T0 = datetime(2026, 11, 1, 1, 0, 5, tzinfo=UTC)
PAYLOAD = load_event("stripe_invoice_finalized")
FIRST = event_payload(PAYLOAD)
RESENT = event_payload({**PAYLOAD, "pending_webhooks": 0})


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


Reader = Callable[[str], bytes]


@pytest.fixture(params=["in_memory", "s3"])
def archive(request: pytest.FixtureRequest) -> tuple[RawArchive, Reader]:
    if request.param == "in_memory":
        fake = InMemoryRawArchive()
        return fake, fake.body
    request.getfixturevalue("aws")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="raw-archive")
    s3.put_bucket_versioning(Bucket="raw-archive", VersioningConfiguration={"Status": "Enabled"})

    def read(ref: str) -> bytes:
        located = raw_object(ref)
        assert located is not None
        return bytes(s3.get_object(**located.get_object_args())["Body"].read())

    return S3RawArchive(s3, "raw-archive"), read


@pytest.fixture(params=["in_memory", "dynamo"])
def lineage(request: pytest.FixtureRequest) -> LineageStore:
    if request.param == "in_memory":
        return InMemoryLineageStore()
    request.getfixturevalue("aws")
    client = boto3.client("dynamodb")
    return DynamoLineageStore(client, create_table(client, "lineage"))


def ref(body: bytes, *, version: str, received_at: datetime = T0) -> EventRef:
    digest = hashlib.sha256(body).hexdigest()
    return EventRef(
        event_id=derive_event_id("stripe", PAYLOAD["id"]),
        source="stripe",
        source_event_id=PAYLOAD["id"],
        event_type="invoice.finalized",
        raw_ref=f"s3://raw-archive/raw/stripe/{PAYLOAD['id']}.json?versionId={version}&sha256={digest}",
        received_at=received_at,
    )


def digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def test_every_body_of_a_source_event_stays_readable(archive: tuple[RawArchive, Reader]) -> None:
    # GIVEN an empty archive (a versioned bucket on S3)
    store, read = archive
    # WHEN one source event id is archived, resent with another body, then sent again with the first
    first = store.put(source="stripe", source_event_id=PAYLOAD["id"], body=FIRST)
    second = store.put(source="stripe", source_event_id=PAYLOAD["id"], body=RESENT)
    third = store.put(source="stripe", source_event_id=PAYLOAD["id"], body=FIRST)

    # THEN only the first was new; every reference reads back its own bytes under the one location
    assert (first.resent, second.resent, third.resent) == (False, True, True)
    assert [read(a.ref) for a in (first, second, third)] == [FIRST, RESENT, FIRST]
    assert {raw_location(a.ref).removeprefix("s3://raw-archive/") for a in (first, second, third)} == {
        f"raw/stripe/{PAYLOAD['id']}.json"
    }
    bodies = [archived_body(a.ref, received_at=T0) for a in (first, second, third)]
    assert [b.sha256 for b in bodies if b] == [digest(FIRST), digest(RESENT), digest(FIRST)]
    assert len({b.version_id for b in bodies if b}) == 3


def test_lineage_names_each_body_once_whoever_writes_it(lineage: LineageStore) -> None:
    # GIVEN an event claimed and posted from its first body
    first = ref(FIRST, version="v1")
    assert lineage.claim(first, now=T0, lease_until=T0 + timedelta(seconds=30)).state is ClaimState.CLAIMED
    lineage.mark_posted(first.event_id, document_ids=("INV-1",), now=T0)

    # WHEN a resend with another body is noted, and the first body is noted again later
    later = T0 + timedelta(hours=1)
    lineage.note_archived(ref(RESENT, version="v2", received_at=later))
    lineage.note_archived(ref(FIRST, version="v3", received_at=later + timedelta(hours=1)))

    # THEN the event stays posted and names two bodies, each with the version that first held it
    record = lineage.get(first.event_id)
    assert record is not None and record.status is LineageStatus.POSTED
    assert [(b.sha256, b.version_id, b.received_at) for b in record.raw_bodies] == [
        (digest(FIRST), "v1", T0),
        (digest(RESENT), "v2", later),
    ]


def test_a_body_noted_before_posting_leaves_a_record_posting_can_claim(lineage: LineageStore) -> None:
    # GIVEN a resent body noted before any posting wrote lineage for the event
    resent = ref(RESENT, version="v2")
    lineage.note_archived(resent)
    pending = lineage.get(resent.event_id)
    assert pending is not None and pending.status is LineageStatus.PENDING
    assert pending.raw_ref == resent.raw_ref

    # WHEN posting claims the event from its first body
    first = ref(FIRST, version="v1", received_at=T0 - timedelta(seconds=5))
    claim = lineage.claim(first, now=T0, lease_until=T0 + timedelta(seconds=30))

    # THEN the claim wins and lineage names both bodies, first received first
    assert (claim.state, claim.attempts) == (ClaimState.CLAIMED, 1)
    record = lineage.get(first.event_id)
    assert record is not None
    assert [b.sha256 for b in record.raw_bodies] == [digest(FIRST), digest(RESENT)]


def test_a_whole_record_adds_its_body(lineage: LineageStore) -> None:
    # GIVEN an ignored event recorded from one body, then recorded again from a resend with another
    for body, version, at in ((FIRST, "v1", T0), (RESENT, "v2", T0 + timedelta(minutes=5))):
        identity: dict[str, Any] = ref(body, version=version, received_at=at).identity()
        lineage.record(
            LineageRecord(
                **identity,
                status=LineageStatus.IGNORED,
                first_seen=T0,
                last_seen=at,
                checkpoints={"received": at},
            )
        )

    # THEN both bodies are named
    record = lineage.get(derive_event_id("stripe", PAYLOAD["id"]))
    assert record is not None
    assert [(b.sha256, b.version_id) for b in record.raw_bodies] == [(digest(FIRST), "v1"), (digest(RESENT), "v2")]
