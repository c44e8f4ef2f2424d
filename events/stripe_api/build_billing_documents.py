"""Writes `billing_documents.json`: what Stripe's list API holds for the demo, for reconciliation.

Every invoice, invoice payment, credit note and refund the demo's events carry (`DEMO_SEQUENCE`), each in
the state of its newest event, plus ONE invoice Stripe holds that was never delivered as an event (so the
demo's reconciliation shows one `missing_in_erp`, explained). An invoice's status and amounts are brought to
what Stripe holds once the listed payments and pre-payment credit notes applied (an invoice paid out of band
has no `invoice.paid` sample, but Stripe marks it paid). Two samples are left out as objects Stripe could
never return: the unknown-currency invoice (Stripe has no `zzz`) and the bad-totals one (Stripe's own
totals always add up; the sample is there for the VALIDATION path).

Run from the repository root: `.venv/bin/python events/stripe_api/build_billing_documents.py`.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from billing_sync_ops.demo import DEMO_SEQUENCE

EVENTS = Path(__file__).resolve().parents[1]
OUT = Path(__file__).with_name("billing_documents.json")
LISTED = ("invoice", "invoice_payment", "credit_note", "refund")
NOT_IN_STRIPE = {"zzz"}  # currencies Stripe does not have
NOT_STRIPE_OBJECTS = {"in_1Qj0a3Nx4RkL2mQeiyS3CSGS"}  # the bad-totals sample

# The never-delivered invoice: Acme's November invoice again, a week later, under its own ids.
UNDELIVERED_FROM = "in_1QvDDlNx4RkL2mQejBTD4pmw"
UNDELIVERED_ID = "in_1QzUndNx4RkL2mQeNvrD3lvR"
UNDELIVERED_SHIFT = 7 * 86400


def _objects() -> dict[str, tuple[int, dict[str, Any]]]:
    newest: dict[str, tuple[int, dict[str, Any]]] = {}
    for name in dict.fromkeys(DEMO_SEQUENCE):
        event = json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))
        found = event["data"]["object"]
        if found.get("object") not in LISTED or found.get("currency") in NOT_IN_STRIPE:
            continue
        if found["id"] in NOT_STRIPE_OBJECTS:
            continue
        if found["id"] not in newest or event["created"] >= newest[found["id"]][0]:
            newest[found["id"]] = (event["created"], found)
    return newest


def _settle(documents: list[dict[str, Any]]) -> None:
    """Applies the listed payments and pre-payment credit notes to the open invoices they name."""
    invoices = {found["id"]: found for found in documents if found["object"] == "invoice"}
    for found in documents:
        invoice = invoices.get(found.get("invoice") or "")
        if invoice is None or invoice["status"] != "open":
            continue
        if found["object"] == "credit_note":
            invoice["amount_remaining"] -= found.get("pre_payment_amount", 0)
        elif found["object"] == "invoice_payment" and found.get("status") == "paid":
            paid = min(found["amount_paid"], invoice["amount_remaining"])
            invoice["amount_paid"] += paid
            invoice["amount_remaining"] -= paid
    for invoice in invoices.values():
        if invoice["status"] == "open" and invoice["amount_remaining"] <= 0:
            invoice["status"] = "paid"
            invoice["paid"] = True
            transitions = invoice.setdefault("status_transitions", {})
            transitions["paid_at"] = transitions.get("paid_at") or max(
                found["created"] for found in documents if found.get("invoice") == invoice["id"]
            )


def _undelivered(invoice: dict[str, Any]) -> dict[str, Any]:
    clone = copy.deepcopy(invoice)
    suffix = UNDELIVERED_ID.removeprefix("in_")
    clone["id"] = UNDELIVERED_ID
    clone["number"] = "ACME-0013"
    clone["description"] = "Stripe holds it; its events were never delivered (reconciliation finds it)"
    clone["status"] = "open"
    clone["amount_paid"] = 0
    clone["amount_remaining"] = clone["amount_due"]
    clone["paid"] = False
    for field in ("created", "effective_at", "due_date", "period_start", "period_end", "webhooks_delivered_at"):
        if isinstance(clone.get(field), int):
            clone[field] += UNDELIVERED_SHIFT
    transitions = clone.get("status_transitions") or {}
    for field, value in list(transitions.items()):
        transitions[field] = value + UNDELIVERED_SHIFT if field == "finalized_at" and value else None
    clone["payments"] = {
        "object": "list",
        "data": [],
        "has_more": False,
        "url": f"/v1/invoices/{UNDELIVERED_ID}/payments",
    }
    lines = clone["lines"]
    lines["url"] = f"/v1/invoices/{UNDELIVERED_ID}/lines"
    for position, line in enumerate(lines["data"], start=1):
        line["id"] = f"il_{suffix[:-2]}{position:02d}"
        line["invoice"] = UNDELIVERED_ID
    return clone


def main() -> None:
    newest = _objects()
    documents = [found for _, found in newest.values()]
    _settle(documents)
    documents.append(_undelivered(newest[UNDELIVERED_FROM][1]))
    documents.sort(key=lambda found: (LISTED.index(found["object"]), found["created"], found["id"]))
    OUT.write_text(json.dumps(documents, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {len(documents)} objects to {OUT}")


if __name__ == "__main__":
    main()
