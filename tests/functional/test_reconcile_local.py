"""`billing-sync reconcile --local` against one local runtime: Acme's November invoice and its payment
delivered and posted, and an invoice Stripe's list API holds that was never delivered as an event."""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from billing_sync_ops.cli import main
from billing_sync_ops.demo import send_samples
from billing_sync_ops.ops.discovery import DISCOVERY_ENV, remove_discovery, write_discovery
from billing_sync_ops.runtime import LocalRuntime

pytestmark = pytest.mark.infra

FIXTURES = Path(__file__).resolve().parents[2] / "events" / "stripe_api"
INVOICE = "in_1QvDDlNx4RkL2mQejBTD4pmw"
PAYMENT = "inpay_1Z9ZRgNx4RkL2mQexR4OYiGf"
UNDELIVERED = "in_1QzUndNx4RkL2mQeNvrD3lvR"
SAMPLES = (
    "stripe_customer_created",
    "stripe_product_created_growth_plan",
    "stripe_price_created_growth_plan",
    "stripe_product_created_onboarding",
    "stripe_price_created_onboarding",
    "stripe_invoice_finalized",
    "stripe_invoice_payment_paid",
)


def stripe_fixtures(directory: Path) -> Path:
    """The demo's list fixtures narrowed to what these samples carry, plus the never-delivered invoice."""
    documents = json.loads((FIXTURES / "billing_documents.json").read_text(encoding="utf-8"))
    keep = [found for found in documents if found["id"] in (INVOICE, PAYMENT, UNDELIVERED)]
    (directory / "billing_documents.json").write_text(json.dumps(keep), encoding="utf-8")
    return directory


def cli(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*argv, "--local"])
    return code, out.getvalue()


@pytest.fixture(scope="module")
def runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRuntime]:
    saved = os.environ.get(DISCOVERY_ENV)
    os.environ[DISCOVERY_ENV] = str(tmp_path_factory.mktemp("local") / "runtime.json")
    fixtures = stripe_fixtures(tmp_path_factory.mktemp("stripe_api"))
    try:
        with LocalRuntime(work_dir=Path("build/local"), sweep_interval_seconds=3600, stripe_fixtures=fixtures) as rt:
            write_discovery(rt, extra_outputs={"StripeApiBase": rt._stripe_double.url})
            send_samples(rt, SAMPLES)
            assert rt.drain(timeout_seconds=60)
            yield rt
            remove_discovery()
    finally:
        if saved is None:
            os.environ.pop(DISCOVERY_ENV, None)
        else:
            os.environ[DISCOVERY_ENV] = saved


def test_reconcile_json_counts_the_undelivered_invoice_as_missing_in_erp(runtime: LocalRuntime, tmp_path: Path) -> None:
    # WHEN November is reconciled on the local runtime
    code, out = cli("reconcile", "--period", "2026-11", "--out", str(tmp_path), "--json")
    payload: dict[str, Any] = json.loads(out)

    # THEN the delivered invoice and payment match, the never-delivered invoice is missing in the ERP: exit 1
    assert code == 1
    assert payload["period"] == "2026-11" and payload["reconciled"] is False
    assert payload["documents"] == {
        "matched": 2,
        "missing_in_erp": 1,
        "missing_in_billing": 0,
        "amount_mismatch": 0,
        "status_mismatch": 0,
        "duplicate_in_erp": 0,
        "posted_not_in_lineage": 0,
    }
    (difference,) = payload["differences"]
    assert difference["external_id"] == f"stripe-invoice-{UNDELIVERED}"
    assert difference["detail"] == "no ERP document; never delivered as an event"
    # AND each control names both sides and the variance; the invoices control is off by that invoice
    controls = {(c["control"], c["legal_entity"], c["currency"], c["item"]): c for c in payload["controls"]}
    billed = controls[("billed_vs_erp_invoices", "US01", "USD", "")]
    assert (billed["left_amount"], billed["right_amount"], billed["variance"]) == (83246, 41623, 41623)
    cash = controls[("cash_settled_vs_erp_payments", "US01", "USD", "")]
    assert (cash["left_amount"], cash["right_amount"], cash["variance"]) == (41623, 41623, 0)
    # AND the three reports are written under --out, the extracts beside them
    assert set(payload["reports"]) == {"json", "csv", "html"}
    for path in payload["reports"].values():
        assert Path(path).is_file() and Path(path).is_relative_to(tmp_path)
    assert any((tmp_path / "extracts" / "billing_documents").rglob("*.parquet"))


def test_reconcile_of_one_entity_and_a_clean_period_is_exit_zero(runtime: LocalRuntime, tmp_path: Path) -> None:
    # WHEN JP01's November (nothing billed there) and US01's October (nothing either) are reconciled
    code, out = cli("reconcile", "--period", "2026-11", "--entity", "JP01", "--out", str(tmp_path), "--json")
    october_code, human = cli("reconcile", "--period", "2026-10", "--entity", "US01", "--out", str(tmp_path))

    # THEN both reconcile with nothing to report, and the human summary says so
    payload = json.loads(out)
    assert code == 0 and payload["entity"] == "JP01" and not any(payload["documents"].values())
    assert october_code == 0 and human.startswith("reconciliation 2026-10 (US01): reconciled")
    assert "report: " in human
