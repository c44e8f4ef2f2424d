"""`make soak`: a randomized fault soak of the whole pipeline, through the real handlers on moto.

    python -m billing_sync_ops.soak --events 10000 --seed 20261127 --output build/soak.json

A seeded generator (billing_sync_ops.soak_generator) writes coherent Stripe event streams; each event is
delivered 1 to 5 times, shuffled. The run plays what AWS and Stripe would do around the real handlers,
in process against moto (`mock_aws`) holding the synthesised stack's resources, provisioned as the
local runtime provisions them:

- Stripe: signed webhook deliveries to `stripe_webhook.lambda_handler`; a non-2xx answer is delivered
  again later.
- the posting queue's event source mapping: batches of up to 10 received messages, as the SQS event
  shape, to `post_to_erp.lambda_handler`; reported failures come back after the visibility delay the
  handler set; an invocation that crashes returns its whole batch after the queue's visibility timeout;
  the queue's redrive policy moves a message to the exception queue after maxReceiveCount (moto).
  SQS and the functions' `utc_now` run on a virtual clock, so visibility delays pass without waiting.
- the scheduler: `sweep_waiting_room.lambda_handler` on the stack's 15-minute schedule.
- Stripe's API: billing_sync_ops.stripe_double on 127.0.0.1, serving the charges and each payout's
  balance transactions the generator wrote, so payouts are shown to clear and book their fees. The rate
  table holds the sample ECB rates (events/rates/), as the local runtime's does, for EUR and JPY.
- Step Functions: the refund saga's definition, as provisioned, played state by state with its Task
  states invoking `refund_saga.lambda_handler`, Retry and Catch as written.
- an operator: `billing-sync dlq redrive` (billing_sync_ops.ops.dlq.sweep_exceptions) once mid-run and
  after the faults clear, until nothing more posts.

Faults are injected under the handlers at botocore's `BaseClient._make_api_call`, decided by a hash of
the seed, the fault kind, the resource key and how often that key was seen (so one seed injects the same
faults whatever the threads' interleaving): ERP 5xx and ERP timeouts after the ERP committed (the
ledger's conditional create), DynamoDB throttles on the state tables, a worker crash (the process dies)
between the ERP's answer and the lineage write, exception-queue send failures, bus PutEvents failures and
refused entries, raw-archive failures, saga start failures and posting-queue requeue failures; and at the
Stripe API double's answer, 503s to the reads a payout makes.

At the end billing_sync_ops.soak_checker counts `lost`, `double_posted`, `unbalanced` and `unexplained`
from the ledger, lineage and the exception records. Then the same stream is posted into a fresh stack, each
event once, in the order Stripe created it, settled before the next and without faults, and `books_differ`
counts the documents the two ledgers disagree on. The run exits 1 unless all five are 0.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import re
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any
from unittest import mock

from billing_sync.domain.events import derive_event_id
from billing_sync_ops.bench import discarded_stdout
from billing_sync_ops.lambda_runtime import LocalLambdaContext, api_gateway_event, sqs_event
from billing_sync_ops.moto_process import one_snapshot_per_transaction, partition_queries
from billing_sync_ops.ops.rates import load_sample_rates
from billing_sync_ops.runtime import REPO_ROOT, SAMPLE_RATES_FILE
from billing_sync_ops.samples import event_payload
from billing_sync_ops.signing import sign_stripe_payload
from billing_sync_ops.soak_checker import (
    TERMINAL_STATUSES,
    LineageView,
    Outcome,
    Verdict,
    books_differ,
    check,
    ledger_document,
)
from billing_sync_ops.soak_generator import Delivery, GeneratedStream, StripeStreamGenerator, deliveries
from billing_sync_ops.stripe_double import StripeDouble

REGION = "us-east-1"
WEBHOOK_SECRET = "whsec_soak"
WEBHOOK_PATH = "/webhooks/stripe"
CDK_OUT_DIR = REPO_ROOT / "build" / "soak" / "cdk.out"
FALLBACK_CDK_OUT_DIRS = (CDK_OUT_DIR, REPO_ROOT / "build" / "bench" / "cdk.out", REPO_ROOT / "cdk.out")
DEFAULT_SEED = 20261127
BATCH_SIZE = 10
ROUND_SECONDS = 5
"""Virtual seconds a round of deliveries takes."""
SWEEP_EVERY_ROUNDS = 15 * 60 // ROUND_SECONDS
"""The stack's sweep schedule (every 15 minutes) in rounds. Each sweep posts again every waiting event, so
sweeping more often than the stack does only costs time: the waiting room of a 10,000-event run holds
thousands of events delivered before what they need."""

FAULT_RATES: dict[str, float] = {
    "erp_5xx": 0.04,  # the ERP refuses a create or a read with a 500 (nothing committed)
    "erp_timeout_after_commit": 0.04,  # the ERP committed the create, the caller saw a read timeout
    "ddb_throttle": 0.01,  # ProvisionedThroughputExceededException on a state table call
    "crash_before_lineage_write": 0.04,  # the worker dies between the ERP's answer and the lineage write
    "exception_queue_send": 0.5,  # SendMessage to the exception queue fails (parks are few: a higher rate)
    "bus_put_events": 0.05,  # PutEvents raises
    "bus_entry_refused": 0.03,  # PutEvents answers with a failed entry
    "archive_put": 0.02,  # the raw archive's PutObject fails
    "saga_start": 0.15,  # StartExecution fails (a start per refund: a higher rate)
    "posting_requeue": 0.05,  # a release back onto the posting queue fails
    "stripe_api_5xx": 0.2,  # Stripe's API answers 503 to a payout's read (reads are few: a higher rate)
}


REDRIVE_CATEGORIES = ("ERP_TRANSIENT", "INTERNAL", "DEPENDENCY_PENDING")
"""What the operator redrives once the faults clear; VALIDATION and the rest need a fix first."""


class WorkerCrashError(BaseException):
    """The Lambda process dies: not an Exception, so no handler code catches it."""


# ---- virtual time for SQS and the functions ----


class VirtualClock:
    """Real time plus an offset the run moves forward. moto's SQS reads it for visibility and delays, and the
    functions read it through `utc_now` (claim leases, waits): a lease must pass at the pace a crashed
    message's visibility timeout does, or a claim would outlive every receive of its message."""

    def __init__(self) -> None:
        self.offset = 0.0

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    @contextlib.contextmanager
    def installed(self) -> Iterator[VirtualClock]:
        from moto.core.utils import unix_time, unix_time_millis
        from moto.sqs import models

        def virtual_time(dt: Any = None) -> float:
            return unix_time(dt) + (0.0 if dt is not None else self.offset)

        def virtual_time_millis(dt: Any = None) -> float:
            return unix_time_millis(dt) + (0.0 if dt is not None else self.offset * 1000)

        from billing_sync.composition import aws as composition_aws

        clock = self

        class VirtualDatetime(datetime):
            @classmethod
            def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
                return datetime.now(tz) + timedelta(seconds=clock.offset)

        with (
            mock.patch.object(models, "unix_time", virtual_time),
            mock.patch.object(models, "unix_time_millis", virtual_time_millis),
            mock.patch.object(composition_aws, "datetime", VirtualDatetime),
        ):
            yield self


