"""The soak's moto patch: a Query on a table's own key reads its partition only, with the same answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.models.table import Table

from billing_sync_ops.moto_process import partition_queries


@pytest.fixture
def restored() -> Iterator[None]:
    all_items, query = Table.all_items, Table.query
    yield
    Table.all_items, Table.query = all_items, query  # type: ignore[method-assign]


def waiting_room() -> Any:
    """A table shaped like the WaitingRoom (key, event_id), with waiters under three keys."""
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(
        TableName="waiting",
        KeySchema=[{"AttributeName": "key", "KeyType": "HASH"}, {"AttributeName": "event_id", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "key", "AttributeType": "S"},
            {"AttributeName": "event_id", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for n in range(30):
        key = ("customer:stripe:cus_A", "document:stripe-invoice-in_B", "payments:stripe-invoice-in_C")[n % 3]
        client.put_item(TableName="waiting", Item={"key": {"S": key}, "event_id": {"S": f"evt-{29 - n:02d}"}})
    return client


def answers(client: Any) -> list[Any]:
    found = []
    for key in ("customer:stripe:cus_A", "payments:stripe-invoice-in_C", "price:stripe:price_none"):
        for forward in (True, False):
            pages = client.get_paginator("query").paginate(
                TableName="waiting",
                KeyConditionExpression="#k = :k",
                ExpressionAttributeNames={"#k": "key"},
                ExpressionAttributeValues={":k": {"S": key}},
                ScanIndexForward=forward,
                PaginationConfig={"PageSize": 4},
            )
            found.append([item["event_id"]["S"] for page in pages for item in page["Items"]])
    return found


def test_a_partition_query_answers_as_moto_does_without_reading_the_whole_table(restored) -> None:
    with mock_aws():
        client = waiting_room()
        before = answers(client)
        partition_queries()
        read: list[int] = []
        all_items = Table.all_items

        def counted(self: Any) -> Any:
            items = all_items(self)
            read.append(len(items))
            return items

        Table.all_items = counted  # type: ignore[method-assign]
        after = answers(client)
    assert after == before
    assert before[0] == [f"evt-{n:02d}" for n in range(29, -1, -1) if (29 - n) % 3 == 0][::-1]
    assert before[4] == before[5] == []
    # each query read its own partition (10, 10, 0 items), never the table's 30
    assert read and max(read) == 10


def ledger_with_reference_index() -> Any:
    """A table shaped like the ledger (pk) with an index by payment reference, as payouts query it."""
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(
        TableName="ledger",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "reference", "AttributeType": "S"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "ByReference",
                "KeySchema": [{"AttributeName": "reference", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for n in range(30):
        item = {"pk": {"S": f"DOC#stripe-payment-{29 - n:02d}"}}
        if n % 5:  # every fifth document names no reference: the index does not hold it
            item["reference"] = {"S": ("payment_intent:pi_A", "payment_intent:pi_B", "charge:ch_C")[n % 3]}
        client.put_item(TableName="ledger", Item=item)
    return client


def index_answers(client: Any) -> list[Any]:
    found = []
    for reference in ("payment_intent:pi_A", "charge:ch_C", "payment_intent:pi_none"):
        pages = client.get_paginator("query").paginate(
            TableName="ledger",
            IndexName="ByReference",
            KeyConditionExpression="reference = :r",
            ExpressionAttributeValues={":r": {"S": reference}},
            PaginationConfig={"PageSize": 3},
        )
        found.append([item["pk"]["S"] for page in pages for item in page["Items"]])
    return found


def test_an_index_query_answers_as_moto_does_sorting_only_the_items_it_matches(restored) -> None:
    with mock_aws():
        client = ledger_with_reference_index()
        before = index_answers(client)
        partition_queries()
        sorted_sizes: list[int] = []
        real_sorted = sorted

        def counting_sorted(items: Any, **kwargs: Any) -> Any:
            items = list(items)
            sorted_sizes.append(len(items))
            return real_sorted(items, **kwargs)

        import billing_sync_ops.moto_process as patched

        patched.sorted = counting_sorted  # type: ignore[attr-defined]
        try:
            after = index_answers(client)
        finally:
            del patched.sorted  # type: ignore[attr-defined]
    assert after == before
    assert len(before[0]) == 8 and before[2] == []
    # each query sorted only the documents naming its reference (8, 8, 0), never the table's 30
    assert sorted_sizes and max(sorted_sizes) == 8
