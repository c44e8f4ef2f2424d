"""The operator CLI as an operator meets it: `local serve` running, real HTTP in, `billing-sync dlq` out with --json."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from billing_sync_ops.demo import post_webhook
from billing_sync_ops.signing import sign_stripe_payload
from tests.builders import REPO_ROOT, event_payload, load_event
from tests.functional.test_local_serve import SECRET, free_port, wait_for_listening

pytestmark = pytest.mark.infra


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "billing_sync_ops.cli", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_dlq_list_show_and_redrive_against_a_running_local_serve(tmp_path: Path) -> None:
    # GIVEN `local serve` in its own process, telling the CLI where it is through a discovery file
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
        url = wait_for_listening(server)
        # WHEN an invoice that does not add up and its customer arrive over HTTP
        for name in ("stripe_customer_created", "stripe_invoice_finalized_bad_totals"):
            body = event_payload(load_event(name))
            status, answer = post_webhook(url, body, sign_stripe_payload(body, SECRET, int(time.time())))
            assert status == 200, answer
        bad_invoice_event = answer["event_id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            listed = cli("dlq", "list", "--local", "--json", env=env)
            assert listed.returncode == 0, listed.stderr
            counts = json.loads(listed.stdout)
            if counts["open"]["total"]:
                break
            time.sleep(0.5)

        # THEN `dlq list` counts it by category from the store, stdout carrying only JSON
        assert counts["indexed"] is True
        assert counts["open"]["total"] == 1, counts
        assert counts["open"]["by_category"] == {"VALIDATION": 1}
        [group] = counts["open"]["groups"]
        assert (group["source"], group["event_type"], group["count"]) == ("stripe", "invoice.issued", 1)
        # AND `dlq show` explains it
        shown = cli("dlq", "show", bad_invoice_event, "--local", "--json", env=env)
        assert shown.returncode == 0, shown.stderr
        detail = json.loads(shown.stdout)
        assert detail["record"]["category"] == "VALIDATION"
        assert "does not add up" in detail["record"]["reason"]
        # AND a dry-run redrive selects it and changes nothing
        dry = cli("dlq", "redrive", "--category", "VALIDATION", "--dry-run", "--local", "--json", env=env)
        assert dry.returncode == 0, dry.stderr
        assert json.loads(cli("dlq", "list", "--local", "--json", env=env).stdout)["open"]["total"] == 1
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            server.kill()
    # AND once the runtime is gone the CLI says so with its documented exit code
    gone = cli("dlq", "list", "--local", "--json", env=env)
    assert gone.returncode == 3
    assert "local runtime" in gone.stderr
