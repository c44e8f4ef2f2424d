"""The local runtime uses its cores: moto answers from a process of its own, the posting function runs in
as many worker processes as the template lets it run at once, the webhook in several; stopping leaves no
process behind."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from billing_sync_ops.demo import collect_report, post_webhook, send_samples
from billing_sync_ops.ops.discovery import DISCOVERY_ENV
from billing_sync_ops.runtime import LocalRuntime
from billing_sync_ops.signing import sign_stripe_payload
from tests.builders import REPO_ROOT, event_payload, load_event
from tests.functional.test_local_serve import SECRET, free_port

pytestmark = pytest.mark.infra


def running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_moto_and_the_posting_hosts_run_in_processes_of_their_own_and_stop_with_the_runtime() -> None:
    # GIVEN a local runtime started from the synthesised stack
    with LocalRuntime(work_dir=Path("build/local"), log_level="ERROR") as runtime:
        processes = runtime.processes()
        posting = runtime.stack.function_for("post_to_erp")
        webhook = runtime.stack.function_for("stripe_webhook")
        webhook_hosts = runtime.webhook_hosts(webhook)
        [mapping] = [m for m in runtime.stack.event_source_mappings if m.function_logical_id == posting.logical_id]
        limits = [n for n in (mapping.maximum_concurrency, posting.reserved_concurrency) if n]
        pollers = sum(runtime.concurrency(m) for m in runtime.stack.event_source_mappings)
        # WHEN a customer is sent and posted
        send_samples(runtime, ("stripe_customer_created",))
        assert runtime.drain(timeout_seconds=60)
        report = collect_report(runtime)
        children = [processes["moto_pid"], *processes["worker_pids"]]
        alive_while_running = [running(pid) for pid in children]
    # THEN moto answered from another process
    assert processes["moto_pid"] not in (None, os.getpid())
    # AND the posting function had one host and one poller per batch the template lets run at once
    assert min(limits) > 1
    assert processes["function_hosts"][posting.logical_id] == min(limits)
    assert processes["pollers"] == pollers >= min(limits)
    # AND the webhook function had several hosts too
    assert processes["function_hosts"][webhook.logical_id] == webhook_hosts > 1
    assert len(set(processes["worker_pids"])) == sum(processes["function_hosts"].values())
    assert os.getpid() not in processes["worker_pids"]
    assert all(alive_while_running)
    # AND the event posted through them
    assert [entry["outcome"] for entry in report["events"]] == ["POSTED"]
    # AND stopping left no child process behind
    assert not [pid for pid in children if running(pid)]
    assert multiprocessing.active_children() == []


def test_a_worker_process_that_dies_is_replaced_and_the_next_delivery_runs_in_the_new_one() -> None:
    # GIVEN a local runtime whose posting and webhook workers were all killed (as an OOM kill would)
    with LocalRuntime(work_dir=Path("build/local"), log_level="ERROR") as runtime:
        before = runtime.processes()
        for pid in before["worker_pids"]:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(running(pid) for pid in before["worker_pids"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        # WHEN a customer is delivered and posted
        [(_, status, _), _forged] = send_samples(runtime, ("stripe_customer_created",))
        assert runtime.drain(timeout_seconds=60)
        report = collect_report(runtime)
        after = runtime.processes()
        replaced = [pid for pid in after["worker_pids"] if pid not in before["worker_pids"]]
        alive = [running(pid) for pid in replaced]
    # THEN the webhook answered 200 and the event posted, through new workers that replaced the dead ones
    assert status == 200
    assert [entry["outcome"] for entry in report["events"]] == ["POSTED"]
    assert replaced and all(alive)
    assert after["worker_replacements"] == len(replaced) >= 2
    assert not any(running(pid) for pid in before["worker_pids"])


def test_ctrl_c_to_the_whole_process_group_drains_through_the_children_and_leaves_none(tmp_path: Path) -> None:
    # GIVEN `local serve` in a process group of its own, as a terminal runs it
    discovery = tmp_path / "runtime.json"
    report_path = tmp_path / "serve-report.json"
    command = [sys.executable, "-m", "billing_sync_ops.cli", "local", "serve", "--port", str(free_port())]
    command += ["--report", str(report_path), "--log-level", "WARNING"]
    with (tmp_path / "serve.stderr").open("w") as stderr:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            env={**os.environ, "BILLING_SYNC_STRIPE_WEBHOOK_SECRET": SECRET, DISCOVERY_ENV: str(discovery)},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    try:
        url = wait_for_discovery(discovery, process)["webhook_url"]
        body = event_payload(load_event("stripe_customer_created"))
        status, _ = post_webhook(url, body, sign_stripe_payload(body, SECRET, int(time.time())))
        assert status == 200
        # WHEN Ctrl-C reaches every process of the group at once
        os.killpg(process.pid, signal.SIGINT)
        exit_status = process.wait(timeout=120)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    # THEN the children kept serving while it drained: the event posted and the report was written
    assert exit_status == 0, (tmp_path / "serve.stderr").read_text()[-3000:]
    report = json.loads(report_path.read_text())
    assert [entry["outcome"] for entry in report["events"]] == ["POSTED"]
    # AND the report names moto's process and the hosts' processes, none of which is left
    children = [report["runtime"]["moto_pid"], *report["runtime"]["worker_pids"]]
    assert report["runtime"]["moto_pid"] != process.pid
    assert len(children) > 2
    assert not [pid for pid in children if running(pid)]


def wait_for_discovery(path: Path, process: subprocess.Popen, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "serve exited before it was listening"
        try:
            document = json.loads(path.read_text())
        except (OSError, ValueError):
            document = {}
        if document.get("pid") == process.pid:
            return document
        time.sleep(0.2)
    raise AssertionError("serve did not write its discovery file")
