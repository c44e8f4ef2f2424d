"""The exception store: every parked event indexed by open category and age; closing keeps the history."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from billing_sync.aws.exception_queue import SqsExceptionQueue
from billing_sync.aws.exception_store import DynamoExceptionStore, ExceptionStatus
from billing_sync.domain.errors import ExceptionCategory
from billing_sync.domain.lineage import ExceptionRecord
from tests.functional.aws_fixtures import create_exception_table

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def record(event_id: str, category: ExceptionCategory, first_seen: datetime) -> ExceptionRecord:
    return ExceptionRecord(
        event_id=event_id,
        source="stripe",
        source_event_id=f"evt_{event_id}",
        event_type="invoice.issued",
        category=category,
        reason=f"{category} for {event_id}",
        attempts=1,
        first_seen=first_seen,
        last_seen=first_seen,
    )


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield boto3.client("dynamodb"), boto3.client("sqs")


def test_open_exceptions_are_listed_by_category_oldest_first_and_by_age(aws):
    # GIVEN three MAPPING and one VALIDATION exception of different ages
    dynamodb, _ = aws
    store = DynamoExceptionStore(dynamodb, create_exception_table(dynamodb))
    for event_id, category, age in (
        ("m2", ExceptionCategory.MAPPING, 2),
        ("m5", ExceptionCategory.MAPPING, 5),
        ("v1", ExceptionCategory.VALIDATION, 1),
        ("m1", ExceptionCategory.MAPPING, 1),
    ):
        store.put(record(event_id, category, T0 - timedelta(hours=age)))

    # WHEN / THEN
    assert [r.event_id for r in store.open(category=ExceptionCategory.MAPPING)] == ["m5", "m2", "m1"]
    assert [
        r.event_id for r in store.open(category=ExceptionCategory.MAPPING, older_than=T0 - timedelta(hours=1.5))
    ] == [
        "m5",
        "m2",
    ]
    assert sorted(r.event_id for r in store.open()) == ["m1", "m2", "m5", "v1"]


def test_a_closed_exception_leaves_the_index_and_keeps_its_history(aws):
    dynamodb, _ = aws
    store = DynamoExceptionStore(dynamodb, create_exception_table(dynamodb))
    store.put(record("m1", ExceptionCategory.MAPPING, T0))

    # WHEN it is redriven
    store.close("m1", status=ExceptionStatus.REDRIVEN, at=T0, by="arn:aws:iam::1:user/ops", note="--category MAPPING")

    # THEN it is no longer open, and `get` says who redrove it and how
    assert list(store.open()) == []
    stored, bookkeeping = store.get("m1")
    assert stored.event_id == "m1"
    assert bookkeeping["status"] == "REDRIVEN"
    assert bookkeeping["closed_by"] == "arn:aws:iam::1:user/ops"
    store.close("unknown", status=ExceptionStatus.PURGED, at=T0, by="ops", note="none")  # no error, nothing made


def test_the_exception_queue_indexes_what_it_parks_with_the_message_id(aws):
    # GIVEN the queue adapter with the store
    dynamodb, sqs = aws
    store = DynamoExceptionStore(dynamodb, create_exception_table(dynamodb))
    url = sqs.create_queue(QueueName="exceptions")["QueueUrl"]
    queue = SqsExceptionQueue(sqs, url, store)

    # WHEN a record is parked
    queue.send(record("v1", ExceptionCategory.VALIDATION, T0))

    # THEN the message and the store agree on it
    [message] = sqs.receive_message(QueueUrl=url)["Messages"]
    stored, bookkeeping = store.get("v1")
    assert bookkeeping["message_id"] == message["MessageId"]
    assert bookkeeping["queue"] == url
    assert store.find_by_message_id(message["MessageId"]) == stored


def test_a_second_start_of_one_execution_name_is_a_no_op(aws) -> None:
    # GIVEN a state machine (moto records executions without running them here)
    from billing_sync.aws.workflows import StepFunctionsWorkflows

    sfn = boto3.client("stepfunctions")
    arn = sfn.create_state_machine(
        name="refund-saga",
        definition='{"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}',
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]
    workflows = StepFunctionsWorkflows(sfn, {"refund_saga": arn}, execution_input={"wait_seconds": 1, "max_waits": 2})

    # WHEN the same execution is started twice
    first = workflows.start("refund_saga", name="evt-1", event={"event_id": "e"})
    second = workflows.start("refund_saga", name="evt-1", event={"event_id": "e"})

    # THEN one execution exists, with the saga's input (AWS answers a repeat of a running execution's name
    # and input with that execution, and a repeat of a closed one with ExecutionAlreadyExists: both no-ops)
    assert first is True
    assert second in (True, False)
    [execution] = sfn.list_executions(stateMachineArn=arn)["executions"]
    started = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert started == {
        "wait_seconds": 1,
        "max_waits": 2,
        "event": {"event_id": "e"},
        "name": "evt-1",
        "waits": {"count": 0},
    }
