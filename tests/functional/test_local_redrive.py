"""Retries exhausted on the local runtime: the redrive policy parks the event, nothing is lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from billing_sync_ops.demo import collect_report, send_samples
from billing_sync_ops.runtime import LocalRuntime

pytestmark = pytest.mark.infra


def test_a_payment_whose_invoice_never_comes_ends_in_the_exception_queue() -> None:
    # GIVEN a fresh local stack and a yen payment whose invoice is never sent
    with LocalRuntime(work_dir=Path("build/local")) as runtime:
        send_samples(runtime, ("stripe_customer_created_jp", "stripe_invoice_paid_jpy"))
        # WHEN the posting queue retries it until its redrive policy gives up
        assert runtime.drain(timeout_seconds=90)
        report = collect_report(runtime)
    # THEN it is not lost: it sits in the exception queue, and lineage says why and how often it was tried
    [payment] = [entry for entry in report["events"] if entry["type"] == "payment.settled"]
    assert payment["outcome"] == "EXCEPTION"
    assert payment["category"] == "DEPENDENCY_PENDING"
    assert payment["attempts"] == 8  # the posting queue's maxReceiveCount, read from the template
    assert report["ledger"]["documents"] == 0


def test_only_one_local_runtime_runs_per_process() -> None:
    # GIVEN a running local runtime
    # WHEN a second one is started in the same process
    # THEN it is refused, since handlers and their environment are process-wide
    with LocalRuntime(work_dir=Path("build/local")), pytest.raises(RuntimeError, match="already running"):
        LocalRuntime(work_dir=Path("build/local")).start()
