"""Contract: the in-memory calendar and DynamoPeriodCalendar (on moto, in the master-data table) agree."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from billing_sync.domain.ports import PeriodCalendar, PeriodState
from billing_sync.state.dynamo import DynamoMasterDataStore
from billing_sync.state.periods import DynamoPeriodCalendar
from tests.fakes.periods import InMemoryPeriodCalendar
from tests.functional.aws_fixtures import create_table

T0 = datetime(2026, 12, 3, 9, 30, tzinfo=UTC)
CONTROLLER = "arn:aws:iam::123456789012:user/controller"
AUDITOR = "arn:aws:iam::123456789012:user/auditor"


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        yield boto3.client("dynamodb", region_name="us-east-1")


@pytest.fixture(params=["in_memory", "dynamo"])
def calendar(request: pytest.FixtureRequest) -> PeriodCalendar:
    if request.param == "in_memory":
        return InMemoryPeriodCalendar()
    client = request.getfixturevalue("dynamodb")
    return DynamoPeriodCalendar(client, create_table(client, "master-data"))


def test_every_period_is_open_until_it_is_closed(calendar: PeriodCalendar) -> None:
    # GIVEN a calendar where nothing was ever closed
    # WHEN / THEN every period of every entity is open, and none is listed
    assert not calendar.is_closed("US01", "2026-10")
    assert calendar.periods() == []

    # WHEN the controller closes US01's October
    calendar.set_closed("US01", "2026-10", closed=True, at=T0, by=CONTROLLER)

    # THEN October of US01 is closed; November of US01 and October of JP01 are not
    assert calendar.is_closed("US01", "2026-10")
    assert not calendar.is_closed("US01", "2026-11")
    assert not calendar.is_closed("JP01", "2026-10")


def test_closing_and_reopening_keep_who_and_when(calendar: PeriodCalendar) -> None:
    # GIVEN October of US01 closed, reopened by the auditor, then closed again; JP01's September closed
    calendar.set_closed("US01", "2026-10", closed=True, at=T0, by=CONTROLLER)
    calendar.set_closed("US01", "2026-10", closed=False, at=T0 + timedelta(hours=1), by=AUDITOR)
    calendar.set_closed("JP01", "2026-09", closed=True, at=T0 + timedelta(hours=2), by=CONTROLLER)
    calendar.set_closed("US01", "2026-10", closed=True, at=T0 + timedelta(hours=3), by=CONTROLLER)

    # WHEN the calendar is listed, in all and per entity
    everything = calendar.periods()
    us01 = calendar.periods("US01")

    # THEN each period shows its latest state, who changed it and when, oldest period first
    assert everything == [
        PeriodState("JP01", "2026-09", True, T0 + timedelta(hours=2), CONTROLLER),
        PeriodState("US01", "2026-10", True, T0 + timedelta(hours=3), CONTROLLER),
    ]
    assert us01 == [PeriodState("US01", "2026-10", True, T0 + timedelta(hours=3), CONTROLLER)]
    # AND the trail keeps every change
    history = calendar.history("US01", "2026-10")  # type: ignore[attr-defined]
    assert [(h.closed, h.changed_by) for h in history] == [(True, CONTROLLER), (False, AUDITOR), (True, CONTROLLER)]


def test_a_reopened_period_is_open_again(calendar: PeriodCalendar) -> None:
    calendar.set_closed("JP01", "2026-11", closed=True, at=T0, by=CONTROLLER)
    calendar.set_closed("JP01", "2026-11", closed=False, at=T0 + timedelta(minutes=1), by=CONTROLLER)

    assert not calendar.is_closed("JP01", "2026-11")
    assert [state.closed for state in calendar.periods("JP01")] == [False]


def test_the_calendar_shares_the_master_data_table_without_touching_customers(dynamodb: Any) -> None:
    # GIVEN the master-data table with a customer in it
    table = create_table(dynamodb, "master-data")
    customers = DynamoMasterDataStore(dynamodb, table)
    dynamodb.put_item(
        TableName=table, Item={"pk": {"S": "CUSTOMER#stripe#cus_QfR7xKp2LmN9aT"}, "legal_entity": {"S": "US01"}}
    )
    calendar = DynamoPeriodCalendar(dynamodb, table)

    # WHEN a period is closed
    calendar.set_closed("US01", "2026-10", closed=True, at=T0, by=CONTROLLER)

    # THEN the customer is still there and the calendar is one item per entity plus the index
    assert customers.customer_legal_entity(source="stripe", customer_id="cus_QfR7xKp2LmN9aT") == "US01"
    keys = sorted(item["pk"]["S"] for item in dynamodb.scan(TableName=table)["Items"])
    assert keys == ["CUSTOMER#stripe#cus_QfR7xKp2LmN9aT", "PERIODS", "PERIODS#US01"]


def test_a_warm_instance_trusts_its_read_for_the_cache_age_and_then_reads_again(dynamodb: Any) -> None:
    # GIVEN two instances over one table (an operator's and a warm posting Lambda's), the Lambda's clock frozen
    table = create_table(dynamodb, "master-data")
    now = [100.0]
    posting = DynamoPeriodCalendar(dynamodb, table, cache_seconds=30, monotonic=lambda: now[0])
    operator = DynamoPeriodCalendar(dynamodb, table, cache_seconds=0)
    assert not posting.is_closed("US01", "2026-10")

    # WHEN the operator closes October
    operator.set_closed("US01", "2026-10", closed=True, at=T0, by=CONTROLLER)

    # THEN the warm instance sees it once its cached read is older than the cache age, not before
    now[0] += 29
    assert not posting.is_closed("US01", "2026-10")
    now[0] += 2
    assert posting.is_closed("US01", "2026-10")
