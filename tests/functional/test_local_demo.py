"""The demo path end to end: signed webhooks over real HTTP in, balanced ledger out."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from billing_sync_ops.demo import (
    RECOGNITION_THROUGH,
    STRIPE_API_FIXTURES,
    collect_report,
    post_webhook,
    recognise_local,
    run_sequence,
)
from billing_sync_ops.report import render_summary
from billing_sync_ops.runtime import LocalRuntime
from billing_sync_ops.signing import sign_stripe_payload
from tests.builders import event_payload, load_event

pytestmark = pytest.mark.infra  # synthesises the stack the local runtime is built from


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory):
    # GIVEN the local runtime built from the synthesised stack, serving on loopback
    with LocalRuntime(work_dir=Path("build/local"), stripe_fixtures=STRIPE_API_FIXTURES) as runtime:
        # WHEN the sample events are sent as signed webhooks, the queues drain (with one sweep of the waiting
        # room) and revenue is recognised through November 2026 (as `billing-sync local demo` does)
        responses, drained = run_sequence(runtime)
        assert drained, "posting queue did not drain"
        yield runtime, responses, collect_report(runtime, recognise_local(runtime))


def by_source_event(report: dict) -> dict[str, list[dict]]:
    entries: dict[str, list[dict]] = {}
    for entry in report["events"]:
        entries.setdefault(entry["source_event_id"], []).append(entry)
    return entries


def test_every_accepted_event_has_an_outcome(demo_run) -> None:
    _, responses, report = demo_run
    accepted = {answer["event_id"] for _, status, answer in responses if status == 200}
    # THEN every 2xx is POSTED, IGNORED or parked with a category: nothing accepted is lost
    reported = {entry["event_id"]: entry for entry in report["events"]}
    assert accepted == set(reported)
    assert report["totals"] == {
        "received": 69,
        "posted": 65,
        "ignored": 2,
        "exceptions": 2,
        "pending": 0,
        "waiting": 0,
    }
    for entry in reported.values():
        assert (entry["outcome"] == "EXCEPTION") == (entry["category"] in {"MALFORMED", "VALIDATION"})


def test_exceptions_carry_their_category(demo_run) -> None:
    _, _, report = demo_run
    entries = by_source_event(report)
    assert entries["evt_1QxkfdNx4RkL2mQeDTFKXEZj"][0]["category"] == "VALIDATION"  # totals do not add up
    assert entries["evt_1QOAm0Nx4RkL2mQeLed9Jrig"][0]["category"] == "MALFORMED"  # currency "zzz"
    assert entries["evt_3Qd7NINx4RkL2mQeTw1EpPrX"][0]["outcome"] == "IGNORED"


def balance(report: dict, account_prefix: str, currency: str) -> int:
    """Debits minus credits of one account in one currency."""
    return sum(
        row["debit"] - row["credit"]
        for row in report["ledger"]["trial_balance"]
        if row["account"].startswith(account_prefix) and row["currency"] == currency
    )


def test_ledger_balances_and_holds_each_document_once(demo_run) -> None:
    _, _, report = demo_run
    ledger = report["ledger"]
    # THEN 12 invoices, 10 payments, 2 credit notes, 1 void, 1 write-off, 2 refund credit memos, 3
    # refunds, 9 monthly releases of deferred revenue, 5 Stripe fees and 1 payout, each once: the
    # redelivered invoice, the invoice.paid checks and the charge.refunded that reports the full refund
    # again added nothing
    assert ledger["balanced"] is True and ledger["functional_balanced"] is True
    once = 12 + 10 + 2 + 1 + 1 + 2 + 3 + 9 + 5 + 1
    # The credit note carrying a refund and that refund's saga are independent: when the saga looks first
    # it books its own credit memo, which the credit note then voids (two more documents, same balances).
    assert ledger["documents"] in (once, once + 2)
    for currency in ("USD", "JPY", "KWD", "EUR"):
        rows = [row for row in ledger["trial_balance"] if row["currency"] == currency]
        assert sum(row["debit"] for row in rows) == sum(row["credit"] for row in rows)


def test_the_books_end_where_stripe_leaves_the_customers(demo_run) -> None:
    _, _, report = demo_run
    # THEN receivables are what Stripe still asks: only the June renewal (26433) less its credit note (3572)
    assert balance(report, "1200", "USD") == 26433 - 3572
    for currency in ("JPY", "KWD", "EUR"):
        assert balance(report, "1200", currency) == 0
    # AND the customer balance: the downgrade's credit (17861) was used by the renewal; the credit note
    # after payment credited 5717, used by the June invoice; the EUR overpayment left 600 of credit
    assert balance(report, "2200", "USD") == 0
    assert balance(report, "2200", "EUR") == -600
    # AND cash: paid outside Stripe to undeposited funds; through Stripe the payout took what cleared (the
    # charges less the refunds: the upgrade's 16075 in full, 10000 of Acme's payment, the credit note's
    # 5000) and its fees to the bank, so USD Stripe clearing is zero
    assert balance(report, "1160", "USD") == 60403
    assert balance(report, "1150", "USD") == 0
    assert balance(report, "6100", "USD") == 496 + 320 + 154 + 610 + 1237
    assert balance(report, "1000", "USD") == 10000 + 4289 + 16075 + 20000 + 41623 - 16075 - 10000 - 5000 - 2817
    [payout] = report["payouts"]
    assert (payout["amount"], payout["clearing_balance"]) == (58095, 0)
    # AND every refund owed was paid out; revenue given back by the two refunds no credit note carries
    assert balance(report, "2250", "USD") == 0
    assert balance(report, "4950", "USD") == 16075 + 10000
    # AND the write-off is what remained open on the uncollectible invoice
    assert balance(report, "6500", "USD") == 44950
    # AND a JPY invoice on the US entity posted (no currency restriction)
    entries = by_source_event(report)
    jpy_us = load_event("stripe_invoice_finalized_jpy_us")["id"]
    assert entries[jpy_us][0]["outcome"] == "POSTED"


def test_recognition_releases_every_deferred_month_through_november(demo_run) -> None:
    runtime, _, report = demo_run
    recognition = report["recognition"]
    # THEN nine releases (one per source document and month) moved deferred revenue to revenue
    assert recognition["through"] == RECOGNITION_THROUGH.isoformat() == "2026-11-30"
    assert (recognition["releases"], recognition["already_posted"]) == (9, 0)
    assert recognition["by_currency"] == {"JPY": 24946, "USD": 103267}
    # AND the May renewal released the rest of May: 29700 - 29700 // 31
    assert recognition["by_month"]["2026-05"]["USD"] == 28742 - 5749  # less the credit note's May share
    # AND every service period has ended by November 30: nothing is left deferred
    for currency in ("USD", "JPY", "KWD", "EUR"):
        assert balance(report, "2400", currency) == 0
    # AND a second run posts nothing twice
    again = recognise_local(runtime)
    assert (again["created"], again["already_posted"]) == ([], 9)


def test_the_deferred_revenue_roll_forward_adds_up_to_the_trial_balance(demo_run) -> None:
    _, _, report = demo_run
    rows = report["deferred_revenue"]
    assert {(row["legal_entity"], row["currency"]) for row in rows} == {("US01", "USD"), ("JP01", "JPY")}
    for row in rows:
        # THEN opening + billed - recognised - credited = closing, for each entity and currency
        assert row["opening"] == 0
        assert row["opening"] + row["billed"] - row["recognised"] - row["credited"] == row["closing"], row
        assert sum(row["credited_by_kind"].values()) == row["credited"]
    # AND the closing balances are deferred revenue's balance in the trial balance (credit-positive)
    for currency in ("USD", "JPY", "KWD", "EUR"):
        closing = sum(row["closing"] for row in rows if row["currency"] == currency)
        assert closing == -balance(report, "2400", currency)
    [usd] = [row for row in rows if row["currency"] == "USD"]
    assert (usd["billed"], usd["recognised"], usd["credited"]) == (112316, 103267, 9049)
    assert usd["recognised"] == report["recognition"]["by_currency"]["USD"]
    # AND the summary shows the recognition run and the roll-forward
    summary = render_summary(report)
    assert "revenue recognised through 2026-11-30: 9 releases" in summary
    assert "deferred revenue roll-forward:" in summary
    assert any(line.split()[:2] == ["US01", "USD"] and line.split()[-1] == "0.00" for line in summary.splitlines())


def test_the_subscription_lifecycle_posted_although_sent_out_of_order(demo_run) -> None:
    _, _, report = demo_run
    entries = by_source_event(report)
    # GIVEN the lifecycle was sent with payments before invoices and invoices before their catalogue
    for name in (
        "stripe_invoice_payment_paid_partial_2",
        "stripe_invoice_finalized_lifecycle_first",
        "stripe_credit_note_created_post_payment",
        "stripe_invoice_finalized_proration_downgrade",
        "stripe_invoice_paid_lifecycle_renewal",
    ):
        # THEN each posted (waiting by name, never parked)
        [entry] = entries[load_event(name)["id"]]
        assert entry["outcome"] == "POSTED", (name, entry)
    # AND the completeness check says the two partial payments cover the renewal
    [paid] = entries[load_event("stripe_invoice_paid_lifecycle_renewal")["id"]]
    assert paid["erp_documents"] == []
    assert paid["reason"] == "complete: payments booked 14289 cover amount paid 14289"


BOOKED_WITH_CREDIT_MEMO = [
    "LoadDependencies",
    "DependenciesPosted",
    "CreditMemoNeeded",
    "CreateCreditMemo",
    "CreateRefund",
    "RecordLineage",
    "Booked",
]


def after_last_wait(states: list[str]) -> list[str]:
    """The states entered after the saga's last look that found the payment missing."""
    if "WaitForDependencies" not in states:
        return states
    return states[len(states) - states[::-1].index("WaitForDependencies") :]


