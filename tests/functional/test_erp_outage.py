"""An ERP outage through the posting handler: growing delays, a breaker that stops calling the ERP, the
last receive parked with its reason, and every event posted exactly once when the ERP returns."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from billing_sync.aws.redelivery import SqsMessageRedelivery
from billing_sync.domain.bookkeeping import Bookkeeper
from billing_sync.domain.errors import ErpTransientError, ExceptionCategory
from billing_sync.domain.journal import ErpDocument, ErpRef
from billing_sync.domain.lineage import LineageStatus
from billing_sync.domain.posting import PostingService
from billing_sync.domain.retry import RetryPolicy, RetryScheduler
from billing_sync.erp.circuit_breaker import CircuitBreaker, CircuitBreakerErpClient
from billing_sync.handlers import post_to_erp
from billing_sync_ops.lambda_runtime import LocalLambdaContext, sqs_event
from tests.builders import invoice_event
from tests.fakes.erp import InMemoryErpClient
from tests.functional.aws_fixtures import AwsResources
from tests.functional.posting_harness import CLAIM_LEASE, Clock, PostingHarness, canonical, mapping

CONTEXT = LocalLambdaContext("test", 30)
QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/posting"
QUEUE_ARN = "arn:aws:sqs:us-east-1:123456789012:posting"
START = datetime(2026, 11, 1, 1, 0, tzinfo=UTC)


class FlakyErp(InMemoryErpClient):
    """The in-memory ERP that answers 503 to every create while `down`; counts the calls that reached it."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.attempts = 0

    def create_document(self, document: ErpDocument) -> ErpRef:
        self.attempts += 1
        if self.down:
            raise ErpTransientError("503 from ERP", status=503, erp_code="UNAVAILABLE")
        return super().create_document(document)


@dataclass
class Message:
    message_id: str
    body: str
    receipt_handle: str = ""
    receive_count: int = 0
    visible_at: float = 0.0


@dataclass
class SimulatedQueue:
    """The SQS behaviour retries depend on, on a clock the test moves: receive counts, visibility,
    DelaySeconds, and the redrive policy moving a message received more than `max_receive_count` times.
    It is also the SQS client the real redelivery adapter calls, so every call is recorded."""

    clock: Clock
    max_receive_count: int = 8
    visibility_timeout: int = 180
    messages: list[Message] = field(default_factory=list)
    dead_letters: list[Message] = field(default_factory=list)
    visibility_calls: list[tuple[str, int]] = field(default_factory=list)
    sent: list[tuple[str, int]] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return (self.clock.now - START).total_seconds()

    def send(self, body: str, delay: int = 0) -> Message:
        message = Message(str(uuid.uuid4()), body, visible_at=self.seconds + delay)
        self.messages.append(message)
        return message

    # -- the boto3 SQS client surface used by SqsMessageRedelivery --
    def change_message_visibility(self, *, QueueUrl: str, ReceiptHandle: str, VisibilityTimeout: int) -> None:
        assert QueueUrl == QUEUE_URL
        [message] = [m for m in self.messages if m.receipt_handle == ReceiptHandle]
        message.visible_at = self.seconds + VisibilityTimeout
        self.visibility_calls.append((message.message_id, VisibilityTimeout))

    def send_message(self, *, QueueUrl: str, MessageBody: str, DelaySeconds: int = 0) -> dict[str, str]:
        assert QueueUrl == QUEUE_URL
        self.sent.append((MessageBody, DelaySeconds))
        return {"MessageId": self.send(MessageBody, DelaySeconds).message_id}

    # -- the event source mapping --
    def receive(self, batch_size: int = 10) -> list[Message]:
        batch: list[Message] = []
        for message in sorted(self.messages, key=lambda m: m.visible_at):
            if message.visible_at > self.seconds or len(batch) == batch_size:
                continue
            if message.receive_count >= self.max_receive_count:
                self.messages.remove(message)
                self.dead_letters.append(message)
                continue
            message.receive_count += 1
            message.receipt_handle = str(uuid.uuid4())
            message.visible_at = self.seconds + self.visibility_timeout
            batch.append(message)
        return batch

    def deliver(self, batch: list[Message]) -> dict:
        records = [
            {
                "MessageId": m.message_id,
                "ReceiptHandle": m.receipt_handle,
                "Body": m.body,
                "Attributes": {"ApproximateReceiveCount": str(m.receive_count)},
            }
            for m in batch
        ]
        response = post_to_erp.lambda_handler(sqs_event(records, QUEUE_ARN), CONTEXT)
        failed = {failure["itemIdentifier"] for failure in response["batchItemFailures"]}
        for message in batch:
            if message.message_id not in failed:
                self.messages.remove(message)
        return response

    def next_batch(self) -> list[Message]:
        """Moves the clock to when the next message is visible, then receives."""
        if self.messages:
            wait = min(m.visible_at for m in self.messages) - self.seconds
            if wait > 0:
                self.clock.advance(timedelta(seconds=wait))
        return self.receive()


