"""Handlers end to end on moto: API Gateway and EventBridge in, SQS batches through posting, ledger out."""

from __future__ import annotations

import json
import threading
import time

import pytest

from billing_sync.aws.exception_store import DynamoExceptionStore
from billing_sync.domain.errors import ExceptionCategory, PublishError
from billing_sync.domain.events import derive_event_id
from billing_sync.domain.lineage import LineageStatus
from billing_sync.erp.ledger import DynamoLedgerErpClient
from billing_sync.handlers import park_failed_delivery, post_to_erp, stripe_partner_events, stripe_webhook
from billing_sync.state.dynamo import DynamoLineageStore
from billing_sync_ops.lambda_runtime import LocalLambdaContext, api_gateway_event, sqs_event
from tests.builders import event_payload, load_event, sign_stripe_payload
from tests.functional.aws_fixtures import WEBHOOK_SECRET, AwsResources, drain

CONTEXT = LocalLambdaContext("test", 30)


def webhook(body: bytes, signature: str | None) -> dict:
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    event = api_gateway_event(method="POST", path="/webhooks/stripe", headers=headers, body=body, source_ip="127.0.0.1")
    return stripe_webhook.lambda_handler(event, CONTEXT)


def signed(name: str) -> tuple[bytes, str]:
    body = event_payload(load_event(name))
    return body, sign_stripe_payload(body, WEBHOOK_SECRET, int(time.time()))


def post_batch(messages: list[dict], queue_arn: str = "arn:aws:sqs:us-east-1:123456789012:posting") -> dict:
    return post_to_erp.lambda_handler(sqs_event(messages, queue_arn), CONTEXT)


def test_signed_webhook_is_archived_and_published(aws: AwsResources) -> None:
    # GIVEN a correctly signed invoice.finalized webhook
    body, signature = signed("stripe_invoice_finalized")
    # WHEN API Gateway invokes the ingest function
    response = webhook(body, signature)
    # THEN it answers 200 after the canonical event is on the bus and the raw body in the archive
    assert response["statusCode"] == 200, response["body"]
    [message] = drain(aws.sqs, aws.capture_queue_url)
    envelope = json.loads(message["Body"])
    assert envelope["detail-type"] == "invoice.issued"
    assert envelope["detail"]["data"]["total"] == 41623
    raw = aws.s3.get_object(Bucket=aws.bucket, Key="raw/stripe/evt_1QH6KZNx4RkL2mQemUSGRWS1.json")["Body"].read()
    assert raw == body


def test_bad_signature_stores_nothing(aws: AwsResources) -> None:
    # GIVEN a body signed with another secret
    body = event_payload(load_event("stripe_invoice_finalized"))
    response = webhook(body, sign_stripe_payload(body, "whsec_someone_else", int(time.time())))
    # THEN 401 with a clear error and nothing archived, published or recorded
    assert response["statusCode"] == 401
    assert json.loads(response["body"])["error"] == "invalid_signature"
    assert aws.s3.list_objects_v2(Bucket=aws.bucket).get("KeyCount") == 0
    assert drain(aws.sqs, aws.capture_queue_url) == []
    assert aws.dynamodb.scan(TableName="lineage")["Count"] == 0


def test_rotated_secrets_are_both_accepted(aws: AwsResources) -> None:
    # GIVEN the secret holds the old and the new signing secret during rotation
    aws_secrets = __import__("boto3").client("secretsmanager")
    aws_secrets.put_secret_value(SecretId="stripe-webhook", SecretString=json.dumps(["whsec_new", WEBHOOK_SECRET]))
    body = event_payload(load_event("stripe_customer_created"))
    # WHEN Stripe signs with the new one
    response = webhook(body, sign_stripe_payload(body, "whsec_new", int(time.time())))
    # THEN it is accepted
    assert response["statusCode"] == 200, response["body"]


def test_event_bridge_refusal_answers_5xx_so_stripe_retries(aws: AwsResources) -> None:
    # GIVEN the billing bus does not exist (PutEvents fails)
    aws.events.remove_targets(Rule="to-posting", EventBusName="billing-sync-test", Ids=["posting"])
    aws.events.delete_rule(Name="to-posting", EventBusName="billing-sync-test")
    aws.events.delete_event_bus(Name="billing-sync-test")
    body, signature = signed("stripe_invoice_finalized")
    # WHEN the webhook arrives
    response = webhook(body, signature)
    # THEN the answer is a retryable 5xx, never a 2xx
    assert response["statusCode"] == 503
    assert json.loads(response["body"])["error"] == "not_durable_retry_later"


