"""`billing-sync rates load FILE` against a deployed stack (moto), and the DynamoDB rate table behind it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from billing_sync.domain.fx import Rate
from billing_sync.domain.ports import Waiter
from billing_sync.state.dynamo import DynamoWaitingRoom
from billing_sync.state.rates import DynamoRateTable
from billing_sync_ops.cli import main
from tests.fakes.rates import SAMPLE_RATES_FILE, InMemoryRateTable
from tests.functional.aws_fixtures import create_table, create_waiting_room

HELD_AT = datetime(2026, 11, 1, 1, 0, tzinfo=UTC)


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A stack whose outputs name the master-data table, the waiting room and the posting queue."""
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
            "MasterDataTableName": create_table(dynamodb, "billing-sync-master-data"),
            "WaitingRoomTableName": create_waiting_room(dynamodb, "billing-sync-waiting-room"),
            "PostingQueueUrl": sqs.create_queue(QueueName="billing-sync-posting")["QueueUrl"],
        }
        template = {
            "Resources": {"Marker": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
            "Outputs": {key: {"Value": value} for key, value in outputs.items()},
        }
        boto3.client("cloudformation").create_stack(StackName="BillingSync", TemplateBody=json.dumps(template))
        yield {"dynamodb": dynamodb, "sqs": sqs, **outputs}


def waiting_invoice(event_id: str, key: str) -> Waiter:
    event = {"event_id": event_id, "event_type": "invoice.issued", "source": "stripe"}
    return Waiter(key=key, event_id=event_id, event=event, wait_until=HELD_AT + timedelta(days=3))


def stored_items(deployed: dict[str, Any]) -> int:
    return int(deployed["dynamodb"].scan(TableName=deployed["MasterDataTableName"], Select="COUNT")["Count"])


def test_rates_load_stores_the_ecb_file_and_releases_what_waited_for_it(deployed, capsys) -> None:
    # GIVEN a EUR invoice waiting for the EUR/USD rate of Sunday 1 November, and a SEK one no file provides
    room = DynamoWaitingRoom(deployed["dynamodb"], deployed["WaitingRoomTableName"])
    room.hold(waiting_invoice("0f6a1c55-eur-invoice", "rate:EUR:USD:2026-11-01"))
    room.hold(waiting_invoice("7d2b9e01-sek-invoice", "rate:SEK:USD:2026-11-01"))
    # WHEN the operator loads the shipped ECB file into the stack
    code = main(["rates", "load", str(SAMPLE_RATES_FILE), "--stack-name", "BillingSync", "--json"])
    # THEN every rate of the file is stored and reported
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["command"] == "rates load" and "BillingSync" in out["target"]
    assert out["rates"] == 5 * out["days"] == stored_items(deployed)
    assert (out["first_day"], out["last_day"]) == ("2026-01-02", "2026-11-30")
    assert out["currencies"] == ["CHF", "GBP", "JPY", "KWD", "USD"]
    # AND the EUR invoice is back on the posting queue, while the SEK one still waits
    assert out["released"] == ["0f6a1c55-eur-invoice"]
    messages = deployed["sqs"].receive_message(QueueUrl=deployed["PostingQueueUrl"], MaxNumberOfMessages=10)
    assert [json.loads(m["Body"])["detail"]["event_id"] for m in messages["Messages"]] == ["0f6a1c55-eur-invoice"]
    assert [w.event_id for w in room.all_waiting()] == ["7d2b9e01-sek-invoice"]
    # AND posting reads Sunday's EUR/USD as Friday's publication from the file
    rate = DynamoRateTable(deployed["dynamodb"], deployed["MasterDataTableName"]).rate("EUR", "USD", date(2026, 11, 1))
    friday = next(line for line in SAMPLE_RATES_FILE.read_text().splitlines() if line.startswith("2026-10-30,"))
    assert rate == Rate("EUR", "USD", Decimal(friday.split(",")[1]), "ecb", date(2026, 10, 30))


def test_loading_the_same_file_twice_replaces_rather_than_adds(deployed, capsys) -> None:
    # GIVEN the file loaded once
    assert main(["rates", "load", str(SAMPLE_RATES_FILE), "--stack-name", "BillingSync", "--json"]) == 0
    first = stored_items(deployed)
    # WHEN it is loaded again
    assert main(["rates", "load", str(SAMPLE_RATES_FILE), "--stack-name", "BillingSync", "--json"]) == 0
    # THEN the table holds the same items: one per pair and day
    assert stored_items(deployed) == first


def test_a_malformed_file_is_bad_usage_naming_line_and_column_and_stores_nothing(
    deployed, capsys, tmp_path: Path
) -> None:
    # GIVEN an ECB history file whose second day has a rate that is not a number
    bad = tmp_path / "eurofxref-hist.csv"
    bad.write_text("Date,USD,JPY,\n2026-11-27,1.0850,162.31,\n2026-11-26,1.0838,16l.90,\n")
    # WHEN the operator loads it
    code = main(["rates", "load", str(bad), "--stack-name", "BillingSync", "--json"])
    # THEN it is bad usage, the message names the line and column, and nothing was written
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out == ""
    assert "line 3, column 3: '16l.90' is not a positive rate" in captured.err
    assert stored_items(deployed) == 0


def test_the_dynamo_table_and_the_fake_choose_the_same_rate_in_one_batch_read(deployed) -> None:
    # GIVEN the same ECB rates in DynamoDB and in the in-memory fake
    rates = [
        Rate("EUR", "USD", Decimal("1.0850"), "ecb", date(2026, 11, 20)),
        Rate("EUR", "JPY", Decimal("162.31"), "ecb", date(2026, 11, 20)),
        Rate("EUR", "USD", Decimal("1.0790"), "ecb", date(2026, 11, 19)),
        Rate("EUR", "JPY", Decimal("161.02"), "ecb", date(2026, 11, 18)),
    ]
    calls: list[str] = []
    client = deployed["dynamodb"]
    client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.append(model.name))
    dynamo = DynamoRateTable(client, deployed["MasterDataTableName"])
    fake = InMemoryRateTable()
    assert dynamo.put_rates(rates) == fake.put_rates(rates) == 4
    questions = [
        ("EUR", "USD", date(2026, 11, 22)),  # weekend: Friday's
        ("USD", "EUR", date(2026, 11, 19)),  # inverse
        ("USD", "JPY", date(2026, 11, 21)),  # cross
        ("JPY", "USD", date(2026, 11, 19)),  # Thursday has USD but no JPY: no cross that day or before
        ("EUR", "GBP", date(2026, 11, 20)),  # never published
        ("EUR", "USD", date(2026, 11, 25)),  # five days after the last publication
    ]
    for base, quote, on in questions:
        calls.clear()
        # WHEN each is asked of both
        answer = dynamo.rate(base, quote, on)
        # THEN both answer the same, and DynamoDB was read with one BatchGetItem
        assert answer == fake.rate(base, quote, on), (base, quote, on)
        assert calls == ["BatchGetItem"]
    assert [dynamo.rate(b, q, on) is None for b, q, on in questions] == [False, False, False, True, True, True]