@dataclass
class Outage:
    erp: FlakyErp
    harness: PostingHarness
    queue: SimulatedQueue
    breaker: CircuitBreaker
    metrics: list[dict[str, Any]]

    def step(self) -> dict:
        return self.queue.deliver(self.queue.next_batch())

    def delays_of(self, message: Message) -> list[int]:
        return [seconds for message_id, seconds in self.queue.visibility_calls if message_id == message.message_id]


def make_outage(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *, threshold: int, cool_down: int
) -> Outage:
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    clock = Clock(START)
    erp = FlakyErp()
    breaker = CircuitBreaker(
        failure_threshold=threshold, cool_down_seconds=cool_down, clock=lambda: (clock.now - START).total_seconds()
    )
    harness = PostingHarness(erp=erp, clock=clock)
    guarded = CircuitBreakerErpClient(erp, breaker)
    service = PostingService(
        erp=guarded,
        lineage=harness.lineage,
        master_data=harness.master_data,
        exceptions=harness.exceptions,
        mapping=mapping(),
        clock=clock,
        claim_lease=CLAIM_LEASE,
        bookkeeper=Bookkeeper(mapping=mapping(), erp=guarded, rates=harness.rates),
    )
    queue = SimulatedQueue(clock)
    scheduler = RetryScheduler(
        policy=RetryPolicy(base_seconds=30, cap_seconds=900, max_receive_count=queue.max_receive_count),
        redelivery=SqsMessageRedelivery(queue, QUEUE_URL),  # type: ignore[arg-type]
        erp=breaker,
    )
    monkeypatch.setattr(post_to_erp, "posting_service", lambda: service)
    monkeypatch.setattr(post_to_erp, "posting_retries", lambda: scheduler)
    # GIVEN the invoices' customer is known
    service.post(canonical("stripe_customer_created"))
    return Outage(erp, harness, queue, breaker, [])


def envelope(invoice_number: int) -> str:
    event = canonical(
        invoice_event(invoice_id=f"in_outage{invoice_number:04d}", event_id=f"evt_outage{invoice_number}")
    )
    return json.dumps(
        {"source": "billing-sync", "detail-type": event.event_type, "detail": event.model_dump(mode="json")}
    )


def item_failures(capsys: pytest.CaptureFixture[str]) -> list[float]:
    """PostingItemFailures of each invocation, from the EMF lines Powertools printed."""
    values = []
    for line in capsys.readouterr().out.splitlines():
        if line.startswith("{") and '"_aws"' in line and "PostingItemFailures" in line:
            value = json.loads(line)["PostingItemFailures"]
            values += value if isinstance(value, list) else [value]
    return values


@pytest.fixture
def clean_metrics() -> Iterator[None]:
    post_to_erp.metrics.clear_metrics()
    yield
    post_to_erp.metrics.clear_metrics()


def test_transient_failures_return_with_growing_delays_then_post_once(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], clean_metrics: None
) -> None:
    # GIVEN the ERP is down for the first three deliveries (the breaker's threshold is not reached)
    outage = make_outage(monkeypatch, capsys, threshold=100, cool_down=60)
    message = outage.queue.send(envelope(1))
    outage.erp.down = True
    # WHEN the queue delivers it three times
    responses = [outage.step() for _ in range(3)]
    # THEN each failure set the visibility by the policy: 30 s, 60 s, 120 s, at those moments
    assert outage.delays_of(message) == [30, 60, 120]
    assert all(r["batchItemFailures"] == [{"itemIdentifier": message.message_id}] for r in responses)
    assert outage.queue.seconds == 30 + 60
    assert outage.harness.exceptions.records == []
    # WHEN the ERP is back and the message returns 120 s later
    outage.erp.down = False
    assert outage.step() == {"batchItemFailures": []}
    # THEN it is posted once, on its fourth receive
    assert outage.queue.seconds == 30 + 60 + 120
    assert (len(outage.erp.documents), outage.erp.create_calls, outage.erp.attempts) == (1, 1, 4)
    assert outage.queue.messages == [] and outage.queue.dead_letters == []
    assert item_failures(capsys) == [1, 1, 1, 0]


