"""The running balances path on moto: ledger stream -> handler -> balances table, exactly once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto import mock_aws

from billing_sync.composition import balances as balances_root
from billing_sync.composition.balances import balances_store_for, deferred_revenue_accounts
from billing_sync.domain.balances import roll_forward, trial_balance_as_of
from billing_sync.domain.journal import ErpCustomer, entity_trial_balance
from billing_sync.erp.ledger import DynamoLedgerErpClient
from billing_sync.handlers import maintain_balances
from billing_sync.state.balances import DynamoBalancesStore
from billing_sync_ops.ops.revenue import deferred_roll_forward
from tests.functional.aws_fixtures import create_ledger
from tests.functional.posting_harness import mapping
from tests.unit.test_balances import FUNCTIONAL, posted_ledger


class CountingClient:
    """The DynamoDB client, counting each call by operation (a transaction is one write request)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._client, name)
        if not callable(attribute) or name.startswith("get_paginator"):
            return attribute

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attribute(*args, **kwargs)

        return counted


def create_balances_table(client: Any, name: str = "balances") -> str:
    client.create_table(
        TableName=name,
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "POWERTOOLS_METRICS_DISABLED": "true",
        "BALANCES_TABLE_NAME": "balances",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        client = boto3.client("dynamodb")
        create_ledger(client)
        client.update_table(
            TableName="ledger", StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"}
        )
        create_balances_table(client)
        from billing_sync import composition

        composition.reset()
        balances_root.reset()
        yield client
        balances_root.reset()


def store(client: Any) -> DynamoBalancesStore:
    return balances_store_for(client, "balances", mapping())


def stream_event(client: Any) -> dict[str, Any]:
    """Every record on the ledger's stream, as Lambda's event source mapping delivers them."""
    # botocore routes stream calls to an account endpoint (<account>.streams-ddb...) that moto does not serve.
    streams = boto3.client("dynamodbstreams", config=Config(account_id_endpoint_mode="disabled"))
    arn = client.describe_table(TableName="ledger")["Table"]["LatestStreamArn"]
    records: list[dict[str, Any]] = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(
            StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records += [
            dict(record, eventSourceARN=arn) for record in streams.get_records(ShardIterator=iterator)["Records"]
        ]
    return {"Records": records}


class _Context:
    function_name = "maintain-balances"
    memory_limit_in_mb = 256
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:maintain-balances"
    aws_request_id = "req-1"


def post_demo_documents(client: Any) -> DynamoLedgerErpClient:
    ledger = DynamoLedgerErpClient(client, "ledger")
    ledger.upsert_customer(ErpCustomer(external_id="stripe-customer-cus_1", subsidiary="1"))
    for document in posted_ledger().erp.posted_documents():
        ledger.create_document(document)
    return ledger


def test_the_stream_handler_keeps_balances_equal_to_the_scanned_ledger(dynamodb: Any) -> None:
    # GIVEN documents posted to the ledger table (and a customer upsert, which is not a document)
    ledger = post_demo_documents(dynamodb)
    event = stream_event(dynamodb)
    assert any(not r["dynamodb"]["Keys"]["pk"]["S"].startswith("DOC#") for r in event["Records"])
    # WHEN the handler gets the stream's records
    response = maintain_balances.lambda_handler(event, _Context())  # type: ignore[arg-type]
    # THEN nothing failed, and the balances read back as the ledger's scan
    assert response["batchItemFailures"] == []
    documents = list(ledger.posted_documents())
    entities = mapping().legal_entities
    for basis in ("transaction", "functional"):
        running = trial_balance_as_of(
            store(dynamodb).trial_balance_items(entities, basis=basis), basis=basis, as_of=None
        )  # type: ignore[arg-type]
        scanned = entity_trial_balance(documents, basis=basis, functional_currencies=FUNCTIONAL)  # type: ignore[arg-type]
        assert running.rows == scanned.rows
    assert roll_forward(store(dynamodb).roll_forward_items(entities)) == deferred_roll_forward(
        ledger, deferred_revenue_accounts(mapping())
    )


def test_a_redelivered_batch_changes_nothing(dynamodb: Any) -> None:
    # GIVEN a batch applied once
    post_demo_documents(dynamodb)
    event = stream_event(dynamodb)
    maintain_balances.lambda_handler(event, _Context())  # type: ignore[arg-type]
    before = dynamodb.scan(TableName="balances")["Items"]
    # WHEN the same records arrive again
    response = maintain_balances.lambda_handler(event, _Context())  # type: ignore[arg-type]
    # THEN no balance moved
    assert response["batchItemFailures"] == []
    after = dynamodb.scan(TableName="balances")["Items"]
    key = lambda item: (item["pk"]["S"], item["sk"]["S"])  # noqa: E731
    assert sorted(after, key=key) == sorted(before, key=key)


def test_one_transaction_per_document_and_none_on_redelivery(dynamodb: Any) -> None:
    # GIVEN a counted client and a realistic invoice
    counting = CountingClient(dynamodb)
    balances = store(counting)  # type: ignore[arg-type]
    invoice = next(doc for doc in posted_ledger().erp.posted_documents() if doc.kind == "invoice")
    # WHEN it is applied, then applied again
    first, second = balances.apply(invoice), balances.apply(invoice)
    # THEN the first is one write request (one transaction), the second one cancelled transaction that adds nothing
    assert (first, second) == (True, False)
    assert counting.calls == Counter({"transact_write_items": 2})
    assert balances.is_applied(invoice.external_id)


def test_a_journal_beyond_one_transaction_is_split_and_still_exactly_once(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN transactions capped at 3 balance keys
    from billing_sync.state import balances as adapter

    monkeypatch.setattr(adapter, "MAX_DELTAS_PER_TRANSACTION", 3)
    counting = CountingClient(dynamodb)
    balances = store(counting)  # type: ignore[arg-type]
    invoice = next(doc for doc in posted_ledger().erp.posted_documents() if doc.kind == "invoice")
    # WHEN applied twice
    balances.apply(invoice)
    parts = counting.calls["transact_write_items"]
    balances.apply(invoice)
    # THEN it took several transactions, each part marked, and the second run added nothing
    assert parts > 1 and counting.calls["transact_write_items"] == 2 * parts
    once = trial_balance_as_of(
        balances.trial_balance_items(["US01"], basis="transaction"), basis="transaction", as_of=None
    )
    expected = entity_trial_balance([invoice], basis="transaction")
    assert once.rows == expected.rows