def test_a_throttled_lineage_write_answers_503_and_the_retry_settles_the_event(
    aws: AwsResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN DynamoDB throttles the lineage write that records an ignored event type, once
    from botocore.client import BaseClient
    from botocore.exceptions import ClientError

    make_api_call = BaseClient._make_api_call
    throttled: list[str] = []

    def throttle_lineage_once(client, operation, params):
        if params.get("TableName") == "lineage" and not throttled:
            throttled.append(operation)
            error = {"Code": "ProvisionedThroughputExceededException", "Message": "Rate of requests exceeds"}
            raise ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)
        return make_api_call(client, operation, params)

    monkeypatch.setattr(BaseClient, "_make_api_call", throttle_lineage_once)
    body, signature = signed("stripe_payment_method_attached")

    # WHEN Stripe delivers it, and again after the answer
    first, second = webhook(body, signature), webhook(body, signature)

    # THEN the first answer is a retryable 503 with a JSON error and Retry-After, never a 502
    assert throttled
    assert first["statusCode"] == 503
    assert json.loads(first["body"])["error"] == "state_busy_retry_later"
    assert first["headers"]["Retry-After"] == "5"
    # AND the retry is acknowledged and lineage records the event IGNORED once
    assert (second["statusCode"], json.loads(second["body"])["outcome"]) == (200, "IGNORED")
    [item] = aws.dynamodb.scan(TableName="lineage")["Items"]
    assert item["status"]["S"] == "IGNORED"


def test_partner_bus_event_goes_through_the_same_normaliser(aws: AwsResources) -> None:
    # GIVEN Stripe delivers invoice.finalized natively to an EventBridge partner bus
    stripe_event = load_event("stripe_invoice_finalized")
    partner_event = {
        "version": "0",
        "id": "5b0d6a1e-2f55-4b8a-9d9d-0f8b1d7e6c3a",
        "detail-type": stripe_event["type"],
        "source": "aws.partner/stripe.com/ed_61SbvJ3hpUH5tlrmF16Sb7FaF7Mb",
        "account": "123456789012",
        "time": "2026-11-01T00:00:04Z",
        "region": "us-east-1",
        "resources": [],
        "detail": stripe_event,
    }
    # WHEN the partner rule invokes the partner function
    result = stripe_partner_events.lambda_handler(partner_event, CONTEXT)
    # THEN the same canonical event as from the webhook is published
    [message] = drain(aws.sqs, aws.capture_queue_url)
    assert result["outcome"] == "PUBLISHED"
    assert json.loads(message["Body"])["detail"]["event_id"] == result["event_id"]


def test_a_payment_before_its_invoice_is_held_by_name_without_burning_a_retry(aws: AwsResources) -> None:
    # GIVEN a batch with a customer, an invoice and a payment for an invoice never sent
    for name in ("stripe_customer_created", "stripe_invoice_finalized", "stripe_invoice_payment_paid_jpy"):
        body, signature = signed(name)
        assert webhook(body, signature)["statusCode"] == 200
    messages = drain(aws.sqs, aws.capture_queue_url)
    customer = [m for m in messages if "customer.upserted" in m["Body"]]
    assert post_batch(customer) == {"batchItemFailures": []}
    # WHEN the posting function receives the rest as one batch
    rest = [m for m in messages if m not in customer]
    response = post_batch(rest)
    # THEN nothing returns to the queue: the payment is held in the waiting room by its invoice's name
    assert response == {"batchItemFailures": []}
    [held] = aws.dynamodb.scan(TableName="waiting-room")["Items"]
    assert held["key"]["S"] == "document:stripe-invoice-in_1Qm57qNx4RkL2mQeJoYg6HRn"
    payment_id = json.loads(next(m for m in rest if "payment.settled" in m["Body"])["Body"])["detail"]["event_id"]
    lineage = DynamoLineageStore(aws.dynamodb, "lineage").get(payment_id)
    assert (lineage.status, lineage.category) == (LineageStatus.WAITING, ExceptionCategory.DEPENDENCY_PENDING)
    count, balanced, _ = DynamoLedgerErpClient(aws.dynamodb, "ledger").trial_balance()
    assert (count, balanced) == (1, True)