# ---- fault injection ----


def _client_error(code: str, status: int, operation: str) -> Exception:
    from botocore.exceptions import ClientError

    response: Any = {
        "Error": {"Code": code, "Message": f"injected by the soak: {code}"},
        "ResponseMetadata": {"HTTPStatusCode": status, "RequestId": f"soak-{code.lower()}"},
    }
    return ClientError(response, operation)


def _read_timeout(endpoint: str) -> Exception:
    from botocore.exceptions import ReadTimeoutError

    return ReadTimeoutError(endpoint_url=endpoint)


@dataclass
class StackNames:
    ledger_table: str
    lineage_table: str
    state_tables: frozenset[str]
    exception_queue_url: str
    posting_queue_url: str


@dataclass
class FaultInjector:
    """Wraps every botocore call; while `armed`, injects the seeded faults of FAULT_RATES."""

    seed: int
    names: StackNames
    rates: Mapping[str, float] = field(default_factory=lambda: dict(FAULT_RATES))
    armed: bool = False
    injected: Counter[str] = field(default_factory=Counter)
    fired: list[tuple[str, str]] = field(default_factory=list)  # (kind, key) of every injected fault, in order
    creates: Counter[str] = field(default_factory=Counter)  # successful ledger creates per external id
    started_executions: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> input
    _seen: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _fires(self, kind: str, key: str) -> bool:
        rate = self.rates.get(kind, 0.0)
        if not self.armed or rate <= 0:
            return False
        with self._lock:
            self._seen[f"{kind}|{key}"] += 1
            nth = self._seen[f"{kind}|{key}"]
        digest = hashlib.sha256(f"{self.seed}|{kind}|{key}|{nth}".encode()).digest()
        if int.from_bytes(digest[:8], "big") / 2**64 >= rate:
            return False
        with self._lock:
            self.injected[kind] += 1
            self.fired.append((kind, key))
        return True

    @contextlib.contextmanager
    def installed(self) -> Iterator[FaultInjector]:
        from botocore.client import BaseClient

        make_api_call = BaseClient._make_api_call  # type: ignore[attr-defined]
        injector = self

        def call(client: Any, operation: str, params: dict[str, Any]) -> Any:
            service = client.meta.service_model.service_name
            return injector._call(service, operation, params, lambda: make_api_call(client, operation, params))

        answer = StripeDouble.answer

        def stripe_answer(double: StripeDouble, path: str, authorization: str | None) -> tuple[int, Any]:
            if injector._fires("stripe_api_5xx", path.split("&starting_after=")[0]):
                return 503, {"error": {"type": "api_error", "message": "injected by the soak"}}
            return answer(double, path, authorization)

        with (
            mock.patch.object(BaseClient, "_make_api_call", call),
            mock.patch.object(StripeDouble, "answer", stripe_answer),
        ):
            yield self

    def _call(self, service: str, operation: str, params: dict[str, Any], send: Callable[[], Any]) -> Any:
        if service == "dynamodb":
            return self._dynamodb(operation, params, send)
        if service == "sqs" and operation in ("SendMessage", "SendMessageBatch"):
            url = params.get("QueueUrl")
            key = _event_key(str(params.get("MessageBody") or params.get("Entries", [{}])[0].get("MessageBody", "")))
            if url == self.names.exception_queue_url and self._fires("exception_queue_send", key):
                raise _client_error("InternalError", 500, operation)
            if url == self.names.posting_queue_url and self._fires("posting_requeue", key):
                raise _client_error("InternalError", 500, operation)
        if service == "events" and operation == "PutEvents":
            key = _event_key(str(params.get("Entries", [{}])[0].get("Detail", "")))
            if self._fires("bus_put_events", key):
                raise _client_error("InternalException", 500, operation)
            if self._fires("bus_entry_refused", key):
                return {
                    "FailedEntryCount": 1,
                    "Entries": [{"ErrorCode": "InternalFailure", "ErrorMessage": "injected by the soak"}],
                }
        if service == "s3" and operation == "PutObject" and self._fires("archive_put", str(params.get("Key"))):
            raise _client_error("InternalError", 500, operation)
        if service == "stepfunctions" and operation == "StartExecution":
            name = str(params.get("name"))
            if self._fires("saga_start", name):
                raise _client_error("ServiceUnavailable", 503, operation)
            response = send()
            with self._lock:
                self.started_executions.setdefault(name, json.loads(params.get("input") or "{}"))
            return response
        return send()

    def _dynamodb(self, operation: str, params: dict[str, Any], send: Callable[[], Any]) -> Any:
        table = params.get("TableName")
        key = _item_key(params)
        if table == self.names.ledger_table:
            if operation == "PutItem" and "attribute_not_exists" in str(params.get("ConditionExpression")):
                if self._fires("erp_5xx", key):
                    raise _client_error("InternalServerError", 500, operation)
                response = send()  # raises ConditionalCheckFailedException when it exists: not created
                with self._lock:
                    self.creates[key] += 1
                if self._fires("erp_timeout_after_commit", key):
                    raise _read_timeout("https://dynamodb.us-east-1.amazonaws.com/")
                return response
            if operation in ("GetItem", "Query") and self._fires("erp_5xx", f"read|{key}"):
                raise _client_error("InternalServerError", 500, operation)
            return send()
        posted = table == self.names.lineage_table and _writes_posted(operation, params)
        if posted and self._fires("crash_before_lineage_write", key):
            raise WorkerCrashError(f"worker died before writing POSTED lineage for {key}")
        if table in self.names.state_tables and self._fires("ddb_throttle", f"{operation}|{key}"):
            raise _client_error("ProvisionedThroughputExceededException", 400, operation)
        return send()


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _event_key(body: str) -> str:
    """The canonical event id a message or bus entry carries (its own bytes hold timestamps of the moment)."""
    try:
        data = json.loads(body)
    except ValueError:
        return _digest(body)
    for candidate in (data, data.get("detail") if isinstance(data, dict) else None):
        if isinstance(candidate, dict) and isinstance(candidate.get("event_id"), str):
            return str(candidate["event_id"])
    return _digest(body)