def test_the_last_receive_parks_a_transient_failure_with_its_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], clean_metrics: None
) -> None:
    # GIVEN the ERP stays down and the breaker never opens
    outage = make_outage(monkeypatch, capsys, threshold=100, cool_down=60)
    message = outage.queue.send(envelope(2))
    event_id = json.loads(message.body)["detail"]["event_id"]
    outage.erp.down = True
    # WHEN it is delivered seven times
    for _ in range(7):
        outage.step()
    # THEN it came back after 30, 60 ... 900 s and nothing is parked yet
    assert outage.delays_of(message) == [30, 60, 120, 240, 480, 900, 900]
    assert outage.harness.exceptions.records == []
    assert outage.harness.lineage.get(event_id).status is LineageStatus.PENDING
    # WHEN the eighth (last allowed) receive fails too
    assert outage.step() == {"batchItemFailures": []}
    # THEN the service parked it with its category and reason, and SQS deleted it (no redrive)
    [parked] = outage.harness.exceptions.records
    assert (parked.event_id, parked.category) == (event_id, ExceptionCategory.ERP_TRANSIENT)
    assert parked.reason == "still failing after 8 receives: 503 from ERP"
    record = outage.harness.lineage.get(event_id)
    assert (record.status, record.category) == (LineageStatus.EXCEPTION, ExceptionCategory.ERP_TRANSIENT)
    assert outage.queue.messages == [] and outage.queue.dead_letters == []
    assert outage.erp.attempts == 8
    assert item_failures(capsys) == [1] * 7 + [0]


def test_an_open_breaker_stops_erp_calls_and_the_backlog_posts_once_when_the_erp_returns(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], clean_metrics: None
) -> None:
    # GIVEN eight invoices in one batch, the ERP down, a breaker opening after 5 failures for 60 s
    outage = make_outage(monkeypatch, capsys, threshold=5, cool_down=60)
    messages = [outage.queue.send(envelope(n)) for n in range(10, 18)]
    outage.erp.down = True
    # WHEN the batch is delivered
    response = outage.step()
    # THEN five reached the ERP; the fifth opened the breaker; the other three were not sent at all
    assert len(response["batchItemFailures"]) == 8
    assert outage.erp.attempts == 5
    # AND the first four return by the policy, the rest after the cool-down
    assert [outage.delays_of(m) for m in messages] == [[30]] * 4 + [[60]] * 4
    # WHEN the ERP is back but the four come back 30 s later, with the breaker still open
    outage.erp.down = False
    response = outage.step()
    # THEN they fail fast again, without an ERP call, and wait out the remaining 30 s
    assert len(response["batchItemFailures"]) == 4
    assert outage.erp.attempts == 5
    assert [outage.delays_of(m) for m in messages[:4]] == [[30, 30]] * 4
    # WHEN the cool-down ends: the first is the half-open trial, it succeeds and the rest follow
    assert outage.step() == {"batchItemFailures": []}
    # THEN every invoice is posted exactly once, nothing parked, nothing dead-lettered
    assert outage.queue.seconds == 60
    assert (len(outage.erp.documents), outage.erp.create_calls, outage.erp.attempts) == (8, 8, 13)
    assert outage.harness.exceptions.records == []
    assert outage.queue.messages == [] and outage.queue.dead_letters == []
    assert item_failures(capsys) == [8, 4, 0]


def test_an_outage_on_the_last_receive_sends_the_event_again_instead_of_parking_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], clean_metrics: None
) -> None:
    # GIVEN a breaker that opens on the first failure for 600 s, and the ERP down for hours
    outage = make_outage(monkeypatch, capsys, threshold=1, cool_down=600)
    message = outage.queue.send(envelope(3))
    outage.erp.down = True
    # WHEN the message is received eight times (each a failed half-open trial after the first)
    for _ in range(8):
        outage.step()
    # THEN each receive waited out the cool-down and the last was sent again as a fresh message
    assert outage.delays_of(message) == [600] * 7
    assert outage.queue.sent == [(message.body, 600)]
    assert outage.harness.exceptions.records == []
    assert outage.queue.dead_letters == []
    [fresh] = outage.queue.messages
    assert fresh.receive_count == 0
    assert outage.erp.attempts == 8
    # WHEN the ERP is back
    outage.erp.down = False
    assert outage.step() == {"batchItemFailures": []}
    # THEN the event posts once
    assert (len(outage.erp.documents), outage.erp.create_calls) == (1, 1)
    assert outage.queue.messages == []
    assert item_failures(capsys) == [1] * 7 + [0, 0]


def test_the_redelivery_adapter_speaks_sqs(aws: AwsResources) -> None:
    # GIVEN a message received from a real (moto) queue
    url = aws.sqs.create_queue(QueueName="posting-retries")["QueueUrl"]
    aws.sqs.send_message(QueueUrl=url, MessageBody="{}")
    [received] = aws.sqs.receive_message(QueueUrl=url, AttributeNames=["All"])["Messages"]
    redelivery = SqsMessageRedelivery(aws.sqs, url)
    # WHEN it is delayed and a copy sent with a delay
    redelivery.delay(received["ReceiptHandle"], 30)
    redelivery.resend("{}", 60)
    # THEN SQS accepted both: nothing is visible now
    assert aws.sqs.receive_message(QueueUrl=url).get("Messages", []) == []
    attributes = aws.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert (attributes["ApproximateNumberOfMessagesNotVisible"], attributes["ApproximateNumberOfMessagesDelayed"]) == (
        "1",
        "1",
    )