def test_refunds_are_booked_by_the_saga_although_sent_before_their_payments(demo_run) -> None:
    _, _, report = demo_run
    entries = by_source_event(report)
    executions = {execution["name"]: execution for execution in report["refunds"]}
    # GIVEN four refund events: two report the upgrade's full refund (refund.created, charge.refunded),
    # one a partial refund of the Acme payment (both sent before their payments) and one the refund the
    # post-payment credit note carries
    names = {
        "stripe_refund_created_full": BOOKED_WITH_CREDIT_MEMO,
        "stripe_charge_refunded": BOOKED_WITH_CREDIT_MEMO,
        "stripe_refund_created_partial_1": BOOKED_WITH_CREDIT_MEMO,
        "stripe_refund_created_credit_note": [
            "LoadDependencies",
            "DependenciesPosted",
            "CreditMemoNeeded",
            "CreateRefund",
            "RecordLineage",
            "Booked",
        ],
    }
    assert len(executions) == len(names)
    for name, path in names.items():
        [entry] = entries[load_event(name)["id"]]
        assert entry["outcome"] == "POSTED", (name, entry)
        # THEN one execution per event SUCCEEDED, looking for the payment until it was posted, then
        # going LoadDependencies -> ... -> RecordLineage -> Booked in order
        [execution] = [e for e in executions.values() if e["name"].startswith(f"{entry['event_id']}-")]
        assert execution["status"] == "SUCCEEDED", (name, execution)
        assert after_last_wait(execution["states"]) == path, (name, execution["states"])
    # AND the refunds sent before their payments waited for them
    for name in ("stripe_refund_created_full", "stripe_refund_created_partial_1"):
        [entry] = entries[load_event(name)["id"]]
        [execution] = [e for e in executions.values() if e["name"].startswith(f"{entry['event_id']}-")]
        assert "WaitForDependencies" in execution["states"], (name, execution["states"])
    # AND the two events of the one full refund hold the same two documents
    [full] = entries[load_event("stripe_refund_created_full")["id"]]
    [charge_refunded] = entries[load_event("stripe_charge_refunded")["id"]]
    assert sorted(full["erp_documents"]) == sorted(charge_refunded["erp_documents"])
    assert len(full["erp_documents"]) == 2