def _item_key(params: Mapping[str, Any]) -> str:
    key = params.get("Key") or params.get("Item") or {}
    parts = [str(next(iter(value.values()), "")) for name, value in sorted(key.items()) if name in ("pk", "key")]
    if "event_id" in key:
        parts.append(str(next(iter(key["event_id"].values()), "")))
    if parts:
        return "|".join(parts)
    values = params.get("ExpressionAttributeValues") or {}
    return _digest(json.dumps(values, sort_keys=True, default=str)[:400])


_ASSIGNMENT = re.compile(r"([#\w.]+)\s*=\s*(:\w+)")


def _writes_posted(operation: str, params: Mapping[str, Any]) -> bool:
    """Whether the call writes lineage status POSTED (not merely names POSTED in a condition, as a claim does)."""
    if operation == "PutItem":
        return bool((params.get("Item") or {}).get("status", {}).get("S") == "POSTED")
    if operation == "UpdateItem":
        names = params.get("ExpressionAttributeNames") or {}
        values = params.get("ExpressionAttributeValues") or {}
        update = str(params.get("UpdateExpression") or "")
        return any(
            names.get(name, name) == "status" and values.get(value) == {"S": "POSTED"}
            for name, value in _ASSIGNMENT.findall(update)
        )
    return False


# ---- the refund saga's definition, played ----


class _TaskFailedError(Exception):
    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error = error
        self.cause = cause


_MATH_ADD = re.compile(r"^States\.MathAdd\(\s*(\$[^,]*)\s*,\s*(-?\d+)\s*\)$")


def _path_get(data: Any, path: str) -> Any:
    if path == "$":
        return data
    value = data
    for part in path.removeprefix("$.").split("."):
        value = value[part]
    return value


def _path_set(data: dict[str, Any], path: str | None, value: Any) -> dict[str, Any]:
    if path is None:
        return data
    if path == "$":
        return value if isinstance(value, dict) else {"value": value}
    result = json.loads(json.dumps(data))
    target = result
    parts = path.removeprefix("$.").split(".")
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value
    return result


def _parameters(template: Mapping[str, Any], data: Any) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for name, value in template.items():
        if not name.endswith(".$"):
            result[name] = value
            continue
        if (match := _MATH_ADD.match(value)) is not None:
            result[name[:-2]] = _path_get(data, match.group(1)) + int(match.group(2))
        else:
            result[name[:-2]] = _path_get(data, value)
    return result


def _choice(rule: Mapping[str, Any], data: Any) -> bool:
    value = _path_get(data, rule["Variable"])
    if "BooleanEquals" in rule:
        return bool(value is rule["BooleanEquals"])
    if "NumericGreaterThanPath" in rule:
        return bool(value > _path_get(data, rule["NumericGreaterThanPath"]))
    if "NumericGreaterThan" in rule:
        return bool(value > rule["NumericGreaterThan"])
    if "StringEquals" in rule:
        return bool(value == rule["StringEquals"])
    raise ValueError(f"the soak's state machine player does not know the choice rule {rule}")


@dataclass
class Execution:
    name: str
    state: str
    data: dict[str, Any]
    resume_at: float = 0.0
    attempts: Counter[str] = field(default_factory=Counter)
    status: str = "RUNNING"
    error: str | None = None
    cause: str | None = None


class StateMachinePlayer:
    """Plays a JSONPath definition (Task, Pass, Choice, Wait, Succeed, Fail; Retry and Catch) on a clock."""

    def __init__(self, definition: Mapping[str, Any], invoke: Callable[[dict[str, Any]], Any]) -> None:
        self._definition = definition
        self._invoke = invoke
        self.executions: dict[str, Execution] = {}

    def start(self, name: str, execution_input: dict[str, Any]) -> None:
        if name not in self.executions:
            self.executions[name] = Execution(name, self._definition["StartAt"], execution_input)

    @property
    def running(self) -> list[Execution]:
        return [execution for execution in self.executions.values() if execution.status == "RUNNING"]

    def run_ready(self, now: float) -> int:
        """Plays every running execution whose wait is over until it waits or ends; returns the steps taken."""
        steps = 0
        for execution in self.running:
            while execution.status == "RUNNING" and execution.resume_at <= now:
                self._step(execution, now)
                steps += 1
        return steps

    def _step(self, execution: Execution, now: float) -> None:
        state = self._definition["States"][execution.state]
        kind = state["Type"]
        data = execution.data
        if kind == "Succeed":
            execution.status = "SUCCEEDED"
        elif kind == "Fail":
            execution.status = "FAILED"
            execution.error, execution.cause = state.get("Error"), state.get("Cause")
        elif kind == "Pass":
            result = _parameters(state["Parameters"], data) if "Parameters" in state else state.get("Result", data)
            execution.data = _path_set(data, state.get("ResultPath", "$"), result)
            execution.state = state["Next"]
        elif kind == "Choice":
            execution.state = next(
                (rule["Next"] for rule in state["Choices"] if _choice(rule, data)), state.get("Default", "")
            )
        elif kind == "Wait":
            seconds = _path_get(data, state["SecondsPath"]) if "SecondsPath" in state else state["Seconds"]
            execution.resume_at = now + float(seconds)
            execution.state = state["Next"]
        elif kind == "Task":
            self._task(execution, state)
        else:
            raise ValueError(f"the soak's state machine player does not know {kind} states")

    def _task(self, execution: Execution, state: Mapping[str, Any]) -> None:
        payload = _parameters(state.get("Parameters", {"execution.$": "$"}), execution.data)
        try:
            result = self._invoke(payload)
        except _TaskFailedError as failure:
            execution.attempts[execution.state] += 1
            for retry in state.get("Retry", []):
                if _matches(retry["ErrorEquals"], failure.error):
                    if execution.attempts[execution.state] <= retry.get("MaxAttempts", 3):
                        return  # retried (intervals are not waited: the clock is the soak's)
                    break
            for catch in state.get("Catch", []):
                if _matches(catch["ErrorEquals"], failure.error):
                    error = {"Error": failure.error, "Cause": failure.cause}
                    execution.data = _path_set(execution.data, catch.get("ResultPath", "$"), error)
                    execution.state = catch["Next"]
                    execution.attempts[execution.state] = 0
                    return
            execution.status = "FAILED"
            execution.error, execution.cause = failure.error, failure.cause
            return
        execution.attempts[execution.state] = 0
        execution.data = _path_set(execution.data, state.get("ResultPath", "$"), result)
        if state.get("End"):
            execution.status = "SUCCEEDED"
        else:
            execution.state = state["Next"]


