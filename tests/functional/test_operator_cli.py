"""Operator commands (`dlq`, `replay`, `mapping check`) against one local runtime found by its discovery file."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from billing_sync import composition
from billing_sync.aws.exception_queue import SqsExceptionQueue
from billing_sync.aws.exception_store import DynamoExceptionStore
from billing_sync.domain.errors import ExceptionCategory
from billing_sync.domain.events import derive_event_id
from billing_sync.erp.ledger import DynamoLedgerErpClient
from billing_sync.settings import DEFAULT_MAPPING_FILE
from billing_sync.state.dynamo import DynamoLineageStore
from billing_sync_ops.demo import EVENTS_DIR, send_samples
from billing_sync_ops.ops import add_commands, run
from billing_sync_ops.ops.discovery import DISCOVERY_ENV, remove_discovery, write_discovery
from billing_sync_ops.ops.ratelimit import TokenBucket
from billing_sync_ops.runtime import REPO_ROOT, LocalRuntime

pytestmark = pytest.mark.infra

INVOICE_SAMPLES = (
    "stripe_customer_created",
    "stripe_product_created_growth_plan",
    "stripe_price_created_growth_plan",
    "stripe_product_created_onboarding",
    "stripe_price_created_onboarding",
    "stripe_invoice_finalized",
)


def _source_event_id(sample: str) -> str:
    return str(json.loads((EVENTS_DIR / f"{sample}.json").read_text())["id"])


INVOICE_EVENT_ID = derive_event_id("stripe", _source_event_id("stripe_invoice_finalized"))


def cli(*argv: str) -> tuple[int, dict[str, Any]]:
    """Runs an operator command in-process; returns its exit code and its one JSON object."""
    parser = argparse.ArgumentParser(prog="billing-sync")
    add_commands(parser.add_subparsers(dest="area", required=True))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = run(parser.parse_args([*argv, "--json"]))
    return code, json.loads(out.getvalue())


class Stack:
    """The local runtime with the clients and stores a test reads through."""

    def __init__(self, runtime: LocalRuntime, started: datetime) -> None:
        self.runtime = runtime
        self.started = started
        outputs = runtime.stack.outputs
        dynamodb = runtime._session.client("dynamodb")
        self.sqs = runtime.sqs
        self.s3 = runtime._session.client("s3")
        self.exception_queue_url = str(outputs["ExceptionQueueUrl"])
        self.bucket = str(outputs["RawArchiveBucketName"])
        self.store = DynamoExceptionStore(dynamodb, str(outputs["ExceptionTableName"]))
        self.lineage = DynamoLineageStore(dynamodb, str(outputs["LineageTableName"]))
        self.ledger = DynamoLedgerErpClient(dynamodb, str(outputs["LedgerTableName"]))
        self.queue = SqsExceptionQueue(self.sqs, self.exception_queue_url, self.store)

    def drain(self) -> None:
        assert self.runtime.drain(timeout_seconds=60)

    def documents(self) -> int:
        return sum(1 for _ in self.ledger.journals())

    def depth(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.exception_queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])

    def open_ids(self) -> list[str]:
        return sorted(record.event_id for record in self.store.open())


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    saved = os.environ.get(DISCOVERY_ENV)
    os.environ[DISCOVERY_ENV] = str(tmp_path_factory.mktemp("local") / "runtime.json")
    started = datetime.now(UTC) - timedelta(seconds=2)
    try:
        with LocalRuntime(work_dir=Path("build/local"), sweep_interval_seconds=3600) as runtime:
            write_discovery(runtime)
            yield Stack(runtime, started)
            remove_discovery()
    finally:
        if saved is None:
            os.environ.pop(DISCOVERY_ENV, None)
        else:
            os.environ[DISCOVERY_ENV] = saved


@pytest.fixture(scope="module")
def mapping_redrive(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """An invoice parked for a missing tax account, shown, then redriven once the mapping is fixed."""
    # GIVEN a mapping without any tax_payable account, and an invoice with tax
    broken = json.loads(DEFAULT_MAPPING_FILE.read_text())
    del broken["default_accounts"]["tax_payable"]
    broken["rules"] = [rule for rule in broken["rules"] if "tax_payable" not in rule.get("accounts", {})]
    broken_file = tmp_path_factory.mktemp("mapping") / "account_mapping.json"
    broken_file.write_text(json.dumps(broken))
    os.environ["MAPPING_FILE"] = str(broken_file)
    composition.reset()
    try:
        send_samples(stack.runtime, INVOICE_SAMPLES)
        stack.drain()
    finally:
        os.environ.pop("MAPPING_FILE")
        composition.reset()
    parked = stack.store.get(INVOICE_EVENT_ID)
    _, listing = cli("dlq", "list", "--local")
    show_code, shown = cli("dlq", "show", INVOICE_EVENT_ID, "--local")
    documents_before = stack.documents()
    # WHEN the mapping is fixed (restored above) and MAPPING exceptions are redriven
    code, summary = cli("dlq", "redrive", "--category", "MAPPING", "--local")
    stack.drain()
    return {
        "parked": parked,
        "listing": listing,
        "show": (show_code, shown),
        "redrive": (code, summary),
        "documents_before": documents_before,
        "broken_file": broken_file,
    }


def test_a_mapping_exception_is_stored_then_redriven_into_one_document(
    stack: Stack, mapping_redrive: dict[str, Any]
) -> None:
    # GIVEN the invoice parked as MAPPING, naming the missing key (fixture)
    assert mapping_redrive["parked"] is not None
    record, bookkeeping = mapping_redrive["parked"]
    assert (record.category, bookkeeping["status"]) == ("MAPPING", "OPEN")
    assert record.missing_key and record.missing_key.startswith("tax_payable[")
    # THEN the redrive resent exactly that invoice, and it posted once
    code, summary = mapping_redrive["redrive"]
    assert code == 0
    assert (summary["selected"], summary["redriven"], summary["failed"]) == (1, 1, 0)
    assert [item["event_id"] for item in summary["items"]] == [INVOICE_EVENT_ID]
    lineage = stack.lineage.get(INVOICE_EVENT_ID)
    assert lineage is not None and lineage.status == "POSTED"
    assert len(lineage.erp_document_ids) == 1
    assert stack.documents() == mapping_redrive["documents_before"] + 1
    # AND lineage and the store say who redrove it and how
    caller = stack.store.get(INVOICE_EVENT_ID)[1]["closed_by"]
    assert stack.store.get(INVOICE_EVENT_ID)[1]["status"] == "REDRIVEN"
    assert [entry for entry in lineage.redrives if f"by {caller}: dlq redrive category=MAPPING" in entry]
    assert INVOICE_EVENT_ID not in stack.open_ids()


def test_dlq_list_and_show_json_shapes(mapping_redrive: dict[str, Any]) -> None:
    # GIVEN the listing and the show of the parked invoice taken before the redrive (fixture)
    listing = mapping_redrive["listing"]
    show_code, shown = mapping_redrive["show"]
    # THEN list counts open exceptions by category, source and type with the oldest age, and queue depth
    assert listing["command"] == "dlq list" and listing["indexed"] is True
    assert listing["open"]["by_category"] == {"MAPPING": 1}
    [group] = listing["open"]["groups"]
    assert (group["category"], group["source"], group["event_type"], group["count"]) == (
        "MAPPING",
        "stripe",
        "invoice.issued",
        1,
    )
    assert group["oldest_age_seconds"] >= 0 and "oldest_first_seen" in group
    [queue] = listing["queues"]
    assert queue["output"] == "ExceptionQueueUrl" and queue["approximate_messages"] >= 1
    assert "unindexed_approximate" in listing
    # AND show gives the record, lineage trail, reason and what to do, naming the missing key
    assert show_code == 0
    assert shown["event_id"] == INVOICE_EVENT_ID
    assert shown["record"]["category"] == "MAPPING"
    assert shown["lineage"]["status"] == "EXCEPTION" and "exception" in shown["lineage"]["checkpoints"]
    assert shown["missing_key"] in shown["guidance"]
    assert "billing-sync mapping check FILE" in shown["commands"]
    assert shown["store"]["status"] == "OPEN" and shown["reason"]


def test_redriving_an_event_already_posted_makes_no_second_document(
    stack: Stack, mapping_redrive: dict[str, Any]
) -> None:
    # GIVEN the posted invoice parked again (as a duplicate delivery could be)
    record, _ = stack.store.get(INVOICE_EVENT_ID)
    stack.queue.send(record)
    documents = stack.documents()
    # WHEN it is redriven by id
    code, summary = cli("dlq", "redrive", "--event-id", INVOICE_EVENT_ID, "--local")
    stack.drain()
    # THEN it was resent, the claim saw it posted, and the ledger holds no second document
    assert (code, summary["redriven"]) == (0, 1)
    assert stack.documents() == documents
    assert len(stack.lineage.get(INVOICE_EVENT_ID).erp_document_ids) == 1


def test_dry_run_changes_nothing(stack: Stack, mapping_redrive: dict[str, Any]) -> None:
    # GIVEN a parked exception
    record, _ = stack.store.get(INVOICE_EVENT_ID)
    stack.queue.send(record.model_copy(update={"category": ExceptionCategory.ERP_TRANSIENT}))
    depth, open_ids, documents = stack.depth(), stack.open_ids(), stack.documents()
    redrives = stack.lineage.get(INVOICE_EVENT_ID).redrives
    # WHEN a redrive of everything is dry-run
    code, summary = cli("dlq", "redrive", "--dry-run", "--local")
    stack.drain()
    # THEN it lists what it would redrive and changes no queue, store, lineage or ledger
    assert code == 0 and summary["dry_run"] is True
    assert {item["result"] for item in summary["items"]} == {"would redrive"}
    assert INVOICE_EVENT_ID in [item["event_id"] for item in summary["items"]]
    assert (stack.depth(), stack.open_ids(), stack.documents()) == (depth, open_ids, documents)
    assert stack.lineage.get(INVOICE_EVENT_ID).redrives == redrives
    # cleanup: the real redrive (already posted, so no document)
    assert cli("dlq", "redrive", "--event-id", INVOICE_EVENT_ID, "--local")[0] == 0
    stack.drain()


def test_a_malformed_message_is_reported_and_does_not_stop_the_redrive(
    stack: Stack, mapping_redrive: dict[str, Any]
) -> None:
    # GIVEN an unreadable message, then a message the posting queue's redrive policy moved (not indexed)
    bad = stack.sqs.send_message(QueueUrl=stack.exception_queue_url, MessageBody="{not json")["MessageId"]
    record, _ = stack.store.get(INVOICE_EVENT_ID)
    envelope = {"source": "billing-sync", "detail-type": record.event_type, "detail": record.event}
    stack.sqs.send_message(QueueUrl=stack.exception_queue_url, MessageBody=json.dumps(envelope))
    documents = stack.documents()
    # WHEN everything is redriven
    code, summary = cli("dlq", "redrive", "--local")
    stack.drain()
    # THEN the unreadable message is listed by id and left in the queue; the other was redriven
    assert code == 0
    assert [message["message_id"] for message in summary["unreadable"]] == [bad]
    assert [(item["event_id"], item["result"]) for item in summary["items"]] == [(INVOICE_EVENT_ID, "redriven")]
    assert summary["left_in_queue"] == 1 and stack.depth() == 1
    assert stack.documents() == documents
    # cleanup
    for message in stack.sqs.receive_message(QueueUrl=stack.exception_queue_url, MaxNumberOfMessages=10)["Messages"]:
        stack.sqs.delete_message(QueueUrl=stack.exception_queue_url, ReceiptHandle=message["ReceiptHandle"])


def test_replay_of_a_time_range_publishes_only_what_never_posted(stack: Stack, mapping_redrive: dict[str, Any]) -> None:
    # GIVEN the posted invoice and its master data in the archive, and an archived event that never went further
    never_posted = "stripe_customer_created_kw"
    source_event_id = _source_event_id(never_posted)
    stack.s3.put_object(
        Bucket=stack.bucket,
        Key=f"raw/stripe/{source_event_id}.json",
        Body=(EVENTS_DIR / f"{never_posted}.json").read_bytes(),
        ContentType="application/json",
    )
    documents = stack.documents()
    start = (stack.started - timedelta(seconds=1)).isoformat()
    end = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
    # WHEN the range is replayed
    code, summary = cli("replay", "--source", "stripe", "--from", start, "--to", end, "--local")
    stack.drain()
    # THEN only the missing event was published, and it posted; the others are reported as posted
    assert code == 0
    published = [item["source_event_id"] for item in summary["items"] if item["result"] == "published"]
    assert published == [source_event_id]
    skipped = {item["source_event_id"] for item in summary["items"] if item["result"] == "skipped (posted)"}
    assert {_source_event_id(sample) for sample in INVOICE_SAMPLES} <= skipped
    assert stack.lineage.get(derive_event_id("stripe", source_event_id)).status == "POSTED"
    assert stack.documents() == documents


def test_purge_needs_a_filter_and_confirmation(stack: Stack) -> None:
    # GIVEN a running local stack
    # WHEN purge is asked without --confirm, or without a filter
    without_confirm = run(_parse("dlq", "purge", "--category", "MAPPING", "--local"))
    without_filter = run(_parse("dlq", "purge", "--confirm", "--local"))
    # THEN both are refused as bad usage
    assert (without_confirm, without_filter) == (2, 2)


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="billing-sync")
    add_commands(parser.add_subparsers(dest="area", required=True))
    return parser.parse_args(list(argv))


def test_end_to_end_in_a_subprocess_finds_the_runtime_by_its_discovery_file(
    stack: Stack, mapping_redrive: dict[str, Any]
) -> None:
    # GIVEN the discovery file of the running runtime
    command = [sys.executable, "-m", "billing_sync_ops.ops"]
    env = {**os.environ, "PYTHONPATH": f"{REPO_ROOT / 'functions'}{os.pathsep}{REPO_ROOT}"}
    # WHEN another process lists, shows and checks a mapping
    listing = subprocess.run([*command, "dlq", "list", "--json"], env=env, capture_output=True, text=True)
    shown = subprocess.run(
        [*command, "dlq", "show", _source_event_id("stripe_invoice_finalized"), "--local"],
        env=env,
        capture_output=True,
        text=True,
    )
    check = subprocess.run(
        [*command, "mapping", "check", str(mapping_redrive["broken_file"]), "--json"],
        env=env,
        capture_output=True,
        text=True,
    )
    lost = subprocess.run(
        [*command, "dlq", "list", "--local"],
        env={**env, DISCOVERY_ENV: str(REPO_ROOT / "build" / "no-such-runtime.json")},
        capture_output=True,
        text=True,
    )
    # THEN it reaches the same stack, prints human text without --json, and says when there is no target
    assert listing.returncode == 0, listing.stderr
    assert json.loads(listing.stdout)["open"]["total"] == 0
    assert shown.returncode == 0 and f"event {INVOICE_EVENT_ID}" in shown.stdout and "redrive:" in shown.stdout
    assert check.returncode == 0
    assert json.loads(check.stdout)["roles_without_default"] == [{"role": "tax_payable", "only_where": []}]
    assert lost.returncode == 3 and "no local runtime" in lost.stderr


def test_mapping_check_reports_errors_clearly(tmp_path: Path) -> None:
    # GIVEN a mapping with a rule naming an unknown entity and a missing version
    mapping = json.loads(DEFAULT_MAPPING_FILE.read_text())
    mapping["rules"].append({"match": {"legal_entity": "XX99"}, "accounts": {"revenue": "4000"}})
    del mapping["version"]
    path = tmp_path / "mapping.json"
    path.write_text(json.dumps(mapping))
    # WHEN it is checked
    code, report = cli("mapping", "check", str(path))
    # THEN it fails, naming each problem by location
    assert code == 1 and report["valid"] is False
    assert [error["location"] for error in report["errors"]] == ["version"]
    assert cli("mapping", "check", str(DEFAULT_MAPPING_FILE))[0] == 0


def test_token_bucket_sends_at_most_rate_per_one_second_window() -> None:
    # GIVEN a token bucket of 7 per second on a fake clock
    now = [100.0]
    bucket = TokenBucket(7, clock=lambda: now[0], sleep=lambda seconds: now.__setitem__(0, now[0] + seconds))
    # WHEN 100 sends go through it, some after an idle pause
    sends = []
    for index in range(100):
        if index == 50:
            now[0] += 3.3
        bucket.acquire()
        sends.append(now[0])
    # THEN no one-second window, fixed or sliding, holds more than 7
    windows: dict[int, int] = {}
    for moment in sends:
        windows[int(moment)] = windows.get(int(moment), 0) + 1
    assert max(windows.values()) <= 7
    assert all(sends[i + 7] - sends[i] >= 1.0 - 1e-9 for i in range(len(sends) - 7))
    assert sends[-1] - sends[0] < 100 / 7 + 3.3 + 1
