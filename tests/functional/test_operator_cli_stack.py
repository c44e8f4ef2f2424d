"""`billing-sync dlq --stack-name`: resources come from the stack's outputs, with the caller's credentials."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
from moto import mock_aws

from billing_sync.aws.exception_queue import SqsExceptionQueue
from billing_sync.aws.exception_store import DynamoExceptionStore
from billing_sync.domain.errors import ExceptionCategory
from billing_sync.domain.lineage import ExceptionRecord
from billing_sync_ops.cli import main
from tests.functional.aws_fixtures import create_exception_table, create_table

SEEN = datetime(2026, 11, 26, 8, 0, tzinfo=UTC)


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A stack whose outputs name an exception queue, store and lineage table, as `cdk deploy` leaves them."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        dynamodb, sqs = boto3.client("dynamodb"), boto3.client("sqs")
        outputs = {
            "ExceptionQueueUrl": sqs.create_queue(QueueName="billing-sync-exceptions")["QueueUrl"],
            "ExceptionTableName": create_exception_table(dynamodb, "billing-sync-exceptions"),
            "LineageTableName": create_table(dynamodb, "billing-sync-lineage"),
        }
        template = {
            "Resources": {"Marker": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
            "Outputs": {key: {"Value": value} for key, value in outputs.items()},
        }
        boto3.client("cloudformation").create_stack(StackName="BillingSync", TemplateBody=json.dumps(template))
        yield {"dynamodb": dynamodb, "sqs": sqs, **outputs}


def test_dlq_list_reads_the_store_named_by_the_stack_outputs(deployed, capsys) -> None:
    # GIVEN a MAPPING exception parked in the deployed stack
    store = DynamoExceptionStore(deployed["dynamodb"], deployed["ExceptionTableName"])
    queue = SqsExceptionQueue(deployed["sqs"], deployed["ExceptionQueueUrl"], store)
    queue.send(
        ExceptionRecord(
            event_id="5ab40021-3492-57fb-beb6-f82851c7445e",
            source="stripe",
            source_event_id="evt_1QrAYANx4RkL2mQexkQ1mecD",
            event_type="invoice.issued",
            category=ExceptionCategory.MAPPING,
            reason="no tax_payable account",
            attempts=1,
            first_seen=SEEN,
            last_seen=SEEN,
            missing_key="tax_payable[legal_entity=US01]",
        )
    )

    # WHEN the operator lists exceptions of the stack by name
    code = main(["dlq", "list", "--stack-name", "BillingSync", "--json"])

    # THEN the counts come from that stack's store and queue
    listed = json.loads(capsys.readouterr().out)
    assert code == 0
    assert listed["open"]["by_category"] == {"MAPPING": 1}
    assert [queue["url"] for queue in listed["queues"]] == [deployed["ExceptionQueueUrl"]]
    assert "BillingSync" in listed["target"]


def test_an_unknown_stack_is_a_clear_error_with_its_exit_code(deployed, capsys) -> None:
    code = main(["dlq", "list", "--stack-name", "NoSuchStack", "--json"])
    assert code == 3
    assert "NoSuchStack" in capsys.readouterr().err
