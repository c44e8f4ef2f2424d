"""`billing-sync local demo`: the main job end to end on the embedded local default."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.request
from datetime import date
from pathlib import Path
from typing import Any

from billing_sync.composition.balances import balances_store_for
from billing_sync.erp.ledger import DynamoLedgerErpClient
from billing_sync.state.dynamo import DynamoLineageStore
from billing_sync_ops.ops.reconcile import DEFAULT_OUT as RECONCILIATION_OUT
from billing_sync_ops.ops.reconcile import PeriodOutcome, reconcile_runtime, render_periods
from billing_sync_ops.ops.revenue import load_mapping, recognise
from billing_sync_ops.report import build_report, dead_lettered_event_ids, render_summary, saga_executions
from billing_sync_ops.runtime import REPO_ROOT, LocalRuntime
from billing_sync_ops.signing import sign_stripe_payload

EVENTS_DIR = REPO_ROOT / "events"
STRIPE_API_FIXTURES = EVENTS_DIR / "stripe_api"  # what the local Stripe API double serves (payouts, list API)
# The samples' invoices run April to November 2026: the demo recognises every month through November.
RECOGNITION_THROUGH = date(2026, 11, 30)

# Sent out of dependency order, as Stripe may deliver them: payments before their invoices, invoices
# before their customers, products and prices, a credit note before the invoice it credits. Every one
# waits by name for what it needs and posts after it; none is parked. Also: a redelivery, a JPY invoice
# on the US entity, inclusive EUR VAT with an overpayment, a void, a write-off, and a few events that
# are unsupported or cannot be booked (they end IGNORED, MALFORMED or VALIDATION). Refunds go through
# the refund saga (a Step Functions execution each): the full refund of the upgrade's payment (also
# reported by charge.refunded: one refund, two events, booked once) and a partial refund of the Acme
# payment are sent before the payments they refund and wait for them; the refund the post-payment
# credit note carries comes last and gets no credit memo of its own.
DEMO_SEQUENCE = (
    # a subscription's life: create, upgrade with proration, downgrade to a credit, renew with the
    # credit applied and two partial payments, credit note after payment, failed payment, cancel
    "stripe_refund_created_full",
    "stripe_invoice_payment_paid_partial_2",
    "stripe_invoice_finalized_lifecycle_first",
    "stripe_credit_note_created_post_payment",
    "stripe_customer_subscription_updated_upgrade",
    "stripe_invoice_finalized_proration_upgrade",
    "stripe_invoice_payment_paid_out_of_band",
    "stripe_price_created",
    "stripe_customer_created_lifecycle",
    "stripe_invoice_paid_lifecycle_renewal",
    "stripe_invoice_finalized_renewal_credit_balance",
    "stripe_product_created",
    "stripe_invoice_payment_paid_partial_1",
    "stripe_price_created_setup_fee",
    "stripe_customer_subscription_created_lifecycle",
    "stripe_invoice_finalized_proration_downgrade",
    "stripe_product_created_services",
    "stripe_charge_refunded",
    "stripe_invoice_payment_paid_first",
    "stripe_credit_note_created_pre_payment",
    "stripe_invoice_payment_failed",
    "stripe_invoice_finalized_june",
    "stripe_customer_subscription_deleted",
    # one-off work: voided, and written off after a partial payment
    "stripe_invoice_voided",
    "stripe_invoice_finalized_one_off_voided",
    "stripe_price_created_custom_dashboard",
    "stripe_invoice_payment_paid_uncollectible_partial",
    "stripe_invoice_marked_uncollectible",
    "stripe_invoice_finalized_one_off_uncollectible",
    "stripe_price_created_data_migration",
    # other customers, currencies and entities
    "stripe_refund_created_partial_1",
    "stripe_invoice_payment_paid",
    "stripe_invoice_paid",
    "stripe_invoice_finalized",
    "stripe_customer_created",
    "stripe_product_created_growth_plan",
    "stripe_price_created_growth_plan",
    "stripe_product_created_onboarding",
    "stripe_price_created_onboarding",
    "stripe_invoice_payment_paid_jpy",
    "stripe_invoice_finalized_jpy",
    "stripe_customer_created_jp",
    "stripe_product_created_standard_plan_jp",
    "stripe_price_created_standard_plan_jpy",
    "stripe_invoice_paid_jpy",
    "stripe_invoice_finalized_kwd",
    "stripe_invoice_payment_paid_kwd",
    "stripe_customer_created_kw",
    "stripe_product_created_commissioning",
    "stripe_price_created_commissioning_kwd",
    "stripe_invoice_finalized_jpy_us",
    "stripe_invoice_payment_paid_jpy_us",
    "stripe_customer_created_jpy_us",
    "stripe_product_created_analytics_pro_jp",
    "stripe_price_created_analytics_pro_jp_workspace",
    "stripe_price_created_localization_review_jpy",
    "stripe_invoice_payment_paid_overpaid",
    "stripe_invoice_finalized_inclusive_tax",
    "stripe_customer_created_eu",
    "stripe_product_created_eu_data_residency",
    "stripe_price_created_eu_data_residency",
    "stripe_price_created_onboarding_workshop_eur",
    "stripe_customer_updated",
    "stripe_invoice_finalized",
    "stripe_invoice_finalized_bad_totals",
    "stripe_invoice_finalized_unknown_currency",
    "stripe_payment_intent_created",
    "stripe_payment_method_attached",
    # the refund the post-payment credit note carries
    "stripe_refund_created_credit_note",
    # Stripe pays out: fees per balance transaction and the bank deposit clear USD Stripe clearing to zero
    "stripe_payout_paid",
)


def post_webhook(url: str, body: bytes, signature: str | None) -> tuple[int, dict[str, Any]]:
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    }
    if signature is not None:
        headers["Stripe-Signature"] = signature
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def send_samples(runtime: LocalRuntime, names: tuple[str, ...] = DEMO_SEQUENCE) -> list[tuple[str, int, dict]]:
    results = []
    for index, name in enumerate(names, start=1):
        body = (EVENTS_DIR / f"{name}.json").read_bytes()
        signature = sign_stripe_payload(body, runtime.webhook_secret, int(time.time()))
        status, answer = post_webhook(runtime.webhook_url, body, signature)
        print(
            f"[{index:>2}/{len(names)}] {name:<44} -> {status} {answer.get('outcome') or answer.get('error')}",
            file=sys.stderr,
        )
        results.append((name, status, answer))
    tampered = (EVENTS_DIR / "stripe_invoice_finalized.json").read_bytes().replace(b"41623", b"1623")
    stale_signature = sign_stripe_payload(tampered, "whsec_not_the_configured_secret", int(time.time()))
    status, answer = post_webhook(runtime.webhook_url, tampered, stale_signature)
    print(
        f"[--] forged signature on a tampered invoice                -> {status} {answer.get('error')}", file=sys.stderr
    )
    results.append(("forged", status, answer))
    return results


def run_sequence(runtime: LocalRuntime, *, drain_timeout: float = 90) -> tuple[list[tuple[str, int, dict]], bool]:
    """Sends the demo sequence and drains; then sweeps the waiting room once, as the 15-minute schedule does
    in AWS (anything whose release was missed posts), and drains again."""
    responses = send_samples(runtime)
    print("draining the posting queue ...", file=sys.stderr)
    drained = runtime.drain(timeout_seconds=drain_timeout)
    runtime.sweep()
    drained = runtime.drain(timeout_seconds=drain_timeout) and drained
    if not drained:
        print(f"queues still busy after {drain_timeout} s; unfinished events are reported PENDING", file=sys.stderr)
    return responses, drained


def _ledger(runtime: LocalRuntime) -> DynamoLedgerErpClient:
    return DynamoLedgerErpClient(runtime._session.client("dynamodb"), runtime.stack.outputs["LedgerTableName"])


def recognise_local(runtime: LocalRuntime, through: date = RECOGNITION_THROUGH) -> dict[str, Any]:
    """Runs the revenue recognition job on the local ledger, in-process (the code `billing-sync recognize`
    runs), under the mapping the local functions use; returns its summary."""
    mapping_file = os.environ.get("MAPPING_FILE")
    return recognise(_ledger(runtime), load_mapping(Path(mapping_file) if mapping_file else None), through)


def collect_report(runtime: LocalRuntime, recognition: dict[str, Any] | None = None) -> dict[str, Any]:
    """`recognition` is `recognise_local(...)`'s summary when the recognition job ran (else None)."""
    outputs = runtime.stack.outputs
    dynamodb = runtime._session.client("dynamodb")
    mapping_file = os.environ.get("MAPPING_FILE")
    mapping = load_mapping(Path(mapping_file) if mapping_file else None)
    runtime.catch_up_streams()  # the running balances include whatever posted after the workers stopped
    balances_table = outputs.get("BalancesTableName")
    return build_report(
        balances=balances_store_for(dynamodb, balances_table, mapping) if balances_table else None,
        lineage=DynamoLineageStore(dynamodb, outputs["LineageTableName"]),
        ledger=DynamoLedgerErpClient(dynamodb, outputs["LedgerTableName"]),
        accepted=runtime.accepted,
        dead_lettered=dead_lettered_event_ids(runtime.sqs, str(outputs["ExceptionQueueUrl"])),
        refused=runtime.refused,
        refunds=saga_executions(runtime.stepfunctions, runtime.stack.state_machines.values()),
        recognition=recognition,
        mapping=mapping,
    )