def test_concurrent_duplicate_deliveries_on_dynamodb_post_once(aws: AwsResources) -> None:
    # GIVEN the customer is known and the same invoice message is delivered to five workers at once
    for name in ("stripe_customer_created", "stripe_invoice_finalized"):
        body, signature = signed(name)
        assert webhook(body, signature)["statusCode"] == 200
    customer, invoice = sorted(drain(aws.sqs, aws.capture_queue_url), key=lambda m: "invoice" in m["Body"])
    post_batch([customer])
    start = threading.Barrier(5)
    responses: list[dict] = []

    def worker() -> None:
        start.wait()
        responses.append(post_batch([invoice]))

    threads = [threading.Thread(target=worker) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # THEN every worker answered; those that lost the claim returned the record for a retry
    assert len(responses) == 5
    assert {"batchItemFailures": []} in responses
    for response in responses:
        assert response["batchItemFailures"] in ([], [{"itemIdentifier": invoice["MessageId"]}])
    # AND the ledger holds exactly one document and it balances
    count, balanced, rows = DynamoLedgerErpClient(aws.dynamodb, "ledger").trial_balance()
    assert (count, balanced) == (1, True)
    assert sum(row.debit for row in rows) == 41623
    # AND a redelivery after the workers finished is a no-op
    assert post_batch([invoice]) == {"batchItemFailures": []}
    assert DynamoLedgerErpClient(aws.dynamodb, "ledger").trial_balance()[0] == 1


def test_archive_failure_answers_5xx_and_publishes_nothing(aws: AwsResources) -> None:
    # GIVEN the raw archive bucket is gone
    aws.s3.delete_bucket(Bucket=aws.bucket)
    body, signature = signed("stripe_invoice_finalized")
    # WHEN the webhook arrives
    response = webhook(body, signature)
    # THEN Stripe is told to retry and nothing went on the bus
    assert response["statusCode"] == 503
    assert "could not archive" in json.loads(response["body"])["message"]
    assert drain(aws.sqs, aws.capture_queue_url) == []


def test_a_message_that_is_not_a_bus_event_is_parked_not_retried_forever(aws: AwsResources) -> None:
    # GIVEN a message someone sent to the posting queue by hand
    message = {"MessageId": "5e0b9a5c-1d2e-4f3a-8b7c-6d5e4f3a2b1c", "ReceiptHandle": "rh-1", "Body": "redrive me"}
    # WHEN the posting function receives it
    response = post_batch([message])
    # THEN it is acknowledged and parked as MALFORMED with its body, nothing lost
    assert response == {"batchItemFailures": []}
    [parked] = drain(aws.sqs, aws.exception_queue_url)
    record = json.loads(parked["Body"])
    assert record["category"] == "MALFORMED"
    assert record["event"] == {"unreadable_body": "redrive me"}
    assert parked["MessageAttributes"]["category"]["StringValue"] == "MALFORMED"


def test_every_accepted_event_records_its_stripe_api_version(aws: AwsResources) -> None:
    # GIVEN an ignored type and a posted type, from two Stripe API versions
    for name in ("stripe_payment_intent_created", "stripe_customer_created", "stripe_charge_succeeded"):
        body, signature = signed(name)
        assert webhook(body, signature)["statusCode"] == 200
    post_batch([m for m in drain(aws.sqs, aws.capture_queue_url) if "customer.upserted" in m["Body"]])
    # WHEN lineage is read back
    items = aws.dynamodb.scan(TableName="lineage")["Items"]
    versions = {item["source_event_id"]["S"]: item.get("source_api_version", {}).get("S") for item in items}
    # THEN the API version of each is recorded, ignored ones included
    assert versions["evt_3Qd7NINx4RkL2mQeTw1EpPrX"] == "2025-10-29.clover"  # payment_intent.created, IGNORED
    assert versions["evt_1Q6NawNx4RkL2mQebFygFa7l"] == "2025-10-29.clover"  # customer.created, POSTED


def test_a_partner_delivery_lambda_gave_up_on_is_parked_in_the_exception_store(aws: AwsResources) -> None:
    # GIVEN the partner function failing because the billing bus is gone
    stripe_event = load_event("stripe_invoice_finalized")
    partner_event = {
        "version": "0",
        "id": "7c2e9b40-1a3d-4e5f-8a9b-0c1d2e3f4a5b",
        "detail-type": stripe_event["type"],
        "source": "aws.partner/stripe.com/ed_61SbvJ3hpUH5tlrmF16Sb7FaF7Mb",
        "account": "123456789012",
        "time": "2026-11-01T00:00:04Z",
        "region": "us-east-1",
        "resources": [],
        "detail": stripe_event,
    }
    aws.events.delete_event_bus(Name="billing-sync-test")
    with pytest.raises(PublishError):
        stripe_partner_events.lambda_handler(partner_event, CONTEXT)

    # WHEN Lambda, its async retries spent, hands the failure record to the on-failure function
    failure_record = {
        "version": "1.0",
        "timestamp": "2026-11-01T00:03:04.000Z",
        "requestContext": {
            "requestId": "c0ffee00-1111-2222-3333-444455556666",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:StripePartnerEvents:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": partner_event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorMessage": "could not publish", "errorType": "PublishError"},
    }
    park_failed_delivery.lambda_handler(failure_record, CONTEXT)

    # THEN it is in the exception store, the exception queue and lineage, with the Stripe event to redrive
    event_id = derive_event_id("stripe", stripe_event["id"])
    stored, bookkeeping = DynamoExceptionStore(aws.dynamodb, "exceptions").get(event_id)
    assert (stored.category, stored.stage, stored.attempts) == (ExceptionCategory.INTERNAL, "ingest", 3)
    assert stored.event == stripe_event
    assert "RetriesExhausted" in stored.reason
    [parked] = drain(aws.sqs, aws.exception_queue_url)
    assert bookkeeping["message_id"] == parked["MessageId"]
    lineage = DynamoLineageStore(aws.dynamodb, "lineage").get(event_id)
    assert (lineage.status, lineage.category) == (LineageStatus.EXCEPTION, ExceptionCategory.INTERNAL)
