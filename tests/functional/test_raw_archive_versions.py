"""The raw archive keeps every body it accepted, and lineage names each one (S3 version and SHA-256).

Stripe delivers one event id more than once: a retry after a timeout, a manual resend, a re-render in the
endpoint's newer API version. A resend with another body must not replace the first body (audit), and the
event's lineage must show both, on moto with a versioned bucket as the stack deploys it.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import time
from typing import Any

import pytest

from billing_sync import composition
from billing_sync.aws.archive import raw_object
from billing_sync.composition.reconciliation import s3_raw_events
from billing_sync.domain.events import derive_event_id
from billing_sync.domain.lineage import LineageRecord, LineageStatus
from billing_sync.handlers import post_to_erp, stripe_webhook
from billing_sync.state.dynamo import DynamoLineageStore
from billing_sync_ops.bench import AwsCallCounter
from billing_sync_ops.lambda_runtime import LocalLambdaContext, api_gateway_event, sqs_event
from tests.builders import event_payload, load_event, sign_stripe_payload
from tests.functional.aws_fixtures import WEBHOOK_SECRET, AwsResources, drain

CONTEXT = LocalLambdaContext("test", 30)
INVOICE = "stripe_invoice_finalized"
INVOICE_KEY = "raw/stripe/evt_1QH6KZNx4RkL2mQemUSGRWS1.json"


@pytest.fixture
def versioned(aws: AwsResources, monkeypatch: pytest.MonkeyPatch) -> AwsResources:
    """The raw archive as the stack deploys it: versioned, with object lock and a default retention."""
    bucket = "raw-archive-locked"
    aws.s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    aws.s3.put_object_lock_configuration(
        Bucket=bucket,
        ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": "GOVERNANCE", "Days": 365}},
        },
    )
    monkeypatch.setenv("RAW_ARCHIVE_BUCKET", bucket)
    composition.reset()
    return dataclasses.replace(aws, bucket=bucket)


def deliver(payload: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    body = event_payload(payload)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": sign_stripe_payload(body, WEBHOOK_SECRET, int(time.time())),
    }
    event = api_gateway_event(method="POST", path="/webhooks/stripe", headers=headers, body=body, source_ip="127.0.0.1")
    response = stripe_webhook.lambda_handler(event, CONTEXT)
    assert response["statusCode"] == 200, response["body"]
    return body, json.loads(response["body"])


def post_everything(aws: AwsResources) -> list[str]:
    messages = drain(aws.sqs, aws.capture_queue_url)
    response = post_to_erp.lambda_handler(sqs_event(messages, "arn:aws:sqs:us-east-1:123456789012:posting"), CONTEXT)
    assert response["batchItemFailures"] == []
    return [json.loads(message["Body"])["detail"]["event_id"] for message in messages]


def redelivered(payload: dict[str, Any]) -> dict[str, Any]:
    """The same event as Stripe sends it again later: no webhook pending any more, re-rendered for the
    endpoint's newer API version (same event id, other bytes)."""
    again = copy.deepcopy(payload)
    again["pending_webhooks"] = 0
    again["api_version"] = "2026-01-28.clover"
    return again


def lineage_of(aws: AwsResources, source_event_id: str) -> LineageRecord:
    record = DynamoLineageStore(aws.dynamodb, "lineage").get(derive_event_id("stripe", source_event_id))
    assert record is not None
    return record


def versions_of(aws: AwsResources, key: str) -> dict[str, bytes]:
    listed = aws.s3.list_object_versions(Bucket=aws.bucket, Prefix=key)["Versions"]
    return {
        v["VersionId"]: aws.s3.get_object(Bucket=aws.bucket, Key=key, VersionId=v["VersionId"])["Body"].read()
        for v in listed
    }


def sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def test_a_resend_with_another_body_keeps_both_bodies_and_lineage_names_both(versioned: AwsResources) -> None:
    # GIVEN the customer and an invoice delivered, archived and posted
    deliver(load_event("stripe_customer_created"))
    invoice = load_event(INVOICE)
    first_body, first = deliver(invoice)
    post_everything(versioned)
    assert lineage_of(versioned, invoice["id"]).status is LineageStatus.POSTED

    # WHEN Stripe sends the same event id again with another body, and posting sees the duplicate
    second_body, second = deliver(redelivered(invoice))
    post_everything(versioned)

    # THEN both bodies stay readable as versions of the event's key
    assert second["event_id"] == first["event_id"]
    stored = versions_of(versioned, INVOICE_KEY)
    assert sorted(stored.values()) == sorted([first_body, second_body])
    # AND lineage names both, first received first, each by its S3 version and digest; the event stays posted
    record = lineage_of(versioned, invoice["id"])
    assert record.status is LineageStatus.POSTED
    assert [body.sha256 for body in record.raw_bodies] == [sha256(first_body), sha256(second_body)]
    assert {body.version_id: stored[body.version_id] for body in record.raw_bodies} == {
        body.version_id: raw for body, raw in zip(record.raw_bodies, [first_body, second_body], strict=True)
    }
    assert record.raw_bodies[0].received_at <= record.raw_bodies[1].received_at


def test_the_same_body_sent_again_is_not_a_second_body(versioned: AwsResources) -> None:
    # GIVEN an invoice delivered and posted
    deliver(load_event("stripe_customer_created"))
    invoice = load_event(INVOICE)
    body, _ = deliver(invoice)
    post_everything(versioned)

    # WHEN Stripe retries it with the very same bytes
    deliver(invoice)
    post_everything(versioned)

    # THEN lineage still lists one body, with the version the first delivery wrote
    record = lineage_of(versioned, invoice["id"])
    [only] = record.raw_bodies
    assert only.sha256 == sha256(body)
    assert versions_of(versioned, INVOICE_KEY)[only.version_id] == body


def test_two_bodies_before_any_posting_are_both_named_and_the_event_posts_once(versioned: AwsResources) -> None:
    # GIVEN the customer, then an invoice and its resend with another body, both accepted before posting runs
    deliver(load_event("stripe_customer_created"))
    invoice = load_event(INVOICE)
    first_body, _ = deliver(invoice)
    second_body, _ = deliver(redelivered(invoice))
    # (lineage already knows the resent body, on its way to posting)
    waiting = lineage_of(versioned, invoice["id"])
    assert waiting.status is LineageStatus.PENDING
    assert [body.sha256 for body in waiting.raw_bodies] == [sha256(second_body)]

    # WHEN posting drains the queue (the invoice twice)
    post_everything(versioned)

    # THEN the invoice is posted once and lineage names both bodies
    record = lineage_of(versioned, invoice["id"])
    assert record.status is LineageStatus.POSTED
    assert len(record.erp_document_ids) == 1
    assert {body.sha256 for body in record.raw_bodies} == {sha256(first_body), sha256(second_body)}


def test_an_ignored_event_resent_with_another_body_lists_both(versioned: AwsResources) -> None:
    # GIVEN a type billing-sync does not use, delivered and then redelivered with another body
    ignored = load_event("stripe_payment_intent_created")
    first_body, _ = deliver(ignored)
    second_body, result = deliver(redelivered(ignored))

    # THEN it is IGNORED once and lineage names both bodies
    assert result["outcome"] == "IGNORED"
    record = lineage_of(versioned, ignored["id"])
    assert record.status is LineageStatus.IGNORED
    assert [body.sha256 for body in record.raw_bodies] == [sha256(first_body), sha256(second_body)]


def test_a_first_delivery_costs_one_put_and_one_publish(versioned: AwsResources) -> None:
    # GIVEN the function warmed up (its signing secret cached)
    deliver(load_event("stripe_customer_created"))
    counter = AwsCallCounter()

    # WHEN a new invoice arrives
    with counter.counting():
        deliver(load_event(INVOICE))

    # THEN the archive and the bus are the only calls: lineage rides on posting's own write
    assert dict(counter.calls) == {"s3.PutObject": 1, "events.PutEvents": 1}


def test_readers_of_the_archive_read_the_body_the_event_was_normalised_from(versioned: AwsResources) -> None:
    # GIVEN an invoice posted, then resent with another body
    deliver(load_event("stripe_customer_created"))
    invoice = load_event(INVOICE)
    deliver(invoice)
    post_everything(versioned)
    deliver(redelivered(invoice))
    record = lineage_of(versioned, invoice["id"])

    # WHEN reconciliation reads the raw event behind the posted record
    raw = s3_raw_events(versioned.s3, versioned.bucket)(record)

    # THEN it is the body the posted event came from (pending_webhooks 1), not the newest version
    located = raw_object(record.raw_ref)
    assert located is not None and located.key == INVOICE_KEY and located.version_id
    assert raw is not None
    assert raw["pending_webhooks"] == 1
