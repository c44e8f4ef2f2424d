"""`billing-sync fx revalue --local` and `ledger trial-balance --local` against one local runtime: a EUR
invoice posted by the pipeline, revalued at the end of November with the runtime's sample ECB rates."""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from billing_sync.domain.fx import Rate
from billing_sync.erp.ledger import DynamoLedgerErpClient
from billing_sync.state.rates import DynamoRateTable
from billing_sync_ops.cli import main
from billing_sync_ops.demo import send_samples
from billing_sync_ops.ops.discovery import DISCOVERY_ENV, remove_discovery, write_discovery
from billing_sync_ops.runtime import LocalRuntime

pytestmark = pytest.mark.infra

AR = "1200 Accounts Receivable"
UNREALISED = "7110 Unrealised FX Gain/Loss"
INVOICE = "stripe-invoice-in_1i38poNx4RkL2mQe5gvnMH7Q"
# the EU customer, the two prices her invoice waits for (and their products), and her 724.00 EUR invoice
# of Aug 3 (US01, functional USD), left unpaid
SAMPLES = (
    "stripe_customer_created_eu",
    "stripe_product_created_eu_data_residency",
    "stripe_price_created_eu_data_residency",
    "stripe_product_created_services",
    "stripe_price_created_onboarding_workshop_eur",
    "stripe_invoice_finalized_inclusive_tax",
)


def cli_json(*argv: str) -> tuple[int, dict[str, Any]]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*argv, "--local", "--json"])
    return code, json.loads(out.getvalue())


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    saved = os.environ.get(DISCOVERY_ENV)
    os.environ[DISCOVERY_ENV] = str(tmp_path_factory.mktemp("local") / "runtime.json")
    try:
        with LocalRuntime(work_dir=Path("build/local"), sweep_interval_seconds=3600) as runtime:
            write_discovery(runtime)
            dynamodb = runtime._session.client("dynamodb")
            # GIVEN the ECB's EUR/USD of Aug 3 (1.0850) next to the runtime's November sample rates
            DynamoRateTable(dynamodb, runtime.stack.outputs["MasterDataTableName"]).put_rates(
                [Rate(base="EUR", quote="USD", value=Decimal("1.0850"), source="ecb", as_of=date(2026, 8, 3))]
            )
            send_samples(runtime, SAMPLES)
            assert runtime.drain(timeout_seconds=60)
            yield runtime
            remove_discovery()
    finally:
        if saved is None:
            os.environ.pop(DISCOVERY_ENV, None)
        else:
            os.environ[DISCOVERY_ENV] = saved


@pytest.fixture(scope="module")
def ledger(runtime: LocalRuntime) -> DynamoLedgerErpClient:
    return DynamoLedgerErpClient(runtime._session.client("dynamodb"), runtime.stack.outputs["LedgerTableName"])


def test_fx_revalue_local_revalues_the_open_eur_invoice_at_the_november_rate(
    runtime: LocalRuntime, ledger: DynamoLedgerErpClient
) -> None:
    assert ledger.get_document(INVOICE) is not None
    # WHEN November is revalued for US01 on the local runtime, twice
    code, first = cli_json("fx", "revalue", "--period", "2026-11", "--entity", "US01")
    again_code, again = cli_json("fx", "revalue", "--period", "2026-11", "--entity", "US01")

    # THEN 724.00 EUR carried at 785.54 USD (1.0850) is 797.12 at Nov 30's 1.1010: an 11.58 USD gain
    assert code == 0
    [us01] = first["entities"]
    assert us01["status"] == "posted"
    [balance] = us01["balances"]
    assert (balance["account"], balance["currency"], balance["balance"]) == (AR, "EUR", 724_00)
    assert (balance["carried"], balance["revalued"], balance["adjustment"]) == (785_54, 797_12, 11_58)
    assert (balance["rate"], balance["rate_date"]) == ("1.1010", "2026-11-30")
    # AND the second run posted nothing new
    assert again_code == 0 and again["entities"][0]["status"] == "already_posted"

    # WHEN the running balances have applied the revaluation and its reversal (they follow the ledger's
    # stream, as in AWS), and the functional trial balance of US01 is taken at Nov 30 and at Dec 1
    assert runtime.catch_up_streams()
    code, november = cli_json(
        "ledger", "trial-balance", "--entity", "US01", "--as-of", "2026-11-30", "--currency", "functional"
    )
    _, december = cli_json(
        "ledger", "trial-balance", "--entity", "US01", "--as-of", "2026-12-01", "--currency", "functional"
    )

    # THEN at Nov 30 the receivable stands revalued with the gain beside it; from Dec 1 the reversal undoes it
    def net(balance: dict[str, Any], account: str) -> int:
        return sum(r["debit"] - r["credit"] for r in balance["rows"] if r["account"] == account)

    assert code == 0 and november["balanced"] and december["balanced"]
    assert (net(november, AR), net(november, UNREALISED)) == (797_12, -11_58)
    assert (net(december, AR), net(december, UNREALISED)) == (785_54, 0)
