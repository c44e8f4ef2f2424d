"""The demo path end to end: signed webhooks over real HTTP in, balanced ledger out."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from billing_sync_ops.demo import collect_report, post_webhook, send_samples
from billing_sync_ops.runtime import LocalRuntime
from billing_sync_ops.signing import sign_stripe_payload
from tests.builders import event_payload, load_event

pytestmark = pytest.mark.infra  # synthesises the stack the local runtime is built from


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory):
    # GIVEN the local runtime built from the synthesised stack, serving on loopback
    with LocalRuntime(work_dir=Path("build/local")) as runtime:
        # WHEN the sample events are sent as signed webhooks and the queues drain
        responses = send_samples(runtime)
        assert runtime.drain(timeout_seconds=90), "posting queue did not drain"
        yield runtime, responses, collect_report(runtime)


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
    assert report["totals"] == {"received": 14, "posted": 10, "ignored": 2, "exceptions": 2, "pending": 0}
    for entry in reported.values():
        assert (entry["outcome"] == "EXCEPTION") == (entry["category"] in {"MALFORMED", "VALIDATION"})


def test_exceptions_carry_their_category(demo_run) -> None:
    _, _, report = demo_run
    entries = by_source_event(report)
    assert entries["evt_1QxkfdNx4RkL2mQeDTFKXEZj"][0]["category"] == "VALIDATION"  # totals do not add up
    assert entries["evt_1QOAm0Nx4RkL2mQeLed9Jrig"][0]["category"] == "MALFORMED"  # currency "zzz"
    assert entries["evt_3Qd7NINx4RkL2mQeTw1EpPrX"][0]["outcome"] == "IGNORED"


def test_ledger_balances_and_holds_each_document_once(demo_run) -> None:
    _, _, report = demo_run
    ledger = report["ledger"]
    # THEN 3 invoices + 2 payments: the duplicate delivery and the second payment event added nothing
    assert ledger["balanced"] is True
    assert ledger["documents"] == 5
    for currency in ("USD", "JPY", "KWD"):
        rows = [row for row in ledger["trial_balance"] if row["currency"] == currency]
        assert sum(row["debit"] for row in rows) == sum(row["credit"] for row in rows)
    receivable_usd = next(
        row for row in ledger["trial_balance"] if row["account"].startswith("1200") and row["currency"] == "USD"
    )
    assert receivable_usd == {"account": "1200 Accounts Receivable", "currency": "USD", "debit": 41623, "credit": 41623}
    entries = by_source_event(report)
    assert (
        entries["evt_1QfN1UNx4RkL2mQew0eZo5Ib"][0]["erp_documents"]
        == entries["evt_3QJqhyNx4RkL2mQeXuKskkkA"][0]["erp_documents"]
    )


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
    assert (status, answer["error"]) == (400, "malformed_json")
    assert collect_report(runtime)["totals"]["received"] == 14


def test_report_is_json_serialisable_with_the_documented_keys(demo_run) -> None:
    _, _, report = demo_run
    decoded = json.loads(json.dumps(report))
    assert set(decoded) >= {"events", "totals", "ledger"}
    assert set(decoded["events"][0]) >= {"event_id", "source_event_id", "type", "outcome", "category", "erp_documents"}
    assert set(decoded["ledger"]) == {"balanced", "documents", "trial_balance"}
