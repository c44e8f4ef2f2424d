"""The bench's counting phases on small inputs: the counts are exact and match the design.

Not a timing test; the timing phases only run in `make bench`.
"""

from __future__ import annotations

import json
import os
import sys

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
def test_each_posted_invoice_and_payment_costs_a_ledger_document_and_a_posted_lineage_update(
    unchanged_environment,
):
    invoices = 5

    result = bench.count_ddb_writes(invoices=invoices)

    # ledger document (conditional PutItem, exactly once by external id) + lineage POSTED (UpdateItem)
    for kind in ("invoice", "payment"):
        assert result["ddb_writes_breakdown"][kind] == {"PutItem": invoices, "UpdateItem": invoices}
    assert result["ddb_writes_per_posted_event"] == 2
    assert result["ddb_writes_per_invoice"] == 2
    assert result["ddb_writes_per_payment"] == 2


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


def test_request_units_count_a_put_by_its_size_transactions_twice_and_reads_by_consistency():
    # GIVEN a 1.5 KB put, a small update, a two-item transaction and two reads
    counter = bench.AwsCallCounter()
    counter.record("dynamodb", "PutItem", {"Item": {"pk": {"S": "x"}, "body": {"S": "y" * 1500}}})
    counter.record("dynamodb", "UpdateItem", {"Key": {"pk": {"S": "x"}}})
    counter.record(
        "dynamodb",
        "TransactWriteItems",
        {"TransactItems": [{"Put": {"Item": {"pk": {"S": "a"}}}}, {"Update": {"Key": {"pk": {"S": "b"}}}}]},
    )
    counter.record("dynamodb", "GetItem", {"ConsistentRead": True})
    counter.record("dynamodb", "Query", {})

    # THEN 2 + 1 + 2 x (1 + 1) write units and 1 + 0.5 read units
    assert counter.ddb_units == {"wru": 7, "rru": 1.5}


def test_item_size_counts_attribute_names_and_values():
    assert (
        bench.ddb_item_bytes({"pk": {"S": "abc"}, "n": {"N": "12345"}, "ok": {"BOOL": True}}) == 2 + 3 + 1 + 4 + 2 + 1
    )


def test_captured_logs_count_bytes_and_the_distinct_emf_metrics():
    emf = {
        "_aws": {
            "Timestamp": 1,
            "CloudWatchMetrics": [
                {"Namespace": "BillingSync", "Dimensions": [["service"]], "Metrics": [{"Name": "EventsPosted"}]}
            ],
        },
        "service": "billing-sync",
        "EventsPosted": [1.0],
    }
    line = json.dumps(emf)
    logs = bench.CapturedLogs(text=f'{{"level":"INFO","message":"event processed"}}\n{line}\n{line}\n')

    assert logs.bytes == len('{"level":"INFO","message":"event processed"}') + 1 + 2 * (len(line) + 1)
    assert logs.emf_bytes == 2 * (len(line) + 1)
    assert logs.metrics() == {"BillingSync/EventsPosted[service=billing-sync]"}


@pytest.fixture(scope="module")
def cold_path_inputs(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cold-path")
    environments = bench.function_environments()
    events = {}
    for module, event in bench.first_events().items():
        events[module] = directory / f"{module}.json"
        events[module].write_text(json.dumps(event))
    return environments, events


@pytest.mark.infra  # the function environments come from the synthesised stack
@pytest.mark.parametrize(
    ("module", "clients", "first_call"),
    [
        (
            "billing_sync.handlers.stripe_webhook",
            {"secretsmanager", "s3", "events", "dynamodb", "sqs"},
            "secretsmanager.GetSecretValue",
        ),
        ("billing_sync.handlers.stripe_partner_events", {"s3", "events", "dynamodb", "sqs"}, "s3.PutObject"),
        ("billing_sync.handlers.post_to_erp", {"dynamodb", "sqs", "stepfunctions"}, "dynamodb."),
    ],
)
def test_the_cold_path_child_runs_the_first_invocation_up_to_its_first_network_call(
    cold_path_inputs, module, clients, first_call
):
    # GIVEN the handler's environment from the stack and a first event
    environments, events = cold_path_inputs
    env = bench.cold_path_env(environments[module])

    # WHEN a fresh interpreter invokes the handler, and another imports boto3 and creates the same clients
    handler = bench.run_cold_path_child(sys.executable, "handler", module, str(events[module]), env)
    baseline = bench.run_cold_path_child(sys.executable, "baseline", "boto3", json.dumps(handler["clients"]), env)

    # THEN the handler built every client its first invocation needs, each once, and stopped at its first
    # API call; the baseline built the same clients and loaded none of the handler's own packages
    assert sorted(handler["clients"]) == sorted(clients)
    assert handler["first_call"].startswith(first_call)
    assert {"billing_sync", "boto3", "pydantic", "aws_lambda_powertools"} <= set(handler["packages"])
    assert baseline["clients"] == handler["clients"]
    assert baseline["first_call"] is None
    assert "boto3" in baseline["packages"]
    assert not {"billing_sync", "pydantic", "aws_lambda_powertools"} & set(baseline["packages"])
    assert handler["cpu_seconds"] > 0
    assert baseline["cpu_seconds"] > 0