def write_report(report: dict[str, Any], path: Path | None) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report written to {path}", file=sys.stderr)


def reconcile_local(runtime: LocalRuntime, out: Path = RECONCILIATION_OUT) -> list[PeriodOutcome]:
    """Reconciles every period the demo's documents fall in (April to November 2026) against the Stripe API
    double's list API, writing extracts and reports under `out`."""
    mapping_file = os.environ.get("MAPPING_FILE")
    return reconcile_runtime(runtime, out=out, mapping=load_mapping(Path(mapping_file) if mapping_file else None))


def run_demo(
    report_path: Path | None, *, drain_timeout: float = 90, reconciliation_out: Path = RECONCILIATION_OUT
) -> dict[str, Any]:
    with LocalRuntime(log_level="ERROR", stripe_fixtures=STRIPE_API_FIXTURES) as runtime:
        print(f"webhook endpoint: {runtime.webhook_url}", file=sys.stderr)
        run_sequence(runtime, drain_timeout=drain_timeout)
        runtime.stop_workers()  # nothing changes while the report is read
        print(f"recognising revenue through {RECOGNITION_THROUGH.isoformat()} ...", file=sys.stderr)
        recognition = recognise_local(runtime)
        report = collect_report(runtime, recognition)
        print("reconciling every period with documents ...", file=sys.stderr)
        reconciliations = reconcile_local(runtime, reconciliation_out)
    print(render_summary(report))
    write_report(report, report_path)
    print(render_periods(reconciliations))
    return report