def _matches(names: list[str], error: str) -> bool:
    return error in names or "States.ALL" in names or ("States.TaskFailed" in names and not error.startswith("States."))


# ---- the ledger's change stream ----


class LedgerStreamPlayer:
    """Plays the ledger stream's event source mapping to `release_waiting.lambda_handler`: each shard from its
    start, inserted `DOC#` items only (the template's filter), and on a reported item failure or a failed
    invocation, the next read starts again from the first record not done."""

    def __init__(self, streams: Any, stream_arn: str, batch_size: int, stats: SoakStats) -> None:
        from billing_sync.handlers import release_waiting

        self._streams = streams
        self._arn = stream_arn
        self._batch_size = batch_size
        self._handler = release_waiting.lambda_handler
        self._iterators: dict[str, str] = {}
        self._stats = stats

    @classmethod
    def for_stack(cls, stack: Any, session: Any, ledger_table: str, stats: SoakStats) -> LedgerStreamPlayer | None:
        try:
            function = stack.function_for("release_waiting")
        except KeyError:
            return None
        logical_ids = {logical_id for logical_id, fn in stack.functions.items() if fn is function}
        for mapping in stack.stream_source_mappings:
            if mapping.function_logical_id in logical_ids:
                table = session.client("dynamodb").describe_table(TableName=ledger_table)["Table"]
                arn = table.get("LatestStreamArn") or mapping.stream_arn
                from botocore.config import Config

                # moto routes the streams API by its plain endpoint, not the account-based one
                streams = session.client("dynamodbstreams", config=Config(account_id_endpoint_mode="disabled"))
                return cls(streams, arn, mapping.batch_size, stats)
        return None

    def poll(self) -> int:
        """One read per shard; returns the records handed to the function."""
        description = self._streams.describe_stream(StreamArn=self._arn)["StreamDescription"]
        for shard in description["Shards"]:
            if shard["ShardId"] not in self._iterators:
                self._iterators[shard["ShardId"]] = self._iterator(shard["ShardId"], "TRIM_HORIZON")
        handed = 0
        for shard_id, iterator in list(self._iterators.items()):
            response = self._streams.get_records(ShardIterator=iterator, Limit=self._batch_size)
            records = [
                dict(record, eventSourceARN=self._arn)
                for record in response["Records"]
                if record["eventName"] == "INSERT" and record["dynamodb"]["Keys"]["pk"]["S"].startswith("DOC#")
            ]
            next_iterator = response.get("NextShardIterator") or iterator
            if records:
                handed += len(records)
                self._stats.release_invocations += 1
                try:
                    failures = self._handler(
                        {"Records": records}, LocalLambdaContext("ReleaseWaitingFunction", 60)
                    ).get("batchItemFailures", [])
                except (Exception, WorkerCrashError):
                    failures = [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]
                if failures:
                    self._stats.release_retries += 1
                    first = failures[0]["itemIdentifier"]
                    next_iterator = self._iterator(shard_id, "AT_SEQUENCE_NUMBER", first)
            self._iterators[shard_id] = next_iterator
        return handed

    def _iterator(self, shard_id: str, kind: str, sequence: str | None = None) -> str:
        extra = {"SequenceNumber": sequence} if sequence else {}
        return str(
            self._streams.get_shard_iterator(StreamArn=self._arn, ShardId=shard_id, ShardIteratorType=kind, **extra)[
                "ShardIterator"
            ]
        )


# ---- the run ----

LAMBDA_ENVIRONMENT = {
    "POWERTOOLS_SERVICE_NAME": "billing-sync",
    "POWERTOOLS_METRICS_NAMESPACE": "BillingSync",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_LAMBDA_FUNCTION_NAME": "billing-sync-soak",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
}
_UNDEPLOYED_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_PROFILE", "POWERTOOLS_DEV")


@contextlib.contextmanager
def _saved_environment() -> Iterator[None]:
    """The handlers' environment for the duration; adapters built under it are forgotten afterwards."""
    from billing_sync import composition

    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        composition.reset()


@dataclass
class SoakStats:
    webhook_deliveries: int = 0
    webhook_refusals: Counter[str] = field(default_factory=Counter)
    posting_invocations: int = 0
    posting_records: int = 0
    posting_failures: int = 0
    crashed_invocations: int = 0
    dead_lettered_by_queue: int = 0
    sweeps: int = 0
    saga_steps: int = 0
    saga_task_failures: Counter[str] = field(default_factory=Counter)
    redrives: list[dict[str, Any]] = field(default_factory=list)
    rounds: int = 0
    virtual_seconds: float = 0.0
    release_invocations: int = 0
    release_retries: int = 0
    ended_notices: int = 0
    ended_notice_retries: int = 0
    ended_unrecorded_parked: int = 0
    unsettled: list[dict[str, Any]] = field(default_factory=list)


def stack_template(*, reuse: bool = False) -> tuple[dict[str, Any], str]:
    """The synthesised stack and where it came from: synthesised into build/soak/cdk.out when its inputs
    changed, or with `reuse` the newest template already synthesised (build/soak, build/bench, cdk.out).
    When the CDK app cannot synthesise right now, the newest template already synthesised, said so."""
    from billing_sync_ops.local_stack import SynthesisError, _inline_definition_assets, synthesize_template

    candidates = [d for d in FALLBACK_CDK_OUT_DIRS if (d / "BillingSync.template.json").exists()]

    def newest() -> tuple[dict[str, Any], Path]:
        directory = max(candidates, key=lambda d: (d / "BillingSync.template.json").stat().st_mtime)
        template = json.loads((directory / "BillingSync.template.json").read_text())
        return _inline_definition_assets(template, directory), directory

    if reuse and candidates:
        template, directory = newest()
        return template, f"{directory} (reused)"
    try:
        return synthesize_template(REPO_ROOT, CDK_OUT_DIR), f"synthesised into {CDK_OUT_DIR}"
    except SynthesisError as exc:
        if not candidates:
            raise
        why = str(exc).splitlines()[-1][:300]
        template, directory = newest()
        print(f"[soak] synthesis failed ({why}); using {directory}", file=sys.stderr)
        return template, f"{directory} (synthesis failed: {why})"


