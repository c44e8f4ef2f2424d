"""`billing-sync period close|reopen|list` and a closed period under `recognize`, against one local runtime."""

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

RENEWAL = "stripe-invoice-in_195RYKNx4RkL2mQeXZrXWZ9C"
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
    code, out, _ = cli(*argv, "--local", "--json")
    return code, json.loads(out)


class Stack:
    def __init__(self, runtime: LocalRuntime) -> None:
        self.dynamodb = runtime._session.client("dynamodb")
        self.master_data = runtime.stack.outputs["MasterDataTableName"]
        self.ledger = DynamoLedgerErpClient(self.dynamodb, runtime.stack.outputs["LedgerTableName"])

    def calendar_keys(self) -> list[str]:
        items = self.dynamodb.scan(TableName=self.master_data)["Items"]
        return sorted(item["pk"]["S"] for item in items if item["pk"]["S"].startswith("PERIODS"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    saved = os.environ.get(DISCOVERY_ENV)
    os.environ[DISCOVERY_ENV] = str(tmp_path_factory.mktemp("local") / "runtime.json")
    try:
        with LocalRuntime(work_dir=Path("build/local"), sweep_interval_seconds=3600) as runtime:
            write_discovery(runtime)
            # GIVEN the May renewal posted: its seat line 29700 over May, 958 earned at posting
            send_samples(runtime, RENEWAL_SAMPLES)
            assert runtime.drain(timeout_seconds=60)
            yield Stack(runtime)
            remove_discovery()
    finally:
        if saved is None:
            os.environ.pop(DISCOVERY_ENV, None)
        else:
            os.environ[DISCOVERY_ENV] = saved


def test_close_list_and_reopen_keep_a_trail(stack: Stack) -> None:
    # WHEN the controller closes JP01's October, closes it again, lists JP01, then reopens it
    closed = cli_json("period", "close", "JP01", "2026-10")
    again = cli_json("period", "close", "JP01", "2026-10")
    listed = cli_json("period", "list", "--entity", "JP01")
    reopened = cli_json("period", "reopen", "JP01", "2026-10")

    # THEN the first close changed the calendar, the second found it closed already
    code, first = closed
    assert code == 0
    assert (first["legal_entity"], first["period"], first["closed"], first["changed"]) == (
        "JP01",
        "2026-10",
        True,
        True,
    )
    assert again[0] == 0 and again[1]["changed"] is False and len(again[1]["trail"]) == 1
    # AND the listing shows October closed, by whom and when
    code, listing = listed
    [row] = listing["periods"]
    assert code == 0 and (row["legal_entity"], row["period"], row["closed"]) == ("JP01", "2026-10", True)
    assert row["changed_by"] and row["changed_at"]
    # AND the reopen is open again, with both changes on the trail
    code, reopen = reopened
    assert code == 0 and reopen["closed"] is False and reopen["changed"] is True
    assert [change["closed"] for change in reopen["trail"]] == [True, False]


def test_an_unknown_entity_is_bad_usage_and_writes_nothing(stack: Stack) -> None:
    before = stack.calendar_keys()

    code, out, err = cli("period", "close", "XX99", "2026-10", "--local", "--json")

    assert (code, out) == (2, "")
    assert "unknown legal entity 'XX99'" in err and "US01" in err
    assert stack.calendar_keys() == before


@pytest.mark.parametrize("period", ["2026-13", "2026-1", "10/2026", "2026-10-01"])
def test_a_malformed_period_is_bad_usage_and_writes_nothing(stack: Stack, period: str) -> None:
    before = stack.calendar_keys()

    code, out, err = cli("period", "close", "US01", period, "--local", "--json")

    assert (code, out) == (2, "")
    assert "is not a period: use YYYY-MM" in err
    assert stack.calendar_keys() == before


def test_recognition_into_a_closed_month_posts_in_the_first_open_one(stack: Stack) -> None:
    # GIVEN US01's May closed after the renewal posted
    assert cli_json("period", "close", "US01", "2026-05")[0] == 0

    # WHEN May is recognised
    code, summary = cli_json("recognize", "--through", "2026-05-31")

    # THEN May's release is created under May's external id but posts on Jun 1, the first open day
    assert code == 0
    assert [(r["month"], r["amount"]) for r in summary["created"]] == [("2026-05", 29700 - 958)]
    release = stack.ledger.get_document(f"{RENEWAL}-recognition-2026-05")
    assert release is not None
    assert (release.posting_date.isoformat(), str(release.document_date)) == ("2026-06-01", "2026-05-31")


def test_the_human_listing_names_each_period(stack: Stack) -> None:
    cli_json("period", "close", "US01", "2026-04")

    code, text, _ = cli("period", "list", "--local")

    assert code == 0
    assert "US01     2026-04  closed" in text
