"""An SQS batch posts in parallel lanes on moto: dependent records in order, a failure reported alone."""

from __future__ import annotations

import functools
import threading
import time
from typing import Any

import pytest

from billing_sync.composition import posting
from billing_sync.domain.errors import ErpTransientError
from billing_sync.domain.journal import ErpDocument, ErpRef
from billing_sync.domain.lineage import LineageStatus
from billing_sync.domain.posting.service import posting_lanes
from billing_sync.erp.ledger import DynamoLedgerErpClient
from billing_sync.handlers import post_to_erp
from billing_sync.state.dynamo import DynamoLineageStore
from billing_sync_ops.lambda_runtime import LocalLambdaContext, api_gateway_event, sqs_event
from billing_sync_ops.samples import event_payload, invoice_event, invoice_payment_event, load_event, with_event_id
from tests.builders import sign_stripe_payload
from tests.functional.aws_fixtures import WEBHOOK_SECRET, AwsResources, drain

CONTEXT = LocalLambdaContext("test", 30)
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:posting"


class WatchedErp:
    """The composition's ERP, each call slowed, the order of created documents and the peak of calls in flight
    recorded; `fail_on` external ids fail as an ERP outage would."""

    def __init__(self, inner: Any, *, latency: float = 0.05, fail_on: tuple[str, ...] = ()) -> None:
        self._inner = inner
        self._latency = latency
        self._fail_on = fail_on
        self._lock = threading.Lock()
        self._in_flight = 0
        self.peak = 0
        self.created: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _slowly(self, call: Any, argument: Any, *, latency: float) -> Any:
        with self._lock:
            self._in_flight += 1
            self.peak = max(self.peak, self._in_flight)
        try:
            time.sleep(latency)
            return call(argument)
        finally:
            with self._lock:
                self._in_flight -= 1

    def find_document(self, external_id: str) -> ErpRef | None:
        return self._slowly(self._inner.find_document, external_id, latency=self._latency)

    def create_document(self, document: ErpDocument) -> ErpRef:
        if any(failing in document.external_id for failing in self._fail_on):
            raise ErpTransientError(f"ERP timed out creating {document.external_id}", status=504)
        # Creating is slower than looking up: a lookup started alongside would run before the create lands.
        ref = self._slowly(self._inner.create_document, document, latency=self._latency * 5)
        with self._lock:
            self.created.append(document.external_id)
        return ref


@pytest.fixture
def watched_erp(aws: AwsResources) -> list[WatchedErp]:
    """Where `_install` keeps the WatchedErp it puts in the posting composition root (on moto)."""
    return []


def accept(aws: AwsResources, *payloads: dict[str, Any]) -> list[dict[str, Any]]:
    """The payloads through the webhook handler; their posting messages in the order sent."""
    from billing_sync.handlers import stripe_webhook

    for payload in payloads:
        body = event_payload(payload)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": sign_stripe_payload(body, WEBHOOK_SECRET, int(time.time())),
        }
        event = api_gateway_event(
            method="POST", path="/webhooks/stripe", headers=headers, body=body, source_ip="127.0.0.1"
        )
        assert stripe_webhook.lambda_handler(event, CONTEXT)["statusCode"] == 200
    messages = drain(aws.sqs, aws.capture_queue_url)
    order = [payload["id"] for payload in payloads]
    return sorted(messages, key=lambda message: next(i for i, eid in enumerate(order) if eid in message["Body"]))


def customer(customer_id: str) -> dict[str, Any]:
    event = with_event_id(load_event("stripe_customer_created"), f"evt_{customer_id}")
    event["data"]["object"]["id"] = customer_id
    return event


def invoices(label: str, count: int, customer_id: str) -> list[dict[str, Any]]:
    return [
        invoice_event(
            invoice_id=f"in_{label}{n}",
            customer_id=customer_id,
            event_id=f"evt_{label}inv{n}",
            lines=[(2900 + 100 * n, 0, 0)],
        )
        for n in range(count)
    ]


def post_batch(messages: list[dict[str, Any]]) -> dict:
    return post_to_erp.lambda_handler(sqs_event(messages, QUEUE_ARN), CONTEXT)


