"""moto-backed AWS resources shaped like the stack's, for handler-level tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from billing_sync import composition
from billing_sync.aws.exception_store import OPEN_BY_CATEGORY_INDEX
from billing_sync.state.rates import DynamoRateTable
from tests.fakes.rates import sample_rates

WEBHOOK_SECRET = "whsec_test_4eC39HqLyjWDarjtT1zdp7dc"


@dataclass(frozen=True)
class AwsResources:
    dynamodb: Any
    sqs: Any
    s3: Any
    events: Any
    exception_queue_url: str
    capture_queue_url: str
    bucket: str


def create_table(client: Any, name: str) -> str:
    """A table keyed like the stack's: partition key `pk` (string), on demand."""
    client.create_table(
        TableName=name,
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def create_ledger(client: Any, name: str = "ledger") -> str:
    """The ledger as the stack keys it: `pk`, and the AppliedTo index of documents by what they apply to."""
    client.create_table(
        TableName=name,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "applied_to", "AttributeType": "S"},
            {"AttributeName": "reference", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "AppliedTo",
                "KeySchema": [{"AttributeName": "applied_to", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["kind", "total"]},
            },
            {
                "IndexName": "ByReference",
                "KeySchema": [{"AttributeName": "reference", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            },
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def create_exception_table(client: Any, name: str = "exceptions") -> str:
    """Keyed as the stack keys it: `pk`, and the sparse OpenByCategory index (open_category, first_seen)."""
    client.create_table(
        TableName=name,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "open_category", "AttributeType": "S"},
            {"AttributeName": "first_seen", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": OPEN_BY_CATEGORY_INDEX,
                "KeySchema": [
                    {"AttributeName": "open_category", "KeyType": "HASH"},
                    {"AttributeName": "first_seen", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def create_waiting_room(client: Any, name: str = "waiting-room") -> str:
    """The waiting room as the stack keys it: partition `key`, sort `event_id`."""
    client.create_table(
        TableName=name,
        AttributeDefinitions=[
            {"AttributeName": "key", "AttributeType": "S"},
            {"AttributeName": "event_id", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}, {"AttributeName": "event_id", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def seed_sample_rates(dynamodb: Any, table: str = "master-data") -> int:
    """The shipped ECB-format rates in the master-data table, for moto tests that post foreign currency
    (opt-in: a thousand moto writes would slow every other test)."""
    return DynamoRateTable(dynamodb, table).put_rates(sample_rates())


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[AwsResources]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_METRICS_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        for table in ("lineage", "master-data"):
            create_table(dynamodb, table)
        create_ledger(dynamodb)
        create_waiting_room(dynamodb)
        create_exception_table(dynamodb)
        sqs = boto3.client("sqs")
        exception_queue = sqs.create_queue(QueueName="exceptions")["QueueUrl"]
        capture_queue = sqs.create_queue(QueueName="posting")["QueueUrl"]
        capture_arn = sqs.get_queue_attributes(QueueUrl=capture_queue, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="raw-archive")
        events = boto3.client("events")
        events.create_event_bus(Name="billing-sync-test")
        events.put_rule(
            Name="to-posting",
            EventBusName="billing-sync-test",
            EventPattern=json.dumps({"source": ["billing-sync"]}),
        )
        events.put_targets(
            Rule="to-posting", EventBusName="billing-sync-test", Targets=[{"Id": "posting", "Arn": capture_arn}]
        )
        boto3.client("secretsmanager").create_secret(Name="stripe-webhook", SecretString=json.dumps([WEBHOOK_SECRET]))
        for name, value in {
            "BILLING_BUS_NAME": "billing-sync-test",
            "RAW_ARCHIVE_BUCKET": "raw-archive",
            "STRIPE_WEBHOOK_SECRET_NAME": "stripe-webhook",
            "LINEAGE_TABLE_NAME": "lineage",
            "LEDGER_TABLE_NAME": "ledger",
            "MASTER_DATA_TABLE_NAME": "master-data",
            "WAITING_ROOM_TABLE_NAME": "waiting-room",
            "POSTING_QUEUE_URL": capture_queue,
            "CATALOGUE_REQUIRED": "false",
            "EXCEPTION_QUEUE_URL": exception_queue,
            "EXCEPTION_TABLE_NAME": "exceptions",
            "DEFAULT_LEGAL_ENTITY": "US01",
        }.items():
            monkeypatch.setenv(name, value)
        composition.reset()
        yield AwsResources(dynamodb, sqs, s3, events, exception_queue, capture_queue, "raw-archive")
        composition.reset()


def drain(sqs: Any, queue_url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while batch := sqs.receive_message(
        QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], MessageAttributeNames=["All"]
    ).get("Messages", []):
        messages += batch
        sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
    return messages
