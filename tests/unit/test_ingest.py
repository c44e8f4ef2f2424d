"""Promises 1 and 4 at the front door: a signed event is never lost nor refused; a bad request stores nothing."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from billing_sync.domain.errors import (
    ExceptionCategory,
    InvalidJsonError,
    InvalidSignatureError,
    MissingSignatureError,
    PayloadTooLargeError,
    PublishError,
)
from billing_sync.domain.events import InvoiceIssuedEvent, derive_event_id
from billing_sync.domain.ingest import IngestOutcome, IngestService
from billing_sync.domain.lineage import LineageStatus, archived_body, raw_location
from billing_sync.domain.webhook import MAX_WEBHOOK_BYTES, WebhookIntake
from billing_sync.sources.stripe import StripeNormaliser, verify_signature
from tests.builders import event_payload, invoice_event, load_event, sign_stripe_payload
from tests.fakes.stores import (
    InMemoryExceptionQueue,
    InMemoryLineageStore,
    InMemoryPublisher,
    InMemoryRawArchive,
)

SECRET = "whsec_test_9f8e7d6c5b4a3210"
NOW = datetime(2026, 11, 1, 1, 0, 5, tzinfo=UTC)
NOW_TS = int(NOW.timestamp())


@dataclass
class Intake:
    """The webhook use case wired to in-memory fakes, with a fixed clock."""

    archive: InMemoryRawArchive = field(default_factory=InMemoryRawArchive)
    publisher: InMemoryPublisher = field(default_factory=InMemoryPublisher)
    lineage: InMemoryLineageStore = field(default_factory=InMemoryLineageStore)
    exceptions: InMemoryExceptionQueue = field(default_factory=InMemoryExceptionQueue)

    def __post_init__(self) -> None:
        self.ingest = IngestService(
            normaliser=StripeNormaliser(default_legal_entity="US01"),
            archive=self.archive,
            publisher=self.publisher,
            lineage=self.lineage,
            exceptions=self.exceptions,
            clock=lambda: NOW,
        )
        self.webhook = WebhookIntake(
            check_signature=lambda body, header: verify_signature(body, header, [SECRET], now=NOW_TS),
            ingest=self.ingest,
        )

    def receive_signed(self, body: bytes):
        return self.webhook.receive(body, sign_stripe_payload(body, SECRET, NOW_TS))

    def stored_nothing(self) -> bool:
        return not (self.archive.objects or self.publisher.events or self.lineage.records or self.exceptions.records)


@pytest.fixture
def intake() -> Intake:
    return Intake()


def test_a_signed_invoice_is_archived_then_published(intake):
    # GIVEN the signed USD invoice sample
    body = event_payload(load_event("stripe_invoice_finalized"))

    # WHEN
    result = intake.receive_signed(body)

    # THEN the raw bytes are archived and the canonical event carries their key onto the bus
    assert result.outcome is IngestOutcome.PUBLISHED
    assert result.event_type == "invoice.issued"
    assert result.event_id == derive_event_id("stripe", "evt_1QH6KZNx4RkL2mQemUSGRWS1")
    assert intake.archive.objects == {"raw/stripe/evt_1QH6KZNx4RkL2mQemUSGRWS1.json": body}
    [published] = intake.publisher.events
    assert isinstance(published, InvoiceIssuedEvent)
    assert published.event_id == result.event_id
    assert raw_location(published.raw_ref) == "raw/stripe/evt_1QH6KZNx4RkL2mQemUSGRWS1.json"
    assert intake.archive.body(published.raw_ref) == body
    assert published.received_at == NOW
    assert published.data.total == 41623
    assert intake.exceptions.records == []


class ArchiveWatchingPublisher(InMemoryPublisher):
    """Notes which raw payloads were archived at the moment each event was published."""

    def __init__(self, archive: InMemoryRawArchive) -> None:
        super().__init__()
        self.archived_at_publish: list[set[str]] = []
        self._archive = archive

    def publish(self, event) -> None:
        self.archived_at_publish.append(set(self._archive.objects))
        super().publish(event)


def test_the_archive_is_written_before_the_publish():
    # GIVEN
    archive = InMemoryRawArchive()
    intake = Intake(archive=archive, publisher=ArchiveWatchingPublisher(archive))

    # WHEN
    intake.receive_signed(event_payload(load_event("stripe_invoice_paid")))

    # THEN
    assert intake.publisher.archived_at_publish == [{"raw/stripe/evt_1QfN1UNx4RkL2mQew0eZo5Ib.json"}]


@pytest.mark.parametrize(
    ("sample", "source_type"),
    [
        ("stripe_payment_intent_created", "payment_intent.created"),
        ("stripe_payment_method_attached", "payment_method.attached"),
    ],
)
def test_an_unsupported_type_is_recorded_ignored_and_not_published(intake, sample, source_type):
    # GIVEN
    payload = load_event(sample)

    # WHEN
    result = intake.receive_signed(event_payload(payload))

    # THEN it is acknowledged, archived and recorded as IGNORED (UNSUPPORTED), never published
    assert result.outcome is IngestOutcome.IGNORED
    assert intake.publisher.events == []
    assert intake.exceptions.records == []
    record = intake.lineage.get(derive_event_id("stripe", payload["id"]))
    assert record is not None
    assert (record.status, record.category) == (LineageStatus.IGNORED, ExceptionCategory.UNSUPPORTED)
    assert record.event_type == source_type
    assert raw_location(record.raw_ref) == f"raw/stripe/{payload['id']}.json"
    assert list(intake.archive.objects) == [raw_location(record.raw_ref)]
    assert [body.sha256 for body in record.raw_bodies] == [archived_body(record.raw_ref, received_at=NOW).sha256]


def test_a_signed_event_that_cannot_be_normalised_is_parked_malformed_not_refused(intake):
    # GIVEN the signed invoice in an unknown currency
    payload = load_event("stripe_invoice_finalized_unknown_currency")

    # WHEN
    result = intake.receive_signed(event_payload(payload))

    # THEN it is accepted, archived, queued as MALFORMED with its raw payload reference, and lineage says so
    assert result.outcome is IngestOutcome.EXCEPTION
    assert result.category is ExceptionCategory.MALFORMED
    assert intake.publisher.events == []
    [parked] = intake.exceptions.records
    assert parked.category is ExceptionCategory.MALFORMED
    assert "ZZZ" in parked.reason
    assert parked.event_id == derive_event_id("stripe", payload["id"])
    assert raw_location(parked.raw_ref) == f"raw/stripe/{payload['id']}.json" in intake.archive.objects
    assert parked.attempts == 1
    record = intake.lineage.get(parked.event_id)
    assert (record.status, record.category) == (LineageStatus.EXCEPTION, ExceptionCategory.MALFORMED)


def test_an_invoice_with_paginated_lines_is_published_marked_incomplete(intake):
    # GIVEN a signed invoice whose lines are not all in the event
    payload = invoice_event()
    payload["data"]["object"]["lines"]["has_more"] = True

    # WHEN
    result = intake.receive_signed(event_payload(payload))

    # THEN it is accepted and published, saying its line list is incomplete (posting never books a part)
    assert result.outcome is IngestOutcome.PUBLISHED
    [event] = intake.publisher.events
    assert event.data.lines_complete is False
    assert intake.exceptions.records == []


def test_a_signed_json_array_is_accepted_and_parked_malformed(intake):
    # GIVEN a correctly signed body that is JSON but not an event object
    body = event_payload([load_event("stripe_invoice_finalized")])

    # WHEN
    result = intake.receive_signed(body)

    # THEN it is archived under a key derived from the body and parked, never refused
    assert result.outcome is IngestOutcome.EXCEPTION
    assert result.source_event_id.startswith("unidentified-")
    assert result.source_event_type == "unknown"
    assert list(intake.archive.objects.values()) == [body]
    [parked] = intake.exceptions.records
    assert parked.category is ExceptionCategory.MALFORMED
    assert raw_location(parked.raw_ref) in intake.archive.objects
    assert intake.lineage.get(parked.event_id).status is LineageStatus.EXCEPTION
    assert intake.publisher.events == []


def test_the_same_unidentifiable_body_parks_under_the_same_key(intake):
    # GIVEN
    body = event_payload([1, 2, 3])

    # WHEN
    first, second = intake.receive_signed(body), intake.receive_signed(body)

    # THEN a redelivery is recognisable as the same thing
    assert first.event_id == second.event_id
    assert len(intake.archive.objects) == 1


@pytest.mark.parametrize(
    ("make_request", "error"),
    [
        pytest.param(
            lambda: (b" " * (MAX_WEBHOOK_BYTES + 1), "t=1,v1=0"),
            PayloadTooLargeError,
            id="oversize",
        ),
        pytest.param(
            lambda: (event_payload(load_event("stripe_invoice_finalized")), None),
            MissingSignatureError,
            id="missing-header",
        ),
        pytest.param(
            lambda: (event_payload(load_event("stripe_invoice_finalized")), ""),
            MissingSignatureError,
            id="empty-header",
        ),
        pytest.param(
            lambda: (
                event_payload(load_event("stripe_invoice_finalized")),
                sign_stripe_payload(event_payload(load_event("stripe_invoice_paid")), SECRET, NOW_TS),
            ),
            InvalidSignatureError,
            id="signature-of-another-body",
        ),
        pytest.param(
            lambda: (
                event_payload(load_event("stripe_invoice_finalized")),
                sign_stripe_payload(event_payload(load_event("stripe_invoice_finalized")), SECRET, NOW_TS - 301),
            ),
            InvalidSignatureError,
            id="stale",
        ),
        pytest.param(
            lambda: (b"\xff\xfe{}", sign_stripe_payload(b"\xff\xfe{}", SECRET, NOW_TS)),
            InvalidJsonError,
            id="not-utf8",
        ),
    ],
)
def test_a_refused_request_stores_nothing(intake, make_request, error):
    # GIVEN a request that must be refused before anything is stored
    body, header = make_request()

    # WHEN / THEN
    with pytest.raises(error):
        intake.webhook.receive(body, header)
    assert intake.stored_nothing()


def test_the_size_limit_is_inclusive(intake):
    # GIVEN a signed event padded to exactly 256 KiB
    payload = load_event("stripe_customer_created")
    body = event_payload(payload)
    body = body[:-1] + b" " * (MAX_WEBHOOK_BYTES - len(body)) + b"}"
    assert len(body) == MAX_WEBHOOK_BYTES == 256 * 1024

    # WHEN
    result = intake.receive_signed(body)

    # THEN
    assert result.outcome is IngestOutcome.PUBLISHED


def test_a_publish_failure_propagates_so_the_source_retries(intake):
    # GIVEN a bus that cannot take the event
    intake.publisher.fail_next = [PublishError("PutEvents failed: 1 of 1 entries")]

    # WHEN / THEN the caller gets the error (the webhook answers 5xx) and nothing claims success
    with pytest.raises(PublishError, match="PutEvents failed"):
        intake.receive_signed(event_payload(load_event("stripe_invoice_finalized")))
    assert intake.publisher.events == []
    assert intake.lineage.records == {}
    assert intake.exceptions.records == []


def test_a_retry_after_a_publish_failure_publishes_the_same_event(intake):
    # GIVEN the first delivery failed to publish
    body = event_payload(load_event("stripe_invoice_finalized"))
    intake.publisher.fail_next = [PublishError("throttled")]
    with pytest.raises(PublishError):
        intake.receive_signed(body)

    # WHEN Stripe redelivers
    result = intake.receive_signed(body)

    # THEN
    assert result.outcome is IngestOutcome.PUBLISHED
    assert [e.event_id for e in intake.publisher.events] == [result.event_id]
    assert len(intake.archive.objects) == 1


def test_a_signed_body_that_is_not_json_is_kept_and_parked_malformed(intake):
    # GIVEN a body the sender signed that is cut off mid-object (not JSON)
    body = b'{"id": "evt_1QTruncatedNx4RkL2mQe", "object": "event", "type": '

    # WHEN it is received
    result = intake.receive_signed(body)

    # THEN its raw bytes are archived and exactly one MALFORMED record says why; nothing is published, and
    # the sender is answered as accepted (retrying the same bytes cannot help)
    assert list(intake.archive.objects.values()) == [body]
    assert intake.publisher.events == []
    [record] = intake.exceptions.records
    assert record.category.value == "MALFORMED" and "not valid JSON" in record.reason
    assert [r.category.value for r in intake.lineage.records.values()] == ["MALFORMED"]
    assert result.outcome.value == "EXCEPTION"


def test_a_resend_with_another_body_keeps_both_and_lineage_names_the_new_one(intake):
    # GIVEN an invoice accepted and published (lineage is written later, by posting)
    payload = load_event("stripe_invoice_finalized")
    first = event_payload(payload)
    intake.receive_signed(first)
    assert intake.lineage.records == {}

    # WHEN Stripe sends the same event id again with another body, then the first body once more
    resent = event_payload({**payload, "pending_webhooks": 0})
    second = intake.receive_signed(resent)
    intake.receive_signed(first)

    # THEN every body is kept, each publish names its own, and lineage names each distinct body once
    assert second.outcome is IngestOutcome.PUBLISHED
    assert intake.archive.versions[f"raw/stripe/{payload['id']}.json"] == [first, resent, first]
    assert [intake.archive.body(event.raw_ref) for event in intake.publisher.events] == [first, resent, first]
    record = intake.lineage.get(second.event_id)
    assert record is not None and record.status is LineageStatus.PENDING  # on its way to posting
    digests = [hashlib.sha256(body).hexdigest() for body in (resent, first)]
    assert [body.sha256 for body in record.raw_bodies] == digests
