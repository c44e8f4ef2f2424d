"""`billing-sync ledger trial-balance --stack-name`: the trial balance of a deployed stack's ledger (moto)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

import boto3
import pytest
from moto import mock_aws

from billing_sync.composition.balances import balances_store_for
from billing_sync.domain.journal import DocumentKind, ErpDocument, JournalLine, entity_trial_balance
from billing_sync.domain.mapping import AccountMapping
from billing_sync.erp.ledger import DynamoLedgerErpClient
from billing_sync_ops.cli import main
from tests.fakes.erp import InMemoryErpClient
from tests.functional.aws_fixtures import create_ledger, create_table
from tests.functional.test_balances_stream import create_balances_table
from tests.unit.test_mapping import SHIPPED_MAPPING

AR = "1200 Accounts Receivable"
REVENUE = "4000 Subscription Revenue"
UNREALISED = "7110 Unrealised FX Gain/Loss"
NOV_10, NOV_30, DEC_3 = date(2026, 11, 10), date(2026, 11, 30), date(2026, 12, 3)


def _translated(account: str, *, eur: int, usd: int, rate: str, on: date) -> JournalLine:
    """A EUR line (debit-positive `eur`) with its USD functional amount (debit-positive `usd`)."""
    return JournalLine(
        account=account,
        currency="EUR",
        debit=max(eur, 0),
        credit=max(-eur, 0),
        functional_currency="USD",
        functional_debit=max(usd, 0),
        functional_credit=max(-usd, 0),
        rate=Decimal(rate),
        rate_source="ecb",
        rate_date=on,
    )


def _document(
    external_id: str, kind: DocumentKind, entity: str, currency: str, on: date, *lines: JournalLine
) -> ErpDocument:
    return ErpDocument(
        external_id=external_id,
        kind=kind,
        legal_entity=entity,
        subsidiary={"US01": "1", "JP01": "2"}[entity],
        customer_external_id="stripe-customer-cus_TZ3pBYNx4RkL2mQe",
        currency=currency,
        posting_date=on,
        total=sum(line.debit for line in lines if line.account == AR),
        journal=lines,
        source_event_id=f"evt_{external_id}",
    )


EUR_INVOICE = _document(
    "stripe-invoice-in_1QEurLedger0001",
    DocumentKind.INVOICE,
    "US01",
    "EUR",
    NOV_10,
    _translated(AR, eur=1_000_00, usd=1_085_00, rate="1.0850", on=NOV_10),
    _translated(REVENUE, eur=-1_000_00, usd=-1_085_00, rate="1.0850", on=NOV_10),
)
REVALUATION = _document(
    "fx-revaluation-US01-2026-11",
    DocumentKind.FX_REVALUATION,
    "US01",
    "USD",
    NOV_30,
    _translated(AR, eur=0, usd=15_00, rate="1.1000", on=NOV_30),
    _translated(UNREALISED, eur=0, usd=-15_00, rate="1.1000", on=NOV_30),
)
JPY_INVOICE = _document(
    "stripe-invoice-in_1QJpyLedger0001",
    DocumentKind.INVOICE,
    "JP01",
    "JPY",
    DEC_3,
    JournalLine(account=AR, currency="JPY", debit=12_000, functional_currency="JPY", functional_debit=12_000),
    JournalLine(account=REVENUE, currency="JPY", credit=12_000, functional_currency="JPY", functional_credit=12_000),
)


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch) -> Iterator[DynamoLedgerErpClient]:
    """A stack whose ledger holds a EUR invoice and its November revaluation (US01) and a December JPY
    invoice (JP01), as posting and `fx revalue` leave them."""
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
        ledger = DynamoLedgerErpClient(dynamodb, outputs["LedgerTableName"])
        for document in (EUR_INVOICE, REVALUATION, JPY_INVOICE):
            ledger.create_document(document)
        yield ledger


def trial_balance(capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, dict[str, Any]]:
    code = main(["ledger", "trial-balance", "--stack-name", "BillingSync", "--json", *options])
    return code, json.loads(capsys.readouterr().out)


def test_the_trial_balance_gives_rows_per_entity_in_transaction_currency(deployed, capsys) -> None:
    # WHEN the operator asks for the stack's trial balance
    code, balance = trial_balance(capsys)

    # THEN every entity's rows are there in minor units, the revaluation's functional-only lines are not
    assert code == 0
    assert balance["currency_basis"] == "transaction" and balance["as_of"] is None
    assert [(r["legal_entity"], r["account"], r["currency"], r["debit"], r["credit"]) for r in balance["rows"]] == [
        ("JP01", AR, "JPY", 12_000, 0),
        ("JP01", REVENUE, "JPY", 0, 12_000),
        ("US01", AR, "EUR", 1_000_00, 0),
        ("US01", REVENUE, "EUR", 0, 1_000_00),
    ]
    assert balance["balanced"] is True and balance["documents"] == 3
    assert {(c["legal_entity"], c["currency"], c["balanced"]) for c in balance["checks"]} == {
        ("JP01", "JPY", True),
        ("US01", "EUR", True),
    }


def test_the_functional_trial_balance_as_of_a_day_for_one_entity(deployed, capsys) -> None:
    # WHEN the operator asks for US01 in functional currency as of Nov 30
    code, balance = trial_balance(capsys, "--entity", "US01", "--as-of", "2026-11-30", "--currency", "functional")

    # THEN the receivable stands revalued in USD and the unrealised gain shows
    assert code == 0
    assert balance["as_of"] == "2026-11-30" and balance["currency_basis"] == "functional"
    assert [(r["account"], r["currency"], r["debit"], r["credit"]) for r in balance["rows"]] == [
        (AR, "USD", 1_100_00, 0),
        (REVENUE, "USD", 0, 1_085_00),
        (UNREALISED, "USD", 0, 15_00),
    ]
    assert balance["documents"] == 2 and balance["balanced"] is True


def test_as_of_leaves_out_what_posted_later(deployed, capsys) -> None:
    # WHEN the trial balance is taken as of Nov 10
    code, balance = trial_balance(capsys, "--as-of", "2026-11-10")

    # THEN neither the revaluation nor December's JPY invoice counts
    assert code == 0 and balance["documents"] == 1
    assert {r["legal_entity"] for r in balance["rows"]} == {"US01"}


def test_the_human_trial_balance_is_a_table_with_major_units(deployed, capsys) -> None:
    code = main(["ledger", "trial-balance", "--stack-name", "BillingSync", "--currency", "functional"])

    text = capsys.readouterr().out
    assert code == 0
    assert "1200 Accounts Receivable" in text and "1,100.00" in text and "12,000" in text
    assert "UNBALANCED" not in text


def test_an_unknown_entity_is_bad_usage(deployed, capsys) -> None:
    code = main(["ledger", "trial-balance", "--stack-name", "BillingSync", "--entity", "XX99", "--json"])

    assert code == 2
    assert "unknown legal entity 'XX99'" in capsys.readouterr().err


@pytest.mark.parametrize("adapter", ["in-memory", "dynamodb"])
def test_posted_documents_reads_every_document_of_an_entity_whole(
    adapter: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fake and the ledger adapter answer `posted_documents` alike (so the fake cannot rot)."""
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    with mock_aws():
        if adapter == "dynamodb":
            dynamodb = boto3.client("dynamodb", aws_access_key_id="t", aws_secret_access_key="t")
            erp: Any = DynamoLedgerErpClient(dynamodb, create_ledger(dynamodb))
        else:
            erp = InMemoryErpClient()
        # GIVEN documents of two entities posted
        for document in (EUR_INVOICE, REVALUATION, JPY_INVOICE):
            erp.create_document(document)

        # WHEN every document, then US01's, are read
        everything = {d.external_id: d for d in erp.posted_documents()}
        us01 = {d.external_id: d for d in erp.posted_documents("US01")}

    # THEN each comes back whole, and the entity filter keeps only its own
    assert everything == {d.external_id: d for d in (EUR_INVOICE, REVALUATION, JPY_INVOICE)}
    assert set(us01) == {EUR_INVOICE.external_id, REVALUATION.external_id}