def test_an_invoice_and_its_payment_in_one_batch_post_in_order(
    aws: AwsResources, watched_erp: list[WatchedErp], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a known customer, then one batch with an invoice, its payment and four other invoices
    [known] = accept(aws, customer("cus_batch1"))
    assert post_batch([known]) == {"batchItemFailures": []}
    invoice, *others = invoices("ord", 5, "cus_batch1")
    payment = invoice_payment_event(invoice, event_id="evt_ordpay")
    messages = accept(aws, invoice, payment, *others)
    erp = _install(watched_erp, monkeypatch)
    # WHEN the batch posts, with an ERP slow enough that a payment looked up in parallel would find nothing
    response = post_batch(messages)
    # THEN both post, the payment after its invoice, nothing waits, and independent records ran at once
    assert response == {"batchItemFailures": []}
    [payment_document] = [external_id for external_id in erp.created if external_id.startswith("stripe-payment-")]
    assert erp.created.index("stripe-invoice-in_ord0") < erp.created.index(payment_document)
    assert aws.dynamodb.scan(TableName="waiting-room")["Items"] == []
    lineage = DynamoLineageStore(aws.dynamodb, "lineage")
    assert {record.status for record in lineage.scan()} == {LineageStatus.POSTED}
    assert DynamoLedgerErpClient(aws.dynamodb, "ledger").trial_balance()[:2] == (6, True)
    assert erp.peak > 1


def test_one_failing_record_is_reported_alone_and_the_rest_post(
    aws: AwsResources, watched_erp: list[WatchedErp], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a batch of an invoice with its payment and three other invoices, one of which the ERP refuses
    [known] = accept(aws, customer("cus_batch2"))
    assert post_batch([known]) == {"batchItemFailures": []}
    invoice, *others = invoices("fail", 4, "cus_batch2")
    payment = invoice_payment_event(invoice, event_id="evt_failpay")
    messages = accept(aws, invoice, payment, *others)
    _install(watched_erp, monkeypatch, fail_on=("in_fail2",))
    # WHEN the batch posts
    response = post_batch(messages)
    # THEN exactly the failing record returns to the queue; the others post, the payment included
    failing = next(message for message in messages if "in_fail2" in message["Body"])
    assert response == {"batchItemFailures": [{"itemIdentifier": failing["MessageId"]}]}
    assert DynamoLedgerErpClient(aws.dynamodb, "ledger").trial_balance()[:2] == (4, True)


def test_lanes_join_events_of_one_invoice_and_a_customer_with_its_events() -> None:
    # GIVEN canonical events: a customer, its invoice, another customer's invoice, then the first invoice's payment
    details = [
        {"event_type": "customer.upserted", "data": {"customer_id": "cus_a"}},
        {"event_type": "invoice.issued", "data": {"invoice_id": "in_1", "customer_id": "cus_a"}},
        {"event_type": "invoice.issued", "data": {"invoice_id": "in_2", "customer_id": "cus_b"}},
        {"event_type": "invoice.issued", "data": {"invoice_id": "in_3", "customer_id": "cus_b"}},
        {"event_type": "payment.settled", "data": {"invoice_id": "in_2", "customer_id": "cus_b"}},
        {"unreadable_body": "{"},
    ]
    # WHEN they are split into lanes
    lanes = posting_lanes(details)
    # THEN dependents share a lane in arrival order; invoices of a customer not upserted here stay apart
    assert sorted(lanes) == [[0, 1], [2, 4], [3], [5]]


def _install(holder: list[WatchedErp], monkeypatch: pytest.MonkeyPatch, **options: Any) -> WatchedErp:
    real = posting.erp_client()
    watched = WatchedErp(real, **options)
    from billing_sync.composition import bookkeeping

    installed = functools.cache(lambda: watched)  # composition.reset() clears it like the real one
    monkeypatch.setattr(posting, "erp_client", installed)
    monkeypatch.setattr(bookkeeping, "erp_client", installed)
    posting.posting_service.cache_clear()
    bookkeeping.bookkeeper.cache_clear()
    holder.append(watched)
    return watched
