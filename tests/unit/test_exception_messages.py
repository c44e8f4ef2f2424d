"""One reader for the three shapes an exception queue holds, and a clear record for anything else."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from billing_sync.aws.exception_queue import decode_exception_message
from billing_sync.domain.errors import ExceptionCategory
from billing_sync.domain.events import derive_event_id
from billing_sync.domain.lineage import ExceptionRecord, ExceptionStage
from tests.builders import load_event
from tests.functional.posting_harness import canonical

SEEN = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def test_a_parked_record_reads_back_as_itself():
    # GIVEN a MAPPING record as posting parks it
    event = canonical("stripe_invoice_finalized")
    record = ExceptionRecord(
        event_id=event.event_id,
        source="stripe",
        source_event_id=event.source_event_id,
        event_type=event.event_type,
        raw_ref="raw/stripe/evt.json",
        category=ExceptionCategory.MAPPING,
        reason="no tax_payable account",
        attempts=1,
        first_seen=SEEN,
        last_seen=SEEN,
        missing_key="tax_payable[legal_entity=US01,tax_rate=txr_1]",
        event=event.model_dump(mode="json"),
    )

    # WHEN / THEN
    assert decode_exception_message(record.model_dump_json()) == record


def test_a_bus_envelope_moved_by_the_redrive_policy_reads_as_a_posting_exception_with_its_event():
    # GIVEN the original EventBridge envelope the posting queue's redrive policy moved
    event = canonical("stripe_invoice_payment_paid").model_dump(mode="json")
    body = json.dumps({"version": "0", "source": "billing-sync", "detail-type": "payment.settled", "detail": event})

    # WHEN
    record = decode_exception_message(body, received=SEEN)

    # THEN it can be redriven like any other posting exception
    assert (record.event_id, record.event_type, record.stage) == (event["event_id"], "payment.settled", "posting")
    assert record.event == event
    assert "redrive policy" in record.reason


def test_a_lambda_on_failure_record_of_the_partner_function_names_the_stripe_event():
    # GIVEN the record Lambda sends to the on-failure destination after async retries
    stripe_event = load_event("stripe_invoice_finalized")
    body = json.dumps(
        {
            "version": "1.0",
            "timestamp": "2026-11-27T09:00:00.000Z",
            "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
            "requestPayload": {"source": "aws.partner/stripe.com/ed_1", "detail": stripe_event},
            "responseContext": {"statusCode": 200, "functionError": "Unhandled"},
        }
    )

    # WHEN
    record = decode_exception_message(body, received=SEEN)

    # THEN
    assert (record.source_event_id, record.event_type, record.stage) == (
        stripe_event["id"],
        "invoice.finalized",
        ExceptionStage.INGEST,
    )
    assert record.event_id == derive_event_id("stripe", stripe_event["id"])
    assert record.event == stripe_event  # redrive normalises it again
    assert record.attempts == 3
    assert "RetriesExhausted" in record.reason


def test_anything_else_is_a_malformed_record_not_an_error():
    for body in ("{not json", "[1, 2]", json.dumps({"hello": "world"}), json.dumps({"category": "X", "event_id": 1})):
        record = decode_exception_message(body, received=SEEN)
        assert record.category is ExceptionCategory.MALFORMED
        assert record.event_id == "unreadable"


def test_a_partner_event_the_rule_could_not_deliver_carries_the_stripe_event():
    # GIVEN the partner bus event as the rule's dead-letter queue keeps it
    stripe_event = load_event("stripe_invoice_payment_paid")
    body = json.dumps(
        {
            "version": "0",
            "id": "2d6b0f1e-3c4a-4b5c-9d8e-7f6a5b4c3d2e",
            "detail-type": stripe_event["type"],
            "source": "aws.partner/stripe.com/ed_61SbvJ3hpUH5tlrmF16Sb7FaF7Mb",
            "detail": stripe_event,
        }
    )

    # WHEN / THEN it is an ingest exception that a redrive normalises again
    record = decode_exception_message(body, received=SEEN)
    assert record.event_id == derive_event_id("stripe", stripe_event["id"])
    assert (record.stage, record.event) == (ExceptionStage.INGEST, stripe_event)


def test_a_scheduled_sweep_that_was_not_delivered_says_so():
    body = json.dumps({"version": "0", "id": "53dc4d37", "detail-type": "Scheduled Event", "source": "aws.events"})
    record = decode_exception_message(body, received=SEEN)
    assert (record.event_id, record.category) == ("schedule-53dc4d37", ExceptionCategory.INTERNAL)
    assert "next run" in record.reason