@pytest.mark.parametrize("basis", ["transaction", "functional"])
def test_a_month_end_trial_balance_is_read_from_the_running_balances(deployed, capsys, monkeypatch, basis) -> None:
    # GIVEN the same stack with a Balances table the ledger's stream has fed every posted document into
    dynamodb = boto3.client("dynamodb")
    table = create_balances_table(dynamodb, "billing-sync-balances")
    mapping = AccountMapping.model_validate_json(SHIPPED_MAPPING.read_bytes())
    store = balances_store_for(dynamodb, table, mapping)
    for document in (EUR_INVOICE, REVALUATION, JPY_INVOICE):
        assert store.apply(document)
    cloudformation = boto3.client("cloudformation")
    outputs = {
        o["OutputKey"]: o["OutputValue"]
        for o in cloudformation.describe_stacks(StackName="BillingSync")["Stacks"][0]["Outputs"]
    }
    template = {
        "Resources": {"Marker": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {key: {"Value": value} for key, value in {**outputs, "BalancesTableName": table}.items()},
    }
    cloudformation.update_stack(StackName="BillingSync", TemplateBody=json.dumps(template))
    scans: list[str] = []
    original = DynamoLedgerErpClient.posted_documents
    monkeypatch.setattr(
        DynamoLedgerErpClient, "posted_documents", lambda self, *a: scans.append("scan") or original(self, *a)
    )
    # WHEN the operator asks for the trial balance at the end of November, and on a day within it
    code, at_month_end = trial_balance(capsys, "--as-of", "2026-11-30", "--currency", basis)
    assert scans == []
    _, within = trial_balance(capsys, "--as-of", "2026-11-29", "--currency", basis)
    # THEN the month end comes from the running balances without scanning the ledger, and it agrees with the
    # ledger's own figures (a day within a month is read off the ledger)
    assert code == 0 and at_month_end["source"] == "running balances" and within["source"] == "ledger"
    assert scans == ["scan"]
    monkeypatch.setattr(DynamoLedgerErpClient, "posted_documents", original)
    ledger_rows = entity_trial_balance(
        list(deployed.posted_documents()),
        basis=basis,
        as_of=date(2026, 11, 30),
        functional_currencies={code: e.functional_currency for code, e in mapping.legal_entities.items()},
    )
    assert at_month_end["rows"] == [row.model_dump(mode="json") for row in ledger_rows.rows]
    assert at_month_end["documents"] == ledger_rows.documents == 2