def test_refused_webhooks_store_nothing(demo_run) -> None:
    runtime, responses, report = demo_run
    # THEN the forged request got a 401 and left no trace in lineage or the ledger
    [forged] = [answer for name, status, answer in responses if name == "forged"]
    assert forged["error"] == "invalid_signature"
    assert report["refused"] == [{"status": 401, **forged}]
    # AND an unsigned, an oversize and a non-JSON request are refused with clear errors
    body = event_payload(load_event("stripe_invoice_finalized"))
    status, answer = post_webhook(runtime.webhook_url, body, None)
    assert (status, answer["error"]) == (400, "missing_signature")
    huge = body + b" " * (256 * 1024)
    status, answer = post_webhook(runtime.webhook_url, huge, sign_stripe_payload(huge, runtime.webhook_secret, 0))
    assert (status, answer["error"]) == (413, "payload_too_large")
    garbage = b"{not json"
    status, answer = post_webhook(
        runtime.webhook_url, garbage, sign_stripe_payload(garbage, runtime.webhook_secret, int(time.time()))
    )
    # AND a signed body that is not JSON is kept and parked (answered as accepted: retrying cannot help)
    assert (status, answer["outcome"]) == (200, "EXCEPTION")
    report = collect_report(runtime)
    assert report["totals"]["received"] == 70
    parked = [e for e in report["events"] if e["event_id"] == answer["event_id"]]
    assert [(e["outcome"], e["category"]) for e in parked] == [("EXCEPTION", "MALFORMED")]
    assert "not valid JSON" in parked[0]["reason"]


