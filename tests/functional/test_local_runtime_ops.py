"""The local runtime as an operator meets it: retries on the local clock, drain and stop, a clean CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from billing_sync_ops import cli
from billing_sync_ops.demo import post_webhook
from billing_sync_ops.lambda_runtime import QueuePoller, VisibilityChanges, scaled_seconds
from billing_sync_ops.local_stack import EventSourceMapping
from billing_sync_ops.signing import sign_stripe_payload
from tests.builders import REPO_ROOT, event_payload, load_event
from tests.functional.test_local_serve import free_port, wait_for_listening

pytestmark = pytest.mark.infra

SECRET = "whsec_runtime_ops_test_secret"
CLI = [sys.executable, "-m", "billing_sync_ops.cli"]


# ---- retries like the deployed runtime ----


class FailingHost:
    """Reports every record failed; optionally defers it itself, as a handler with retry delays does."""

    def __init__(self, queue_url: str, defer_seconds: int | None = None) -> None:
        self.queue_url = queue_url
        self.defer_seconds = defer_seconds
        self.received: list[float] = []

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        self.received.append(time.monotonic())
        if self.defer_seconds is not None:
            sqs = boto3.client("sqs", region_name="us-east-1")  # a handler's client: boto3's default session
            for record in event["Records"]:
                sqs.change_message_visibility(
                    QueueUrl=self.queue_url,
                    ReceiptHandle=record["receiptHandle"],
                    VisibilityTimeout=self.defer_seconds,
                )
        return {"batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"]]}


@pytest.fixture
def posting_queue() -> Any:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="posting", Attributes={"VisibilityTimeout": "180"})["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        yield sqs, EventSourceMapping(url, arn, "PostToErp", batch_size=10, report_batch_item_failures=True)


def poll_until_received(poller: QueuePoller, host: FailingHost, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while len(host.received) < count and time.monotonic() < deadline:
        poller.poll_once(wait_seconds=0)
        time.sleep(0.1)


def test_scaled_seconds_maps_template_durations_onto_the_local_clock() -> None:
    assert scaled_seconds(180, 0.01) == 2  # 1.8 s, in the whole seconds SQS takes
    assert scaled_seconds(30, 0.01) == 1  # never 0: that would retry at once
    assert scaled_seconds(180, 1) == 180


def test_a_failed_record_comes_back_after_the_scaled_visibility_timeout(posting_queue: Any) -> None:
    # GIVEN the posting queue (visibility 180 s) played at time scale 0.01
    sqs, mapping = posting_queue
    host = FailingHost(mapping.queue_url)
    poller = QueuePoller(sqs, mapping, host, time_scale=0.01)  # type: ignore[arg-type]
    assert poller.retry_delay_seconds == 2
    sqs.send_message(QueueUrl=mapping.queue_url, MessageBody="{}")
    # WHEN the function reports the record failed
    poll_until_received(poller, host, 1, timeout=5)
    # THEN the record comes back after about 2 s, not at once and not after 180 s
    poll_until_received(poller, host, 2, timeout=6)
    assert len(host.received) == 2
    assert 1.5 <= host.received[1] - host.received[0] <= 4.5


def test_the_poller_keeps_a_visibility_the_handler_set_itself(posting_queue: Any) -> None:
    # GIVEN a handler that defers its failed record by 4 s itself (a growing retry delay)
    sqs, mapping = posting_queue
    changes = VisibilityChanges()
    changes.install()
    try:
        host = FailingHost(mapping.queue_url, defer_seconds=4)
        poller = QueuePoller(sqs, mapping, host, time_scale=0.01, visibility_changes=changes)  # type: ignore[arg-type]
        sqs.send_message(QueueUrl=mapping.queue_url, MessageBody="{}")
        # WHEN the record fails
        poll_until_received(poller, host, 1, timeout=5)
        # THEN it is not back after the poller's 2 s, but after the handler's 4 s
        poll_until_received(poller, host, 2, timeout=3)
        assert len(host.received) == 1
        poll_until_received(poller, host, 2, timeout=4)
        assert len(host.received) == 2
        assert host.received[1] - host.received[0] >= 3.5
    finally:
        changes.uninstall()


# ---- `local serve`: stop, drain, exit status (with a fake runtime) ----


class FakeRuntime:
    """Plays LocalRuntime for `cli.serve`: signals arrive where the test says, the queues never drain."""

    webhook_url = "http://127.0.0.1:1/webhooks/stripe"

    def __init__(self, *, signals_on_start: int = 1, signals_on_drain: int = 0, **kwargs: Any) -> None:
        self.webhook_secret = kwargs["webhook_secret"]
        self.calls: list[str] = []
        self._on_start = signals_on_start
        self._on_drain = signals_on_drain

    def start(self) -> FakeRuntime:
        self.calls.append("start")
        for _ in range(self._on_start):
            signal.raise_signal(signal.SIGINT)
        return self

    def stop_accepting(self) -> None:
        self.calls.append("stop_accepting")

    def drain(self, *, timeout_seconds: float) -> bool:
        self.calls.append(f"drain {timeout_seconds:g}")
        for _ in range(self._on_drain):
            signal.raise_signal(signal.SIGINT)
            time.sleep(0.01)
        return False

    def stop_workers(self) -> None:
        self.calls.append("stop_workers")

    def stop(self, *, wait: bool = True) -> None:
        self.calls.append(f"stop wait={wait}")


def unsettled_report() -> dict[str, Any]:
    def event(outcome: str, status: str | None) -> dict[str, Any]:
        return {
            "event_id": f"e-{status}",
            "source_event_id": f"evt_{status}",
            "type": "invoice.issued",
            "outcome": outcome,
            "category": None,
            "erp_documents": [],
            "lineage_status": status,
        }

    events = [
        event("PENDING", "PENDING"),
        event("PENDING", None),
        event("PENDING", "CLAIMED"),
        event("WAITING", "WAITING"),
        event("POSTED", "POSTED"),
    ]
    return {
        "events": events,
        "totals": {"received": 5, "posted": 1, "ignored": 0, "exceptions": 0, "pending": 3, "waiting": 1},
        "refused": [],
        "ledger": {"balanced": True, "documents": 1, "trial_balance": []},
    }


def test_serve_exits_4_and_says_what_is_unsettled_when_not_drained(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a runtime whose queues do not drain within the timeout
    runtimes: list[FakeRuntime] = []
    collected: list[list[str]] = []

    def factory(**kwargs: Any) -> FakeRuntime:
        runtimes.append(FakeRuntime(**kwargs))
        return runtimes[-1]

    def collect(runtime: FakeRuntime) -> dict[str, Any]:
        collected.append(list(runtime.calls))
        return unsettled_report()

    previous = signal.getsignal(signal.SIGINT)
    # WHEN it is stopped with one Ctrl-C
    status = cli.serve(8000, None, 0.5, "INFO", runtime_factory=factory, collect=collect)
    # THEN serve exits 4 and counts what was not settled
    assert status == cli.EXIT_NOT_DRAINED == 4
    out, err = capsys.readouterr()
    assert "not drained within --drain-timeout 0.5 s: 4 accepted events not settled" in err
    assert "(pending 2, claimed 1, waiting 1)" in err
    assert "billing-sync local run" in out and "not drained" not in out
    # AND the report was read after the workers stopped, before the backend stopped
    assert collected == [["start", "stop_accepting", "drain 0.5", "stop_workers"]]
    assert runtimes[0].calls[-1].startswith("stop")
    assert signal.getsignal(signal.SIGINT) is previous


def test_a_second_ctrl_c_stops_serve_at_once_with_130(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a runtime still draining when Ctrl-C is pressed again
    runtimes: list[FakeRuntime] = []

    def factory(**kwargs: Any) -> FakeRuntime:
        runtimes.append(FakeRuntime(signals_on_drain=1, **kwargs))
        return runtimes[-1]

    def collect(runtime: FakeRuntime) -> dict[str, Any]:
        raise AssertionError("no report on a forced stop")

    previous = signal.getsignal(signal.SIGINT)
    status = cli.serve(8000, None, 30, "INFO", runtime_factory=factory, collect=collect)
    # THEN it stops without waiting for anything, exit status 130
    assert status == cli.EXIT_FORCED == 130
    assert "stop_workers" not in runtimes[0].calls
    assert "stop wait=False" in runtimes[0].calls
    assert "stopped at once" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGINT) is previous


# ---- the CLI as a newcomer meets it ----


def test_version_prints_the_installed_version() -> None:
    from importlib.metadata import version

    result = subprocess.run([*CLI, "--version"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert result.stdout.strip() == f"billing-sync {version('billing-sync')}"


@pytest.mark.parametrize(
    "option",
    [
        ["--log-level", "foo"],
        ["--port", "0"],
        ["--port", "65536"],
        ["--drain-timeout", "0"],
        ["--drain-timeout", "-3"],
    ],
)
def test_a_bad_option_is_refused_before_anything_starts(option: list[str]) -> None:
    started = time.monotonic()
    result = subprocess.run(
        [*CLI, "local", "serve", *option], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert f"error: argument {option[0]}" in result.stderr
    assert "creating the stack" not in result.stderr and result.stdout == ""
    assert time.monotonic() - started < 10


def test_every_command_and_option_has_help() -> None:
    parser = cli._parser()
    pending = [parser]
    while pending:
        current = pending.pop()
        for action in current._actions:
            if action.dest in ("help",):
                continue
            if hasattr(action, "choices") and isinstance(action.choices, dict):  # sub-commands
                for choice in action._choices_actions:  # type: ignore[attr-defined]
                    assert choice.help, f"{current.prog} {choice.dest} has no help"
                pending.extend(action.choices.values())
            else:
                assert action.help, f"{current.prog} {action.option_strings or action.dest} has no help"


def test_serve_stdout_holds_only_the_summary_and_logs_name_their_function(tmp_path: Path) -> None:
    # GIVEN `local serve` at INFO, the functions' JSON logs on
    port = free_port()
    process = subprocess.Popen(
        [*CLI, "local", "serve", "--port", str(port), "--log-level", "INFO", "--drain-timeout", "60"],
        cwd=REPO_ROOT,
        env={
            **os.environ,
            "BILLING_SYNC_STRIPE_WEBHOOK_SECRET": SECRET,
            "BILLING_SYNC_LOCAL_STATE": str(tmp_path / "rt.json"),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = wait_for_listening(process)
        # WHEN a customer arrives and is posted
        for name in ("stripe_customer_created", "stripe_product_created_growth_plan"):
            body = event_payload(load_event(name))
            status, answer = post_webhook(url, body, sign_stripe_payload(body, SECRET, int(time.time())))
            assert status == 200, answer
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr[-3000:]
    # THEN stdout holds the summary and nothing else
    assert "billing-sync local run" in stdout
    assert not [line for line in stdout.splitlines() if line.lstrip().startswith("{")]
    # AND the JSON logs went to stderr, each naming the function that wrote it
    logs = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    accepted = [log for log in logs if log.get("message") == "webhook accepted"]
    processed = [log for log in logs if log.get("message") == "event processed"]
    assert len(accepted) == 2 and len(processed) == 2
    assert all("StripeWebhook" in log["function_name"] for log in accepted)
    assert all("PostToErp" in log["function_name"] for log in processed)
