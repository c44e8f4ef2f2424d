"""The run report reads the exception queue without consuming it."""

from __future__ import annotations

import json

import boto3
from moto import mock_aws

from billing_sync_ops.report import dead_lettered_event_ids


@mock_aws
def test_every_dead_lettered_bus_event_is_found_and_left_in_the_queue(monkeypatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    # GIVEN 25 bus events moved to the exception queue by its redrive policy, and a parked record
    sqs = boto3.client("sqs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    queue = sqs.create_queue(QueueName="exceptions")["QueueUrl"]
    expected = {f"00000000-0000-5000-8000-{n:012d}" for n in range(25)}
    for event_id in expected:
        body = {"detail-type": "payment.settled", "source": "billing-sync", "detail": {"event_id": event_id}}
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps(body))
    sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"event_id": "parked", "category": "VALIDATION"}))
    # WHEN the report looks for dead-lettered events
    found = dead_lettered_event_ids(sqs, queue)
    # THEN it finds all of them, and every message is still there and visible
    assert found == expected
    attributes = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["All"])["Attributes"]
    assert int(attributes["ApproximateNumberOfMessages"]) == 26
    assert int(attributes["ApproximateNumberOfMessagesNotVisible"]) == 0
