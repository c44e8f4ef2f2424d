"""Lineage as finance meets it locally: `local serve` answers the lineage GETs with the full trail, and
`billing-sync lineage show --json` prints the same trail from the runtime's tables."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from billing_sync.domain.events import derive_event_id
from billing_sync_ops.demo import post_webhook
from billing_sync_ops.signing import sign_stripe_payload
from tests.builders import REPO_ROOT, event_payload, load_event
from tests.functional.test_local_serve import SECRET, free_port, wait_for_listening

pytestmark = pytest.mark.infra

INVOICE_EVENT = "evt_1QH6KZNx4RkL2mQemUSGRWS1"
INVOICE = "in_1QvDDlNx4RkL2mQejBTD4pmw"
EVENTS = (
    "stripe_customer_created",
    "stripe_product_created_growth_plan",
    "stripe_price_created_growth_plan",
    "stripe_product_created_onboarding",
    "stripe_price_created_onboarding",
    "stripe_invoice_finalized",
)


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "billing_sync_ops.cli", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def http_get(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_serve_answers_the_lineage_gets_and_the_cli_prints_the_same_trail(tmp_path: Path) -> None:
    # GIVEN `local serve` with a customer, its catalogue and an invoice posted over HTTP
    env = {
        **os.environ,
        "BILLING_SYNC_STRIPE_WEBHOOK_SECRET": SECRET,
        "BILLING_SYNC_LOCAL_STATE": str(tmp_path / "rt.json"),
    }
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "billing_sync_ops.cli", "local", "serve", "--port", str(port), "--log-level", "WARNING"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        webhook_url = wait_for_listening(server)
        base = webhook_url.removesuffix("/webhooks/stripe")
        for name in EVENTS:
            body = event_payload(load_event(name))
            status, answer = post_webhook(webhook_url, body, sign_stripe_payload(body, SECRET, int(time.time())))
            assert status == 200, answer
        deadline = time.monotonic() + 90
        while True:
            shown = cli("lineage", "show", INVOICE_EVENT, "--local", "--json", env=env)
            if shown.returncode == 0 and json.loads(shown.stdout)["lineage"]["status"] == "POSTED":
                break
            assert time.monotonic() < deadline, shown.stderr[-2000:]
            time.sleep(0.5)

        # WHEN finance asks the local API for the invoice event's lineage and for the invoice itself
        event_id = derive_event_id("stripe", INVOICE_EVENT)
        event_status, event_trail = http_get(f"{base}/events/{event_id}/lineage")
        document_status, document_trail = http_get(f"{base}/documents/stripe/{INVOICE}")
        unknown_status, _ = http_get(f"{base}/events/{derive_event_id('stripe', 'evt_never')}/lineage")
        malformed_status, malformed = http_get(f"{base}/documents/stripe/in_bad.id")

        # THEN the event's trail runs from its raw payload through lineage to the posted ERP invoice
        assert event_status == 200, event_trail
        assert event_trail["event"]["source_event_id"] == INVOICE_EVENT
        assert event_trail["event"]["raw_ref"]
        assert event_trail["lineage"]["status"] == "POSTED"
        assert event_trail["lineage"]["attempts"] >= 1
        [invoice] = event_trail["erp_documents"]
        assert invoice["external_id"] == f"stripe-invoice-{INVOICE}"
        assert invoice["kind"] == "invoice" and invoice["erp_document_id"] in event_trail["lineage"]["erp_document_ids"]
        assert invoice["total"] > 0
        # AND the document's trail leads back to the same event
        assert document_status == 200, document_trail
        assert [doc["external_id"] for doc in document_trail["erp_documents"]] == [invoice["external_id"]]
        assert [entry["event"]["event_id"] for entry in document_trail["events"]] == [event_id]
        # AND unknown and malformed ids are answered 404 and 400
        assert unknown_status == 404
        assert malformed_status == 400 and malformed["error"] == "malformed_id"
        # AND the CLI's --json prints the same trail, stdout carrying only JSON
        printed = json.loads(shown.stdout)
        assert printed["command"] == "lineage show"
        assert printed["erp_documents"] == event_trail["erp_documents"]
        assert printed["lineage"] == event_trail["lineage"]
        by_document = cli("lineage", "show", f"stripe/{INVOICE}", "--local", "--json", env=env)
        assert by_document.returncode == 0, by_document.stderr
        assert json.loads(by_document.stdout)["events"][0]["event"]["source_event_id"] == INVOICE_EVENT
        malformed_cli = cli("lineage", "show", "not an id", "--local", "--json", env=env)
        assert malformed_cli.returncode == 2
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            server.kill()