def test_report_is_json_serialisable_with_the_documented_keys(demo_run) -> None:
    _, _, report = demo_run
    decoded = json.loads(json.dumps(report))
    assert set(decoded) >= {"events", "totals", "ledger", "refunds", "recognition", "deferred_revenue"}
    assert set(decoded["recognition"]) == {"through", "releases", "already_posted", "by_currency", "by_month"}
    assert set(decoded["deferred_revenue"][0]) == {
        "legal_entity",
        "currency",
        "opening",
        "billed",
        "recognised",
        "credited",
        "credited_by_kind",
        "closing",
    }
    assert set(decoded["refunds"][0]) == {"name", "status", "states"}
    assert set(decoded["events"][0]) >= {"event_id", "source_event_id", "type", "outcome", "category", "erp_documents"}
    assert set(decoded["ledger"]) == {
        "balanced",
        "documents",
        "trial_balance",
        "functional_trial_balance",
        "functional_balanced",
    }


def test_a_eur_invoice_in_the_us_entity_settles_with_realised_fx(demo_run) -> None:
    _, _, report = demo_run
    # GIVEN the inclusive-VAT EUR invoice (724.00) booked in US01 at the table rate of its day (1.0918)
    # WHEN 730.00 EUR is paid on a day whose rate is 1.0786 (no Stripe conversion in the fixtures)
    [eur] = [entry for entry in report["fx"] if entry["transaction_currency"] == "EUR"]
    # THEN clearing 730.00 x 1.0786 = 787.38 and the 6.00 overpaid at 1.0786 = 6.47 against the receivable
    # leaving at 724.00 x 1.0918 = 790.46: 787.38 - 790.46 - 6.47 = a realised loss of 9.55 USD
    assert (eur["legal_entity"], eur["functional_currency"], eur["gain"]) == ("US01", "USD", -955)
    assert eur["rates"] == ["1.0786 (ecb)", "1.0918 (carried:stripe-invoice-in_1i38poNx4RkL2mQe5gvnMH7Q)"]
    # AND the receivable is zero in both currencies, and every entity balances in its functional currency
    assert balance(report, "1200", "EUR") == 0
    functional = report["ledger"]["functional_trial_balance"]
    receivable_us = [r for r in functional if r["legal_entity"] == "US01" and r["account"].startswith("1200")]
    assert sum(r["debit"] - r["credit"] for r in receivable_us) == 26433 - 3572
    for entity, currency in (("US01", "USD"), ("JP01", "JPY"), ("KW01", "KWD")):
        rows = [r for r in functional if r["legal_entity"] == entity]
        assert {r["currency"] for r in rows} == {currency}
        assert sum(r["debit"] for r in rows) == sum(r["credit"] for r in rows)
    summary = render_summary(report)
    assert "realised FX on stripe-payment-inpay_1DQECSNx4RkL2mQeW6hniwyL (EUR in US01): loss 9.55 USD" in summary
    assert "1150 Payment Clearing USD balance now 0.00" in summary
