"""`billing-sync local serve`: accepts webhooks until SIGTERM, then drains and writes its report."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from billing_sync_ops.demo import post_webhook
from billing_sync_ops.signing import sign_stripe_payload
from tests.builders import REPO_ROOT, event_payload, load_event

pytestmark = pytest.mark.infra

SECRET = "whsec_serve_test_secret"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_listening(process: subprocess.Popen, timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    assert process.stderr is not None
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        if line.startswith("listening on "):
            return line.split()[2]
    raise AssertionError("serve did not start listening")


def test_serve_processes_webhooks_and_reports_on_sigterm(tmp_path: Path) -> None:
    # GIVEN the local server with a signing secret from the environment
    report_path = tmp_path / "serve-report.json"
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "billing_sync_ops.cli",
            "local",
            "serve",
            "--port",
            str(port),
            "--report",
            str(report_path),
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "BILLING_SYNC_STRIPE_WEBHOOK_SECRET": SECRET, "POWERTOOLS_LOG_LEVEL": "WARNING"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = wait_for_listening(process)
        assert url == f"http://127.0.0.1:{port}/webhooks/stripe"
        # WHEN a customer arrives through `billing-sync local send` and an invoice straight over HTTP
        sent = subprocess.run(
            [
                sys.executable,
                "-m",
                "billing_sync_ops.cli",
                "local",
                "send",
                "events/stripe_customer_created.json",
                "--url",
                url,
            ],
            cwd=REPO_ROOT,
            env={**os.environ, "BILLING_SYNC_STRIPE_WEBHOOK_SECRET": SECRET},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert sent.stdout.startswith("200 ")
        for name in (
            "stripe_invoice_finalized",  # before its catalogue: it waits for its prices and products by name
            "stripe_product_created_growth_plan",
            "stripe_price_created_growth_plan",
            "stripe_product_created_onboarding",
            "stripe_price_created_onboarding",
        ):
            body = event_payload(load_event(name))
            status, answer = post_webhook(url, body, sign_stripe_payload(body, SECRET, int(time.time())))
            assert status == 200, answer
        # AND the server is stopped with SIGTERM
        process.send_signal(signal.SIGTERM)
        try:
            stdout, _ = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            _, stderr = process.communicate()
            pytest.fail(f"serve did not stop within 120 s of SIGTERM; stderr tail:\n{stderr[-3000:]}")
    finally:
        if process.poll() is None:
            process.kill()
    # THEN it drained the work in flight and wrote the report
    assert process.returncode == 0
    report = json.loads(report_path.read_text())
    assert report["totals"] == {
        "received": 6,
        "posted": 6,
        "ignored": 0,
        "exceptions": 0,
        "pending": 0,
        "waiting": 0,
    }
    assert report["ledger"]["documents"] == 1 and report["ledger"]["balanced"] is True
    assert "billing-sync local run" in stdout
