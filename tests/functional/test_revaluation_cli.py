"""`billing-sync fx revalue --stack-name`: month-end revaluation against a deployed stack's ledger, rate
table and period calendar (moto)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest
from moto import mock_aws

from billing_sync.domain.bookkeeping import Bookkeeper
from billing_sync.domain.fx import Rate
from billing_sync.domain.journal import DocumentKind, ErpDocument, JournalLine
from billing_sync.erp.ledger import DynamoLedgerErpClient
from billing_sync.state.periods import DynamoPeriodCalendar
from billing_sync.state.rates import DynamoRateTable
from billing_sync_ops.cli import main
from billing_sync_ops.ops.revenue import load_mapping
from tests.functional.aws_fixtures import create_ledger, create_table

AR = "1200 Accounts Receivable"
REVENUE = "4000 Subscription Revenue"
UNREALISED = "7110 Unrealised FX Gain/Loss"
INVOICE = "stripe-invoice-in_1QEurRevalueCli01"
NOV_10, NOV_30 = date(2026, 11, 10), date(2026, 11, 30)


@dataclass
class Stack:
    ledger: DynamoLedgerErpClient
    rates: DynamoRateTable
    periods: DynamoPeriodCalendar


def ecb(value: str, on: date) -> Rate:
    return Rate(base="EUR", quote="USD", value=Decimal(value), source="ecb", as_of=on)


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stack]:
    """A stack whose ledger holds a 1,000.00 EUR invoice of US01 posted Nov 10 at 1.0850, still open."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "t",
        "AWS_SECRET_ACCESS_KEY": "t",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        dynamodb = boto3.client("dynamodb")
        outputs = {
            "LedgerTableName": create_ledger(dynamodb, "billing-sync-ledger"),
            "MasterDataTableName": create_table(dynamodb, "billing-sync-master-data"),
        }
        template = {
            "Resources": {"Marker": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
            "Outputs": {key: {"Value": value} for key, value in outputs.items()},
        }
        boto3.client("cloudformation").create_stack(StackName="BillingSync", TemplateBody=json.dumps(template))
        stack = Stack(
            ledger=DynamoLedgerErpClient(dynamodb, outputs["LedgerTableName"]),
            rates=DynamoRateTable(dynamodb, outputs["MasterDataTableName"]),
            periods=DynamoPeriodCalendar(dynamodb, outputs["MasterDataTableName"], cache_seconds=0),
        )
        stack.rates.put_rates([ecb("1.0850", NOV_10)])
        invoice = ErpDocument(
            external_id=INVOICE,
            kind=DocumentKind.INVOICE,
            legal_entity="US01",
            subsidiary="1",
            customer_external_id="stripe-customer-cus_TZ3pBYNx4RkL2mQe",
            currency="EUR",
            posting_date=NOV_10,
            total=1_000_00,
            journal=(
                JournalLine(account=AR, currency="EUR", debit=1_000_00),
                JournalLine(account=REVENUE, currency="EUR", credit=1_000_00),
            ),
            source_event_id="evt_1QEurRevalueCli01",
        )
        bookkeeper = Bookkeeper(mapping=load_mapping(None), erp=stack.ledger, rates=stack.rates, periods=stack.periods)
        stack.ledger.create_document(bookkeeper.finish(invoice))
        yield stack


def revalue(capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, dict[str, Any], str]:
    code = main(["fx", "revalue", "--period", "2026-11", "--stack-name", "BillingSync", "--json", *options])
    captured = capsys.readouterr()
    return code, json.loads(captured.out), captured.err


def test_fx_revalue_posts_the_revaluation_and_its_reversal_once(deployed: Stack, capsys) -> None:
    # GIVEN the Nov 30 rate loaded: 1.1000
    deployed.rates.put_rates([ecb("1.1000", NOV_30)])

    # WHEN the operator revalues November for US01, twice
    code, first, _ = revalue(capsys, "--entity", "US01")
    again_code, again, _ = revalue(capsys, "--entity", "US01")

    # THEN the first run posted a 15.00 USD gain on the receivable, reversed on Dec 1
    assert code == 0 and first["month_end"] == "2026-11-30" and first["failed"] == 0
    [us01] = first["entities"]
    assert us01["status"] == "posted"
    assert (us01["external_id"], us01["posting_date"]) == ("fx-revaluation-US01-2026-11", "2026-11-30")
    assert (us01["reversal_external_id"], us01["reversal_posting_date"]) == (
        "fx-revaluation-US01-2026-11-reversal",
        "2026-12-01",
    )
    assert [
        (b["account"], b["currency"], b["balance"], b["carried"], b["revalued"], b["adjustment"])
        for b in us01["balances"]
    ] == [(AR, "EUR", 1_000_00, 1_085_00, 1_100_00, 15_00)]
    posted = deployed.ledger.get_document("fx-revaluation-US01-2026-11")
    assert posted is not None
    assert [(j.account, j.debit, j.credit, j.functional_debit, j.functional_credit) for j in posted.journal] == [
        (AR, 0, 0, 15_00, 0),
        (UNREALISED, 0, 0, 0, 15_00),
    ]
    # AND the second run posted nothing new
    assert again_code == 0 and again["entities"][0]["status"] == "already_posted"
    kinds = [d.kind for d in deployed.ledger.posted_documents("US01")]
    assert kinds.count(DocumentKind.FX_REVALUATION) == 2


def test_the_revaluation_and_reversal_net_to_zero_in_the_trial_balance(deployed: Stack, capsys) -> None:
    # GIVEN November revalued
    deployed.rates.put_rates([ecb("1.1000", NOV_30)])
    revalue(capsys, "--entity", "US01")

    # WHEN the functional trial balance is taken as of Dec 1
    main(
        [
            "ledger",
            "trial-balance",
            "--stack-name",
            "BillingSync",
            "--as-of",
            "2026-12-01",
            "--currency",
            "functional",
            "--json",
        ]
    )
    balance = json.loads(capsys.readouterr().out)

    # THEN the receivable is back at its carried 1,085.00 and nothing is left in unrealised FX
    net = {r["account"]: r["debit"] - r["credit"] for r in balance["rows"]}
    assert net[AR] == 1_085_00
    assert net.get(UNREALISED, 0) == 0
    assert balance["balanced"] is True


def test_a_missing_month_end_rate_fails_that_entity_and_posts_nothing(deployed: Stack, capsys) -> None:
    # GIVEN no EUR/USD rate on or a few days before Nov 30
    # WHEN every entity is revalued
    code, result, err = revalue(capsys)

    # THEN US01 failed naming the pair and day, the other entities had nothing to revalue, nothing posted
    assert code == 1 and result["failed"] == 1
    by_entity = {entry["legal_entity"]: entry for entry in result["entities"]}
    assert by_entity["US01"]["status"] == "failed"
    assert "no EUR/USD rate on or before 2026-11-30" in by_entity["US01"]["error"]
    assert {by_entity[code]["status"] for code in by_entity if code != "US01"} == {"nothing_to_revalue"}
    assert "nothing was posted" in err
    assert [d.external_id for d in deployed.ledger.posted_documents()] == [INVOICE]


def test_a_closed_november_moves_the_revaluation_into_december(deployed: Stack, capsys) -> None:
    # GIVEN November closed for US01 and the Nov 30 rate loaded
    deployed.rates.put_rates([ecb("1.1000", NOV_30)])
    deployed.periods.set_closed("US01", "2026-11", closed=True, at=datetime(2026, 12, 2, tzinfo=UTC), by="controller")

    # WHEN November is revalued
    code, result, _ = revalue(capsys, "--entity", "US01")

    # THEN it posted on Dec 1, never into the closed month, keeping its Nov 30 document date
    assert code == 0
    posted = deployed.ledger.get_document("fx-revaluation-US01-2026-11")
    assert posted is not None and (posted.posting_date, posted.document_date) == (date(2026, 12, 1), NOV_30)
    assert result["entities"][0]["posting_date"] == "2026-12-01"


def test_the_human_output_names_the_documents_and_the_gain(deployed: Stack, capsys) -> None:
    # GIVEN the Nov 30 rate loaded
    deployed.rates.put_rates([ecb("1.1000", NOV_30)])

    # WHEN November is revalued without --json
    code = main(["fx", "revalue", "--period", "2026-11", "--stack-name", "BillingSync", "--entity", "US01"])

    # THEN the operator reads what posted, when, and the move in major units
    text = capsys.readouterr().out
    assert code == 0
    assert "fx-revaluation-US01-2026-11 on 2026-11-30" in text
    assert "fx-revaluation-US01-2026-11-reversal on 2026-12-01" in text
    assert "1,085.00 -> 1,100.00 (15.00 USD)" in text
