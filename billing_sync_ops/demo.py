"""`billing-sync local demo`: the main job end to end on the embedded local default."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from billing_sync.erp.ledger import DynamoLedgerErpClient
from billing_sync.state.dynamo import DynamoLineageStore
from billing_sync_ops.report import build_report, dead_lettered_event_ids, render_summary
from billing_sync_ops.runtime import REPO_ROOT, LocalRuntime
from billing_sync_ops.signing import sign_stripe_payload

EVENTS_DIR = REPO_ROOT / "events"

# Order matters: a payment arrives before its invoice, Stripe retries a delivery, both payment
# events of one invoice arrive, and a few events are unsupported or cannot be booked.
DEMO_SEQUENCE = (
    "stripe_customer_created",
    "stripe_customer_created_jp",
    "stripe_customer_created_kw",
    "stripe_invoice_paid_jpy",
    "stripe_invoice_finalized",
    "stripe_invoice_finalized_jpy",
    "stripe_invoice_finalized_kwd",
    "stripe_invoice_paid",
    "stripe_charge_succeeded",
    "stripe_customer_updated",
    "stripe_invoice_finalized",
    "stripe_invoice_finalized_bad_totals",
    "stripe_invoice_finalized_unknown_currency",
    "stripe_payment_intent_created",
    "stripe_customer_subscription_created",
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


def collect_report(runtime: LocalRuntime) -> dict[str, Any]:
    outputs = runtime.stack.outputs
    dynamodb = runtime._session.client("dynamodb")
    return build_report(
        lineage=DynamoLineageStore(dynamodb, outputs["LineageTableName"]),
        ledger=DynamoLedgerErpClient(dynamodb, outputs["LedgerTableName"]),
        accepted=runtime.accepted,
        dead_lettered=dead_lettered_event_ids(runtime.sqs, outputs["ExceptionQueueUrl"]),
        refused=runtime.refused,
    )


def write_report(report: dict[str, Any], path: Path | None) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"report written to {path}", file=sys.stderr)


def run_demo(report_path: Path | None, *, drain_timeout: float = 90) -> dict[str, Any]:
    with LocalRuntime(log_level="ERROR") as runtime:
        print(f"webhook endpoint: {runtime.webhook_url}", file=sys.stderr)
        send_samples(runtime)
        print("draining the posting queue ...", file=sys.stderr)
        if not runtime.drain(timeout_seconds=drain_timeout):
            print(f"queues still busy after {drain_timeout} s; unfinished events are reported PENDING", file=sys.stderr)
        report = collect_report(runtime)
    print(render_summary(report))
    write_report(report, report_path)
    return report