class Soak:
    def __init__(
        self,
        *,
        events: int,
        seed: int,
        progress: Callable[[str, int, int], None] | None = None,
        reuse_template: bool = False,
        in_order: bool = False,
        compare_in_order: bool = True,
    ) -> None:
        self.events = events
        self.reuse_template = reuse_template
        self.in_order = in_order
        self.compare_in_order = compare_in_order and not in_order
        self.seed = seed
        self.stats = SoakStats()
        self.clock = VirtualClock()
        self._progress = progress or (lambda phase, done, total: None)
        self._rng = random.Random(seed)

    # -- setup --

    def run(self) -> dict[str, Any]:
        started = time.monotonic()
        stream = StripeStreamGenerator(random.Random(self.seed)).stream(self.events)
        sent = deliveries(stream, random.Random(self.seed + 1))
        template, template_source = stack_template(reuse=self.reuse_template)
        report = self._on_fresh_stack(template, stream, sent)
        main_run = {key: report[key] for key in ("events", "lost", "double_posted", "unbalanced", "unexplained")}
        print(f"[soak] {round(time.monotonic() - started, 1)} s: {json.dumps(main_run)}", file=sys.stderr)
        if self.compare_in_order:
            reference_started = time.monotonic()
            reference = Soak(events=self.events, seed=self.seed, progress=self._progress, in_order=True)
            reference._on_fresh_stack(template, stream, [Delivery(event, 1, 1) for event in stream.events])
            differ = books_differ(self.outcome.documents, reference.outcome.documents)
            report["books_differ"] = len(differ)
            report["in_order"] = {
                **check(reference.outcome).counts(),
                "documents": len(reference.outcome.documents),
                "unsettled": reference.stats.unsettled,
                "seconds": round(time.monotonic() - reference_started, 1),
            }
            if differ:
                report["examples"]["books_differ"] = differ[:20]
        report["template"] = template_source
        report["seconds"] = round(time.monotonic() - started, 1)
        return report

    def _on_fresh_stack(self, template: dict[str, Any], stream: GeneratedStream, sent: list[Delivery]) -> dict:
        from moto import mock_aws

        with _saved_environment(), mock_aws(), discarded_stdout(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Powertools warns of empty metrics: metrics are off here
            return self._run_on_stack(template, stream, sent)

    def _environment(self, stack: Any) -> None:
        from billing_sync import composition

        for name in [*_UNDEPLOYED_VARIABLES, *(n for n in os.environ if n.startswith("POWERTOOLS_"))]:
            os.environ.pop(name, None)
        os.environ.update(LAMBDA_ENVIRONMENT)
        merged: dict[str, str] = {}
        for module in ("stripe_webhook", "post_to_erp", "sweep_waiting_room", "refund_saga", "release_waiting"):
            with contextlib.suppress(KeyError):  # a stack without the function leaves its part out
                merged.update(stack.function_for(module).environment)
        os.environ.update(merged)
        os.environ["STRIPE_API_BASE"] = self._stripe_api.url  # payouts list what they settle from the double
        os.environ["ERP_CIRCUIT_COOL_DOWN_SECONDS"] = "1"  # the breaker's clock is real time, not the soak's
        os.environ["POWERTOOLS_METRICS_DISABLED"] = "true"
        os.environ["POWERTOOLS_LOG_LEVEL"] = "ERROR"
        composition.reset()
        from aws_lambda_powertools.utilities.parameters import base

        base.clear_caches()
        base.DEFAULT_PROVIDERS.clear()

    def _run_on_stack(self, template: dict[str, Any], stream: GeneratedStream, sent: list[Delivery]) -> dict:
        import boto3

        from billing_sync_ops.local_stack import provision

        stack = provision(template, region=REGION, webhook_secrets=[WEBHOOK_SECRET])
        with StripeDouble(objects=stream.api_objects) as self._stripe_api:
            self._environment(stack)
            session = boto3.session.Session(region_name=REGION)
            load_sample_rates(session.client("dynamodb"), str(stack.outputs["MasterDataTableName"]), SAMPLE_RATES_FILE)
            return self._run_with_stripe_api(stack, session, stream, sent)

    def _run_with_stripe_api(self, stack: Any, session: Any, stream: GeneratedStream, sent: list[Delivery]) -> dict:
        self.sqs: Any = session.client("sqs")
        self.dynamodb: Any = session.client("dynamodb")
        sfn: Any = session.client("stepfunctions")
        outputs = {name: value for name, value in stack.outputs.items() if value}
        self.outputs = outputs
        tables = stack.tables
        names = StackNames(
            ledger_table=outputs["LedgerTableName"],
            lineage_table=outputs["LineageTableName"],
            state_tables=frozenset(tables.values()) - {outputs["LedgerTableName"]},
            exception_queue_url=outputs["ExceptionQueueUrl"],
            posting_queue_url=outputs["PostingQueueUrl"],
        )
        self.names = names
        self.queue_arn = self.sqs.get_queue_attributes(QueueUrl=names.posting_queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        saga_arn = outputs["RefundSagaArn"]
        definition = json.loads(sfn.describe_state_machine(stateMachineArn=saga_arn)["definition"])
        self.faults = FaultInjector(self.seed, names)
        self.player = StateMachinePlayer(definition, self._saga_task)
        self._notified: set[str] = set()  # executions whose end the RefundSagaEnded rule has delivered
        from billing_sync.handlers import post_to_erp, refund_saga, stripe_webhook, sweep_waiting_room

        self._webhook = stripe_webhook.lambda_handler
        self._posting = post_to_erp.lambda_handler
        self._sweep = sweep_waiting_room.lambda_handler
        self._saga = refund_saga.lambda_handler
        self._release = LedgerStreamPlayer.for_stack(stack, session, names.ledger_table, self.stats)
        with self.clock.installed(), self.faults.installed():
            if self.in_order:
                self._play_in_order(sent)
            else:
                self._play(sent)
            outcome = self._observe(stream)
        self.outcome = outcome
        verdict = check(outcome)
        return self._report(stream, sent, outcome, verdict)

    # -- the play --

    def _play(self, sent: list[Delivery]) -> None:
        pending: list[Delivery] = list(sent)
        total = len(sent)
        accepted = 0
        redriven_mid_run = False
        self.accepted_ids: set[str] = set()
        self.faults.armed = True
        while pending:
            self.stats.rounds += 1
            for _ in range(min(len(pending), 12)):
                delivery = pending.pop(0)
                if self._deliver(delivery):
                    accepted += 1
                else:
                    # Stripe retries a refused delivery later (backoff: meanwhile others go through).
                    pending.insert(self._rng.randint(min(len(pending), 20), len(pending)), delivery)
            self._post_batches(max_batches=4)
            self._run_sagas()
            if self.stats.rounds % SWEEP_EVERY_ROUNDS == 0:
                self._sweep_waiting_room()
            self.clock.advance(ROUND_SECONDS)
            self._progress("deliveries", accepted, total)
            if not redriven_mid_run and accepted >= total // 2:
                self._redrive("mid-run, faults still on")
                redriven_mid_run = True
        self._progress("deliveries", accepted, total)
        self._drain(label="draining with faults on", sagas=False)
        self.faults.armed = False
        for round_number in range(1, 6):
            self._drain(label=f"faults cleared, round {round_number}", sagas=round_number > 1)
            if self._redrive(f"after the faults cleared, round {round_number}") == 0:
                break
        self._drain(label="settling", sagas=True)

    def _play_in_order(self, sent: list[Delivery]) -> None:
        """The reference books: each event delivered once, in the order Stripe created it, without faults,
        and settled (posted, its saga run) before the next is delivered."""
        self.accepted_ids = set()
        for index, delivery in enumerate(sent, start=1):
            if not self._deliver(delivery):
                self.stats.unsettled.append({"phase": "in order", "refused": delivery.event["id"]})
            self._settle()
            self._progress("in order", index, len(sent))
        self._drain(label="in order, settling", sagas=True)

    def _settle(self, max_rounds: int = 500) -> None:
        """Posts and plays sagas until the posting queue is empty and no saga runs (no sweep: nothing waits)."""
        for _ in range(max_rounds):
            self.stats.rounds += 1
            if self._post_batches(max_batches=8) or self._run_sagas():
                continue
            running = self.player.running
            if not running and self._queue_depth(self.names.posting_queue_url) == 0:
                return
            step = 30.0
            if running:
                step = max(step, min(execution.resume_at for execution in running) - self.clock.offset)
            self.clock.advance(step)

    def _deliver(self, delivery: Delivery) -> bool:
        body = event_payload(delivery.event)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": sign_stripe_payload(body, WEBHOOK_SECRET, int(time.time())),
        }
        event = api_gateway_event(method="POST", path=WEBHOOK_PATH, headers=headers, body=body, source_ip="3.18.12.63")
        self.stats.webhook_deliveries += 1
        try:
            response = self._webhook(event, LocalLambdaContext("StripeWebhookFunction", 10))
        except WorkerCrashError:
            self.stats.webhook_refusals["crashed"] += 1
            return False
        except Exception as exc:  # an unhandled error is API Gateway's 502
            self.stats.webhook_refusals[f"502 {type(exc).__name__}"] += 1
            return False
        status = int(response["statusCode"])
        if 200 <= status < 300:
            self.accepted_ids.add(derive_event_id("stripe", delivery.event["id"]))
            return True
        self.stats.webhook_refusals[str(status)] += 1
        return False

    def _post_batches(self, *, max_batches: int) -> int:
        """Plays the event source mapping: receive, invoke, delete what succeeded. Returns records handled."""
        handled = 0
        for _ in range(max_batches):
            messages: list[dict[str, Any]] = self.sqs.receive_message(
                QueueUrl=self.names.posting_queue_url,
                MaxNumberOfMessages=BATCH_SIZE,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                break
            handled += len(messages)
            self.stats.posting_invocations += 1
            self.stats.posting_records += len(messages)
            try:
                response = self._posting(
                    sqs_event(messages, self.queue_arn), LocalLambdaContext("PostToErpFunction", 60)
                )
            except WorkerCrashError:
                # The invocation died: nothing is deleted, the batch returns after the visibility timeout.
                self.stats.crashed_invocations += 1
                continue
            failed = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
            self.stats.posting_failures += len(failed)
            done = [message for message in messages if message["MessageId"] not in failed]
            for start in range(0, len(done), 10):
                self.sqs.delete_message_batch(
                    QueueUrl=self.names.posting_queue_url,
                    Entries=[
                        {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]}
                        for index, message in enumerate(done[start : start + 10])
                    ],
                )
        return handled

    def _saga_task(self, payload: dict[str, Any]) -> Any:
        self.stats.saga_steps += 1
        try:
            return self._saga(payload, LocalLambdaContext("RefundSagaTasksFunction", 60))
        except WorkerCrashError as exc:
            self.stats.saga_task_failures["Runtime.ExitError"] += 1
            raise _TaskFailedError("Runtime.ExitError", str(exc)) from None
        except Exception as exc:
            name = type(exc).__name__
            self.stats.saga_task_failures[name] += 1
            cause = json.dumps({"errorMessage": str(exc), "errorType": name})
            raise _TaskFailedError(name, cause) from None

    def _run_sagas(self) -> int:
        """Plays the saga executions that can move, and the ledger stream's release of waiting events."""
        for name, execution_input in list(self.faults.started_executions.items()):
            self.player.start(name, execution_input)
        steps = self.player.run_ready(self.clock.offset)
        steps += self._notify_ended_executions()
        if self._release is not None:
            steps += self._release.poll()
        return steps

    def _notify_ended_executions(self) -> int:
        """Plays the RefundSagaEnded rule: each FAILED execution's status change reaches the task function,
        retried (EventBridge and Lambda retry for a day) until the function takes it. Returns the attempts."""
        attempts = 0
        for execution in self.player.executions.values():
            if execution.status != "FAILED" or execution.name in self._notified:
                continue
            attempts += 1
            status_change = {
                "version": "0",
                "source": "aws.states",
                "detail-type": "Step Functions Execution Status Change",
                "detail": {
                    "name": execution.name,
                    "status": execution.status,
                    "input": json.dumps(self.faults.started_executions.get(execution.name, {})),
                    "inputDetails": {"included": True},
                    "error": execution.error,
                    "cause": execution.cause,
                },
            }
            try:
                result = self._saga(status_change, LocalLambdaContext("RefundSagaTasksFunction", 60))
            except (Exception, WorkerCrashError):
                self.stats.ended_notice_retries += 1
                continue
            self._notified.add(execution.name)
            self.stats.ended_notices += 1
            self.stats.ended_unrecorded_parked += bool(result.get("parked"))
        return attempts

    def _sweep_waiting_room(self) -> None:
        self.stats.sweeps += 1
        scheduled = {"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}}
        with contextlib.suppress(Exception, WorkerCrashError):  # EventBridge retries; the next sweep comes anyway
            self._sweep(scheduled, LocalLambdaContext("SweepWaitingRoomFunction", 300))

    def _queue_depth(self, url: str) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
                "ApproximateNumberOfMessagesDelayed",
            ],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())

    def _drain(self, *, label: str, sagas: bool, max_rounds: int = 20000) -> None:
        """Posts, plays sagas and sweeps until the posting queue is empty and (with `sagas`) no saga runs."""
        quiet = 0
        for _ in range(max_rounds):
            self.stats.rounds += 1
            handled = self._post_batches(max_batches=8)
            steps = self._run_sagas()
            if handled or steps:
                quiet = 0
                continue
            queued = self._queue_depth(self.names.posting_queue_url)
            running = self.player.running
            if queued == 0 and not (sagas and running):
                self._sweep_waiting_room()
                if self._queue_depth(self.names.posting_queue_url) == 0:
                    quiet += 1
                    if quiet >= 2:
                        return
            # Nothing visible: move the virtual clock to the next delayed message, or to the next saga's look.
            step = 30.0
            if queued == 0 and running:
                step = max(step, min(execution.resume_at for execution in running) - self.clock.offset)
            self.clock.advance(step)
            self._progress(f"{label}: {queued} queued, {len(running)} sagas running", 0, 0)
        # Reported, not raised: what is stuck is the finding, and the verdicts still count what it left.
        self.stats.unsettled.append({"phase": label, "rounds": max_rounds, **self._stuck()})
        self._progress(f"{label}: did not settle in {max_rounds} rounds", 0, 0)

    def _stuck(self) -> dict[str, Any]:
        """What keeps the pipeline busy: the posting queue's messages (a peek) and the running sagas."""
        armed, self.faults.armed = self.faults.armed, False
        try:
            messages = self.sqs.receive_message(
                QueueUrl=self.names.posting_queue_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=0,
                AttributeNames=["ApproximateReceiveCount"],
            ).get("Messages", [])
            lineage = {}
            for message in messages:
                event_id = _event_key(message["Body"])
                item = self.dynamodb.get_item(TableName=self.names.lineage_table, Key={"pk": {"S": event_id}})
                held = item.get("Item", {})
                lineage[event_id] = {
                    name: held[name].get("S") or held[name].get("N")
                    for name in ("status", "category", "reason", "attempts")
                    if name in held
                }
        finally:
            self.faults.armed = armed
        return {
            "queued": self._queue_depth(self.names.posting_queue_url),
            "messages": [
                {
                    "event": _event_key(message["Body"]),
                    "type": (
                        json.loads(message["Body"]).get("detail-type") if message["Body"].startswith("{") else None
                    ),
                    "receives": message["Attributes"].get("ApproximateReceiveCount"),
                    "lineage": lineage.get(_event_key(message["Body"])),
                }
                for message in messages
            ],
            "running_sagas": [
                {"name": e.name, "state": e.state, "resume_at": e.resume_at} for e in self.player.running[:10]
            ],
            "virtual_seconds": round(self.clock.offset),
        }

    def _redrive(self, why: str) -> int:
        """`billing-sync dlq redrive --category ...` for the categories a cleared fault explains."""
        from billing_sync_ops.ops.dlq import Filters, sweep_exceptions
        from billing_sync_ops.ops.ratelimit import Unlimited
        from billing_sync_ops.ops.target import Target

        filters = Filters(categories=REDRIVE_CATEGORIES)
        target = Target(
            description="soak stack",
            local=True,
            outputs=self.outputs,
            region=REGION,
            session=__import__("boto3").session.Session(region_name=REGION),
        )
        armed, self.faults.armed = self.faults.armed, False  # the operator's own calls are not faulted
        try:
            with open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet):
                result = sweep_exceptions(
                    target, filters, action="redrive", dry_run=False, limit=None, limiter=Unlimited()
                )
        finally:
            self.faults.armed = armed
        outcomes = Counter(item["result"] for item in result.items)
        self.stats.redrives.append({"when": why, **dict(outcomes), "left_in_queue": result.kept})
        return outcomes.get("redriven", 0)

    # -- the verdict --

    def _observe(self, stream: GeneratedStream) -> Outcome:
        from billing_sync.aws.exception_queue import decode_exception_message

        lineage: dict[str, LineageView] = {}
        documents = []
        erp_ids: set[str] = set()
        for item in self._scan(self.names.lineage_table):
            lineage[item["pk"]["S"]] = LineageView(
                status=item["status"]["S"],
                erp_document_ids=tuple(value["S"] for value in item.get("erp_document_ids", {}).get("L", [])),
                category=item.get("category", {}).get("S"),
            )
        for item in self._scan(self.names.ledger_table):
            if "document_id" in item:
                erp_ids.add(item["document_id"]["S"])
            if item["pk"]["S"].startswith("DOC#"):
                documents.append(ledger_document(item))
        # Open exceptions only: one closed by a redrive explains nothing unless the event settled since.
        exception_records = {
            item["pk"]["S"]
            for item in self._scan(self.outputs["ExceptionTableName"])
            if item.get("status", {}).get("S") == "OPEN"
        }
        self.exception_queue_depth = 0
        seen: set[str] = set()
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=self.names.exception_queue_url, MaxNumberOfMessages=10, VisibilityTimeout=600
            ).get("Messages", [])
            fresh = [message for message in batch if message["MessageId"] not in seen]
            if not fresh:
                break
            for message in fresh:
                seen.add(message["MessageId"])
                exception_records.add(decode_exception_message(message["Body"]).event_id)
        self.exception_queue_depth = len(seen)
        return Outcome(
            generated={derive_event_id("stripe", event["id"]) for event in stream.events},
            accepted=set(self.accepted_ids),
            documents=documents,
            lineage=lineage,
            exception_records=exception_records,
            creates=Counter({key.removeprefix("DOC#"): n for key, n in self.faults.creates.items()}),
            erp_ids=erp_ids,
        )

    def _scan(self, table: str) -> Iterator[dict[str, Any]]:
        for page in self.dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
            yield from page["Items"]

    def _report(self, stream: GeneratedStream, sent: list[Delivery], outcome: Outcome, verdict: Verdict) -> dict:
        generated = outcome.generated
        stripe_ids = {derive_event_id("stripe", e["id"]): f"{e['type']} {e['id']}" for e in stream.events}
        statuses = Counter(outcome.lineage[event_id].status for event_id in generated if event_id in outcome.lineage)
        categories = Counter(
            outcome.lineage[event_id].category or "none"
            for event_id in generated
            if event_id in outcome.lineage and outcome.lineage[event_id].status == "EXCEPTION"
        )
        parked_not_terminal = sorted(
            f"{event_id} ({stripe_ids.get(event_id, '?')}): lineage {outcome.lineage[event_id].status}"
            for event_id in generated & outcome.exception_records
            if event_id in outcome.lineage and outcome.lineage[event_id].status not in TERMINAL_STATUSES
        )
        return {
            **verdict.counts(),
            "seed": self.seed,
            "parked_but_lineage_not_terminal": len(parked_not_terminal),
            "parked_but_lineage_not_terminal_examples": parked_not_terminal[:20],
            "deliveries": len(sent),
            "webhook_deliveries_including_retries": self.stats.webhook_deliveries,
            "webhook_refusals": dict(sorted(self.stats.webhook_refusals.items())),
            "accepted_events": len(outcome.accepted & generated),
            "faults_injected": {kind: self.faults.injected.get(kind, 0) for kind in FAULT_RATES},
            "fault_rates": dict(FAULT_RATES),
            "event_kinds": stream.kinds(),
            "lineage_outcomes": dict(sorted(statuses.items())),
            "exceptions_by_category": dict(sorted(categories.items())),
            "exception_records": len(outcome.exception_records & generated),
            "exception_queue_depth_at_end": self.exception_queue_depth,
            "documents": len(outcome.documents),
            "documents_by_kind": dict(sorted(Counter(d.kind for d in outcome.documents).items())),
            "posting": {
                "invocations": self.stats.posting_invocations,
                "records": self.stats.posting_records,
                "reported_failures": self.stats.posting_failures,
                "crashed_invocations": self.stats.crashed_invocations,
            },
            "sweeps": self.stats.sweeps,
            "ledger_stream": {
                "played": self._release is not None,
                "invocations": self.stats.release_invocations,
                "retried_batches": self.stats.release_retries,
            },
            "saga": {
                "executions": len(self.player.executions),
                "by_status": dict(Counter(e.status for e in self.player.executions.values())),
                "task_invocations": self.stats.saga_steps,
                "task_failures": dict(sorted(self.stats.saga_task_failures.items())),
                "ended_notices": self.stats.ended_notices,
                "ended_notice_retries": self.stats.ended_notice_retries,
                "ended_unrecorded_parked": self.stats.ended_unrecorded_parked,
            },
            "redrives": self.stats.redrives,
            "unsettled": self.stats.unsettled,
            "rounds": self.stats.rounds,
            "virtual_seconds": round(self.clock.offset),
            "examples": {
                name: [f"{found} ({stripe_ids[found]})" if found in stripe_ids else found for found in listed]
                for name, listed in verdict.examples().items()
            },
            "traces": {
                event_id: self._trace(event_id)
                for event_id in sorted({found for listed in verdict.examples().values() for found in listed})[:10]
            },
        }

    def _trace(self, event_id: str) -> dict[str, Any]:
        """What happened to one event that did not settle: the faults keyed on it and its saga executions."""
        return {
            "faults": [f"{kind} on {key}" for kind, key in self.faults.fired if event_id in key],
            "saga_executions": [
                {"name": e.name, "status": e.status, "state": e.state, "attempts": dict(e.attempts)}
                for e in self.player.executions.values()
                if e.name.startswith(event_id)
            ],
        }


