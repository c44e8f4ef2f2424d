"""Retries exhausted on the local runtime: the redrive policy parks the event, nothing is lost."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from billing_sync import composition
from billing_sync_ops.demo import collect_report, send_samples
from billing_sync_ops.runtime import LocalRuntime
from tests.functional.aws_fixtures import drain

pytestmark = pytest.mark.infra


def test_a_payment_whose_invoice_never_comes_waits_then_is_parked_naming_it() -> None:
    # GIVEN a fresh local stack whose wait horizon is two seconds, and a yen payment whose invoice never comes
    with LocalRuntime(work_dir=Path("build/local"), sweep_interval_seconds=3600) as runtime:
        os.environ["WAIT_HORIZON_SECONDS"] = "2"
        composition.reset()
        send_samples(runtime, ("stripe_customer_created_jp", "stripe_invoice_payment_paid_jpy"))
        assert runtime.drain(timeout_seconds=60)
        waiting = collect_report(runtime)
        # WHEN the scheduled sweep runs after the horizon
        time.sleep(2.5)
        runtime.sweep()
        assert runtime.drain(timeout_seconds=30)
        report = collect_report(runtime)
        parked = [json.loads(m["Body"]) for m in drain(runtime.sqs, runtime.stack.outputs["ExceptionQueueUrl"])]
    # THEN it waited without burning the queue's retries, then was parked, naming the invoice it waited for
    [held] = [entry for entry in waiting["events"] if entry["type"] == "payment.settled"]
    assert (held["outcome"], held["category"], held["attempts"]) == ("WAITING", "DEPENDENCY_PENDING", 1)
    [payment] = [entry for entry in report["events"] if entry["type"] == "payment.settled"]
    assert (payment["outcome"], payment["category"]) == ("EXCEPTION", "DEPENDENCY_PENDING")
    assert "stripe-invoice-in_1Qm57qNx4RkL2mQeJoYg6HRn" in payment["reason"]
    assert [record["category"] for record in parked] == ["DEPENDENCY_PENDING"]
    assert report["ledger"]["documents"] == 0


def test_only_one_local_runtime_runs_per_process() -> None:
    # GIVEN a running local runtime
    # WHEN a second one is started in the same process
    # THEN it is refused, since handlers and their environment are process-wide
    with LocalRuntime(work_dir=Path("build/local")), pytest.raises(RuntimeError, match="already running"):
        LocalRuntime(work_dir=Path("build/local")).start()
