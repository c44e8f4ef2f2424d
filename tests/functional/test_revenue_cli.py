"""`billing-sync recognize` and `billing-sync revenue show` against one local runtime found by its discovery file."""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from billing_sync.erp.ledger import DynamoLedgerErpClient
from billing_sync_ops.cli import main
from billing_sync_ops.demo import send_samples
from billing_sync_ops.ops.discovery import DISCOVERY_ENV, remove_discovery, write_discovery
from billing_sync_ops.runtime import LocalRuntime

pytestmark = pytest.mark.infra

RENEWAL = "in_195RYKNx4RkL2mQeXZrXWZ9C"
DEFERRED = "2400 Deferred Revenue"
# the customer, the seat price and its product, and the renewal with its credit balance applied
RENEWAL_SAMPLES = (
    "stripe_customer_created_lifecycle",
    "stripe_product_created",
    "stripe_price_created",
    "stripe_invoice_finalized_renewal_credit_balance",
)


def cli(*argv: str) -> tuple[int, str, str]:
    """Runs `billing-sync ARGV` in-process; returns its exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exit_:  # argparse refuses bad usage with SystemExit(2)
            code = int(exit_.code or 0)
    return code, out.getvalue(), err.getvalue()


def cli_json(*argv: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = cli(*argv, "--json")
    return code, json.loads(out)


def deferred_balance(ledger: DynamoLedgerErpClient) -> int:
    return sum(
        line.debit - line.credit for _, journal in ledger.journals() for line in journal if line.account == DEFERRED
    )


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DynamoLedgerErpClient]:
    saved = os.environ.get(DISCOVERY_ENV)
    os.environ[DISCOVERY_ENV] = str(tmp_path_factory.mktemp("local") / "runtime.json")
    try:
        with LocalRuntime(work_dir=Path("build/local"), sweep_interval_seconds=3600) as runtime:
            write_discovery(runtime)
            # GIVEN the May renewal posted (with the catalogue it waits for): its seat line 29700 over
            # [May 1, Jun 1), 29700 // 31 = 958 earned at posting and the rest deferred
            send_samples(runtime, RENEWAL_SAMPLES)
            assert runtime.drain(timeout_seconds=60)
            yield DynamoLedgerErpClient(runtime._session.client("dynamodb"), runtime.stack.outputs["LedgerTableName"])
            remove_discovery()
    finally:
        if saved is None:
            os.environ.pop(DISCOVERY_ENV, None)
        else:
            os.environ[DISCOVERY_ENV] = saved


@pytest.fixture(scope="module")
def recognised(ledger: DynamoLedgerErpClient) -> dict[str, Any]:
    deferred_before = deferred_balance(ledger)
    # WHEN May is recognised, then recognised again
    first = cli_json("recognize", "--through", "2026-05-31", "--local")
    second = cli_json("recognize", "--through", "2026-05-31", "--local")
    return {"deferred_before": deferred_before, "first": first, "second": second}


def test_recognize_releases_the_rest_of_may_once(ledger: DynamoLedgerErpClient, recognised: dict[str, Any]) -> None:
    assert recognised["deferred_before"] == -(29700 - 958)
    # THEN the first run released May's remainder in one journal
    code, first = recognised["first"]
    assert code == 0
    assert first["through"] == "2026-05-31"
    assert [(r["month"], r["amount"], r["currency"]) for r in first["created"]] == [
        ("2026-05", 29700 - 29700 // 31, "USD")
    ]
    assert first["created"][0]["source"] == f"stripe-invoice-{RENEWAL}"
    assert first["already_posted"] == 0
    assert first["by_month"] == {"2026-05": {"USD": 28742}}
    # AND the second run posted nothing: the release was already there
    code, second = recognised["second"]
    assert code == 0
    assert (second["created"], second["already_posted"], second["by_month"]) == ([], 1, {})
    # AND nothing is left deferred
    assert deferred_balance(ledger) == 0


def test_revenue_show_gives_the_schedule_and_what_was_released(recognised: dict[str, Any]) -> None:
    # WHEN the renewal's schedule is shown by its Stripe id
    code, shown = cli_json("revenue", "show", RENEWAL, "--local")
    # THEN the seat line's obligation, its period, what posting recognised, by month, and May's release
    assert code == 0 and shown["found"] is True
    assert shown["invoice"] == f"stripe-invoice-{RENEWAL}"
    [seat] = [row for row in shown["obligations"] if row["amount"] == 29700]
    assert seat["period"] == ["2026-05-01", "2026-06-01"]
    assert seat["recognised_at_posting"] == 958
    assert seat["by_month"] == {"2026-05": 29700}
    assert shown["released"] == {"2026-05": 28742}
    # AND by its external id, the same
    code, again = cli_json("revenue", "show", f"stripe-invoice-{RENEWAL}", "--local")
    assert (code, again["obligations"], again["released"]) == (0, shown["obligations"], shown["released"])
    # AND the human text names the release
    code, text, _ = cli("revenue", "show", RENEWAL, "--local")
    assert code == 0 and "2026-05" in text and "297.00 USD" in text


def test_an_unknown_invoice_exits_1(ledger: DynamoLedgerErpClient) -> None:
    code, shown = cli_json("revenue", "show", "in_doesnotexist", "--local")
    assert code == 1 and shown["found"] is False and "in_doesnotexist" in shown["error"]


def test_recognize_prints_a_human_summary(recognised: dict[str, Any]) -> None:
    code, text, _ = cli("recognize", "--through", "2026-05-31", "--local")
    assert code == 0
    assert "releases created: 0  already posted: 1" in text


@pytest.mark.parametrize("through", ["2026-05-32", "31/05/2026", "may"])
def test_a_bad_through_date_is_bad_usage(through: str) -> None:
    code, out, err = cli("recognize", "--through", through, "--local", "--json")
    assert code == 2 and out == ""
    assert "is not a date: use YYYY-MM-DD" in err