# ---- command line ----


@contextlib.contextmanager
def _progress_reporter(enabled: bool) -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar on stderr when rich is installed, else a plain progress line."""
    if not enabled:
        yield lambda phase, done, total: None
        return
    try:
        if not sys.stderr.isatty():
            raise ImportError("a plain line suits a log file better than a bar")
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    except ImportError:
        last = [0.0]

        def plain(phase: str, done: int, total: int) -> None:
            if time.monotonic() - last[0] >= 10 or (total and done == total):
                last[0] = time.monotonic()
                print(f"[soak] {phase}: {done}/{total}" if total else f"[soak] {phase}", file=sys.stderr, flush=True)

        yield plain
        return
    bar = Progress(
        TextColumn("[soak] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(file=sys.stderr),
        transient=False,
    )
    task = bar.add_task("starting", total=None)
    with bar:

        def update(phase: str, done: int, total: int) -> None:
            if total:
                bar.update(task, description=phase, completed=done, total=total)
            else:
                bar.update(task, description=phase)

        yield update


def run_soak(*, events: int, seed: int, show_progress: bool = False, reuse_template: bool = False) -> dict[str, Any]:
    """Runs the soak; `reuse_template` takes the newest template already synthesised instead of synthesising."""
    with _progress_reporter(show_progress) as progress:
        return Soak(events=events, seed=seed, progress=progress, reuse_template=reuse_template).run()


SUMMARY_KEYS = ("events", "lost", "double_posted", "unbalanced", "unexplained", "books_differ", "seed", "seconds")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="billing_sync_ops.soak", description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "build" / "soak.json")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    # moto copies a whole table for each item of a transaction; its tables grow with the run, so without one
    # copy per transaction a long soak slows down steadily (the copies are identical: nothing else changes).
    one_snapshot_per_transaction()
    partition_queries()  # a Query reads its partition, not the whole table: the waiting room grows to thousands
    report = run_soak(events=args.events, seed=args.seed, show_progress=not args.no_progress)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    summary = {key: report[key] for key in SUMMARY_KEYS} | {"faults_injected": report["faults_injected"]}
    print(json.dumps(summary, indent=1))
    print(f"[soak] wrote {args.output}", file=sys.stderr)
    if report["unsettled"]:
        print(f"[soak] the pipeline did not settle: {json.dumps(report['unsettled'])[:2000]}", file=sys.stderr)
    failed = any(
        report[key] for key in ("lost", "double_posted", "unbalanced", "unexplained", "books_differ", "unsettled")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
