"""The bench's counting phases on small inputs: the counts are exact and match the design.

Not a timing test; the timing phases only run in `make bench`.
"""

from __future__ import annotations

import os

import pytest

from billing_sync_ops import bench


@pytest.fixture
def unchanged_environment():
    def environment() -> dict[str, str]:
        return {name: value for name, value in os.environ.items() if name != "PYTEST_CURRENT_TEST"}

    before = environment()
    yield
    assert environment() == before, "a bench phase leaked environment variables"


@pytest.mark.infra  # the bench provisions moto from the synthesised stack
def test_each_posted_invoice_and_payment_costs_a_claim_a_ledger_document_and_a_posted_lineage_update(
    unchanged_environment,
):
    invoices = 5

    result = bench.count_ddb_writes(invoices=invoices)

    # claim (conditional UpdateItem) + ledger document (conditional PutItem) + lineage POSTED (UpdateItem)
    for kind in ("invoice", "payment"):
        assert result["ddb_writes_breakdown"][kind] == {"PutItem": invoices, "UpdateItem": 2 * invoices}
    assert result["ddb_writes_per_posted_event"] == 3
    assert result["ddb_writes_per_invoice"] == 3
    assert result["ddb_writes_per_payment"] == 3


@pytest.mark.infra  # the bench provisions moto from the synthesised stack
def test_each_customer_upsert_costs_master_data_a_ledger_customer_and_lineage(unchanged_environment):
    result = bench.count_ddb_writes(invoices=5)

    customers = result["customers"]
    assert customers == 2
    # master data and ERP customer (PutItem), lineage (UpdateItem, which keeps an operator's redrive trail)
    assert result["ddb_writes_breakdown"]["customer"] == {"PutItem": 2 * customers, "UpdateItem": customers}
    assert result["ddb_writes_per_customer_upsert"] == 3


@pytest.mark.infra  # the bench provisions moto from the synthesised stack
def test_each_webhook_archives_once_and_publishes_once_and_the_secret_is_read_once_per_run(
    unchanged_environment,
):
    webhooks = 5

    result = bench.count_ingest_calls(webhooks=webhooks)

    assert result["aws_calls_breakdown"] == {
        "s3.PutObject": webhooks,
        "events.PutEvents": webhooks,
        "secretsmanager.GetSecretValue": 1,
    }
    assert result["aws_calls"] == 2 * webhooks + 1


def test_import_time_is_read_from_the_modules_own_line():
    microseconds = bench.import_microseconds("json", bench._lambda_process_environment(bench.FUNCTIONS_DIR))

    assert isinstance(microseconds, int)
    assert microseconds > 0


def test_a_write_batch_counts_each_item_it_writes():
    counter = bench.AwsCallCounter()

    counter.record("dynamodb", "BatchWriteItem", {"RequestItems": {"a": [{}, {}], "b": [{}]}})
    counter.record("dynamodb", "TransactWriteItems", {"TransactItems": [{}, {}]})
    counter.record("dynamodb", "GetItem", {})

    assert counter.ddb_writes == {"BatchWriteItem": 3, "TransactWriteItems": 2}
    assert sum(counter.calls.values()) == 3
