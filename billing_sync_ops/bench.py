"""`make bench`: the whole cold path, AWS calls and DynamoDB writes per event, warm CPU and log bytes per event,
and dollars per million events (billing_sync_ops.cost).

Everything is measured in one run on this machine: each handler's first invocation in fresh interpreters
(Python 3.13 from build/py313-runtime when `make cold-path-venv` could build it), the AWS paths in
process against moto (`mock_aws`) holding the synthesised stack's resources, provisioned as the local
runtime provisions them, with the real handlers, their environments from the template and the real
composition roots. Counts are counted by wrapping botocore's `BaseClient._make_api_call`, which every
client call goes through. `local_runtime_efficiency` also starts `billing-sync local serve` in a child
process on 127.0.0.1 and sends it signed webhooks from several threads.

    python -m billing_sync_ops.bench --output build/bench.json [--quick]
    python -m billing_sync_ops.bench --only local_runtime   # local_runtime_efficiency alone, about 2 minutes

Exits 1 when a phase's own correctness check fails (a refused webhook, an event not posted); a missed
target is reported in `targets`, not as a failure.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from unittest import mock

from billing_sync_ops.lambda_runtime import LocalLambdaContext, api_gateway_event, sqs_event
from billing_sync_ops.local_stack import provision, synthesize_template
from billing_sync_ops.runtime import REPO_ROOT
from billing_sync_ops.samples import (
    CATALOGUE_OF_BUILT_INVOICES,
    event_payload,
    invoice_event,
    invoice_payment_event,
    load_event,
    with_event_id,
)
from billing_sync_ops.signing import sign_stripe_payload

HANDLER_MODULES = (
    "billing_sync.handlers.stripe_webhook",
    "billing_sync.handlers.stripe_partner_events",
    "billing_sync.handlers.post_to_erp",
)
BASELINE_MODULE = "boto3"
FUNCTIONS_DIR = REPO_ROOT / "functions"
CDK_OUT_DIR = REPO_ROOT / "build" / "bench" / "cdk.out"
REGION = "us-east-1"
ACCOUNT = "123456789012"
WEBHOOK_SECRET = "whsec_bench"
WEBHOOK_PATH = "/webhooks/stripe"
WARM_UP_EVENTS = 20
POSTING_BATCH_SIZE = 10
INVOICES_PER_CUSTOMER = 4

# What infra/function_factory.py gives every function, plus what the Lambda service itself sets.
LAMBDA_ENVIRONMENT = {
    "POWERTOOLS_SERVICE_NAME": "billing-sync",
    "POWERTOOLS_METRICS_NAMESPACE": "BillingSync",
    "POWERTOOLS_LOG_LEVEL": "INFO",
    "AWS_REGION": REGION,
    "AWS_DEFAULT_REGION": REGION,
    "AWS_LAMBDA_FUNCTION_NAME": "billing-sync-bench",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
}
# Variables that would point the AWS paths elsewhere or make Powertools lighter than deployed.
_UNDEPLOYED_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_PROFILE", "POWERTOOLS_DEV")

TARGETS = {
    "cold_path_ratio": 1.3,
    "usd_per_million_events": 8.0,
    "batch10_over_single": 1.5,
    "ddb_round_trips_per_posted_event": 2,
    "ddb_writes_per_posted_event": 2,
    "local_runtime_efficiency": 1.0,
}
AT_LEAST = frozenset({"local_runtime_efficiency"})
"""Targets met by reaching them from below (a rate); every other target is a ceiling."""
PARTS = ("local_runtime",)
"""Phases `--only` runs by themselves."""

DDB_WRITE_OPERATIONS = ("PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems")


class BenchCheckFailed(Exception):
    """A phase's own correctness check failed, so its figures mean nothing."""


def _progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise BenchCheckFailed(message)


# ---- imports in fresh interpreters ----


def _lambda_process_environment(pythonpath: Path, *, write_bytecode: bool = True) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("POWERTOOLS_", "PYTHON")) and name not in _UNDEPLOYED_VARIABLES
    }
    env.update(LAMBDA_ENVIRONMENT, PYTHONPATH=str(pythonpath))
    if not write_bytecode:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def import_microseconds(module: str, env: Mapping[str, str]) -> int:
    """Cumulative `-X importtime` microseconds of `import <module>` in a fresh interpreter."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        env=dict(env),
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BenchCheckFailed(f"`import {module}` failed:\n{result.stderr[-2000:]}")
    for line in reversed(result.stderr.splitlines()):
        if line.startswith("import time:"):
            _, cumulative, name = line.removeprefix("import time:").split("|")
            if name.strip() == module:
                return int(cumulative)
    raise BenchCheckFailed(f"no importtime line for {module}")


def measure_imports(runs: int) -> dict[str, Any]:
    compiled_env = _lambda_process_environment(FUNCTIONS_DIR)
    with tempfile.TemporaryDirectory(prefix="bench-asset-") as asset_dir:
        # The Lambda asset excludes *.pyc and /var/task is read-only, so billing_sync compiles on every cold start.
        asset = Path(asset_dir)
        shutil.copytree(
            FUNCTIONS_DIR / "billing_sync",
            asset / "billing_sync",
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
        uncompiled_env = _lambda_process_environment(asset, write_bytecode=False)
        jobs = [(BASELINE_MODULE, BASELINE_MODULE, compiled_env)]
        jobs += [(module, module, compiled_env) for module in HANDLER_MODULES]
        jobs += [(f"uncompiled:{module}", module, uncompiled_env) for module in HANDLER_MODULES]
        samples: dict[str, list[int]] = {label: [] for label, _, _ in jobs}
        for _, module, env in jobs:
            import_microseconds(module, env)  # discarded: writes bytecode caches, fills the page cache
        for run in range(runs):
            # Alternating the order spreads drift (thermal, other load) over baseline and handlers alike.
            for label, module, env in jobs if run % 2 == 0 else reversed(jobs):
                samples[label].append(import_microseconds(module, env))
            _progress(f"imports: round {run + 1}/{runs}")
    medians = {label: int(statistics.median(values)) for label, values in samples.items()}
    baseline = medians[BASELINE_MODULE]
    ratios = {module: round(medians[module] / baseline, 3) for module in HANDLER_MODULES}
    return {
        "handler_import_ratio": max(ratios.values()),
        "handler_import_ratios": ratios,
        "handler_import_us": {module: medians[module] for module in HANDLER_MODULES},
        "boto3_import_us": baseline,
        "handler_import_us_without_bytecode": {module: medians[f"uncompiled:{module}"] for module in HANDLER_MODULES},
        "handler_import_ratio_without_bytecode": round(
            max(medians[f"uncompiled:{module}"] for module in HANDLER_MODULES) / baseline, 3
        ),
        "import_samples_us": samples,
    }


# ---- the whole cold path in fresh interpreters ----

# Run with `python -c`, so it needs nothing but the function's runtime dependencies. Handler mode imports the
# handler and invokes it with a real first event; botocore's client module is patched as it loads (an import
# hook, so nothing is imported ahead of the handler) to record every client created and to stop the clock at
# the first API call, i.e. the first network call. Baseline mode imports boto3 and creates the same clients.
# The result goes to a file: the handler's logger owns stdout.
COLD_PATH_CHILD = r"""
import sys, time
_started, _started_cpu = time.perf_counter(), time.process_time()
import importlib.abc, importlib.machinery, json
_mode, _target, _argument, _result_path = sys.argv[1:5]
_before = set(sys.modules)
_state = {"clients": [], "first_call": None, "stopped": None, "stopped_cpu": None}


class FirstNetworkCall(BaseException):
    pass


def _patch(client_module):
    create_client = client_module.ClientCreator.create_client

    def recording_create_client(self, service_name, *args, **kwargs):
        _state["clients"].append(service_name)
        return create_client(self, service_name, *args, **kwargs)

    def stop_at_first_call(client, operation_name, api_params):
        if _state["stopped"] is None:
            _state["stopped"], _state["stopped_cpu"] = time.perf_counter(), time.process_time()
            _state["first_call"] = client.meta.service_model.service_name + "." + operation_name
        raise FirstNetworkCall(operation_name)

    client_module.ClientCreator.create_client = recording_create_client
    client_module.BaseClient._make_api_call = stop_at_first_call


class _PatchBotocoreClient(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "botocore.client":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            _patch(module)

        spec.loader.exec_module = exec_and_patch
        return spec


sys.meta_path.insert(0, _PatchBotocoreClient())


class _Context:
    function_name = "billing-sync-cold-path"
    function_version = "$LATEST"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:billing-sync-cold-path"
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/billing-sync-cold-path"
    log_stream_name = "cold-path"

    def get_remaining_time_in_millis(self):
        return 10000


if _mode == "handler":
    with open(_argument) as _file:
        _event = json.load(_file)
    import importlib
    _handler = importlib.import_module(_target).lambda_handler
    try:
        _handler(_event, _Context())
    except FirstNetworkCall:
        pass
else:
    import boto3
    for _service in json.loads(_argument):
        boto3.client(_service)
    _state["stopped"], _state["stopped_cpu"] = time.perf_counter(), time.process_time()
_stopped = _state["stopped"] if _state["stopped"] is not None else time.perf_counter()
_stopped_cpu = _state["stopped_cpu"] if _state["stopped_cpu"] is not None else time.process_time()
with open(_result_path, "w") as _file:
    json.dump(
        {
            "seconds": _stopped - _started,
            "cpu_seconds": _stopped_cpu - _started_cpu,
            "clients": _state["clients"],
            "first_call": _state["first_call"],
            "packages": sorted({name.partition(".")[0] for name in set(sys.modules) - _before}),
            "modules": len(set(sys.modules) - _before),
            "python": sys.version.split()[0],
            "machine": __import__("platform").machine(),
        },
        _file,
    )
"""
# What the Lambda service gives every function besides the stack's variables: credentials in the environment
# (without them botocore would probe the instance metadata service, a network call Lambda never makes) and
# no shared config files.
LAMBDA_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "ASIABENCHCOLDPATH000",
    "AWS_SECRET_ACCESS_KEY": "bench-cold-path-secret",
    "AWS_SESSION_TOKEN": "bench-cold-path-token",
    "AWS_CONFIG_FILE": "/nonexistent/aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/aws-credentials",
}
COLD_PATH_HANDLERS = {module: module.rsplit(".", 1)[1] for module in HANDLER_MODULES}
# The ratio is taken on CPU time (the cold path makes no I/O but reading files from the page cache), which
# other work on shared cores disturbs far less than wall time; wall and whole-process times are reported too.
_CLOCKS = {"cpu": "cpu_seconds", "wall": "seconds", "process": "process_seconds"}
PYTHON_RUNTIME_VENV = REPO_ROOT / "build" / "py313-runtime"


def cold_path_python() -> tuple[str, str]:
    """(interpreter, why): the Lambda runtime's Python 3.13 with the runtime dependencies only when
    `build/py313-runtime` exists (see `make cold-path-venv`), else this interpreter."""
    candidate = PYTHON_RUNTIME_VENV / "bin" / "python"
    if candidate.exists():
        return str(candidate), "Python 3.13 (the deployed runtime) in build/py313-runtime: runtime dependencies only"
    return sys.executable, "the project venv (no build/py313-runtime): not the deployed Python version"


def first_events(invoices: int = 1) -> dict[str, dict[str, Any]]:
    """A first event per handler: a signed invoice webhook, a partner-bus event, a posting batch of invoices."""
    _, invoice_payloads, _ = stripe_mix("cold", invoices)
    partner = {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": invoice_payloads[0]["type"],
        "source": "aws.partner/stripe.com/ed_bench",
        "account": ACCOUNT,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [],
        "detail": invoice_payloads[0],
    }
    queue = f"arn:aws:sqs:{REGION}:{ACCOUNT}:billing-sync-posting-cold"
    return {
        "billing_sync.handlers.stripe_webhook": signed_webhook_event(invoice_payloads[0]),
        "billing_sync.handlers.stripe_partner_events": partner,
        "billing_sync.handlers.post_to_erp": posting_batches(canonical_details(invoice_payloads), queue)[0],
    }


def function_environments() -> dict[str, dict[str, str]]:
    """Each handler's environment as the synthesised stack sets it (resource names resolved by provisioning).

    The partner-bus function is only deployed with a partner event source; its settings are the webhook
    function's without the secret, so it borrows that environment when the stack has no such function."""
    environments: dict[str, dict[str, str]] = {}
    for module, short in COLD_PATH_HANDLERS.items():
        with contextlib.suppress(KeyError), function_stack(short) as environment:
            environments[module] = dict(environment)
    environments.setdefault("billing_sync.handlers.stripe_partner_events", environments[HANDLER_MODULES[0]])
    return environments


def run_cold_path_child(python: str, mode: str, target: str, argument: str, env: Mapping[str, str]) -> dict[str, Any]:
    """One fresh interpreter: `mode` is "handler" (target a module, argument an event file) or "baseline"
    (argument a JSON list of services). Returns the child's report plus `process_seconds` from outside."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        result_path = Path(handle.name)
    try:
        started = time.perf_counter()
        result = subprocess.run(
            [python, "-c", COLD_PATH_CHILD, mode, target, argument, str(result_path)],
            env=dict(env),
            cwd=tempfile.gettempdir(),
            capture_output=True,
            text=True,
            check=False,
        )
        elapsed = time.perf_counter() - started
        if result.returncode != 0:
            raise BenchCheckFailed(f"cold path child {mode} {target} failed:\n{result.stderr[-2000:]}")
        report: dict[str, Any] = json.loads(result_path.read_text())
    finally:
        result_path.unlink(missing_ok=True)
    report["process_seconds"] = elapsed
    report["stdout_bytes"] = len(result.stdout.encode())
    return report


def cold_path_env(function_env: Mapping[str, str]) -> dict[str, str]:
    env = _lambda_process_environment(FUNCTIONS_DIR)
    env.update(function_env)
    env.update(LAMBDA_CREDENTIALS)
    return env


def measure_cold_path(runs: int, python: str | None = None) -> dict[str, Any]:
    """Median first-invocation cold path per handler over the median of boto3 + the same clients."""
    python, why = (python, "given") if python else cold_path_python()
    environments = function_environments()
    events = first_events()
    with tempfile.TemporaryDirectory(prefix="bench-cold-") as directory:
        jobs: list[tuple[str, str, str, str, dict[str, str]]] = []
        first_reports: dict[str, dict[str, Any]] = {}
        for module in HANDLER_MODULES:
            event_file = Path(directory) / f"{COLD_PATH_HANDLERS[module]}.json"
            event_file.write_text(json.dumps(events[module]))
            env = cold_path_env(environments[module])
            # discarded as a run, it writes bytecode caches and says which clients the handler creates
            first_reports[module] = run_cold_path_child(python, "handler", module, str(event_file), env)
            _check(first_reports[module]["first_call"] is not None, f"{module} made no AWS call on its first event")
            jobs.append((module, "handler", module, str(event_file), env))
            services = json.dumps(first_reports[module]["clients"])
            run_cold_path_child(python, "baseline", "boto3", services, env)
            jobs.append((f"baseline:{module}", "baseline", "boto3", services, env))
        samples: dict[str, dict[str, list[float]]] = {label: {kind: [] for kind in _CLOCKS} for label, *_ in jobs}
        for run in range(runs):
            for label, mode, target, argument, env in jobs if run % 2 == 0 else reversed(jobs):
                report = run_cold_path_child(python, mode, target, argument, env)
                for kind, key in _CLOCKS.items():
                    samples[label][kind].append(report[key])
            _progress(f"cold path: round {run + 1}/{runs}")

    def median_ms(label: str, kind: str) -> float:
        return round(statistics.median(samples[label][kind]) * 1000, 1)

    def ratios(kind: str) -> dict[str, float]:
        return {
            module: round(median_ms(module, kind) / median_ms(f"baseline:{module}", kind), 3)
            for module in HANDLER_MODULES
        }

    cpu_ratios = ratios("cpu")
    slowest = max(HANDLER_MODULES, key=lambda module: median_ms(module, "cpu"))
    return {
        "cold_path_ratio": cpu_ratios[slowest],
        "cold_path_slowest_handler": slowest,
        "cold_path_ratios": cpu_ratios,
        "cold_path_ratios_wall": ratios("wall"),
        "cold_path_ratios_whole_process": ratios("process"),
        "cold_path_cpu_ms": {module: median_ms(module, "cpu") for module in HANDLER_MODULES},
        "cold_path_baseline_cpu_ms": {module: median_ms(f"baseline:{module}", "cpu") for module in HANDLER_MODULES},
        "cold_path_wall_ms": {module: median_ms(module, "wall") for module in HANDLER_MODULES},
        "cold_path_baseline_wall_ms": {module: median_ms(f"baseline:{module}", "wall") for module in HANDLER_MODULES},
        "cold_path_first_invocation": {
            module: {
                "clients": report["clients"],
                "first_network_call": report["first_call"],
                "modules_imported": report["modules"],
                "packages_imported": report["packages"],
            }
            for module, report in first_reports.items()
        },
        "cold_path_runtime": {
            "interpreter": python,
            "python": first_reports[slowest]["python"],
            "machine": first_reports[slowest]["machine"],
            "why": why,
        },
        "cold_path_samples_ms": {
            label: {kind: [round(value * 1000, 1) for value in values] for kind, values in clocks.items()}
            for label, clocks in samples.items()
        },
    }


# ---- counting and timing AWS calls ----


class AwsCallCounter:
    """Counts every API call any botocore client makes, by `service.Operation`, and DynamoDB write requests."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.ddb_writes: Counter[str] = Counter()
        # estimated on-demand request units, "wru" and "rru" (see billing_sync_ops.cost.ASSUMPTIONS)
        self.ddb_units: dict[str, float] = {}

    @contextlib.contextmanager
    def counting(self) -> Iterator[AwsCallCounter]:
        from botocore.client import BaseClient

        make_api_call = BaseClient._make_api_call  # type: ignore[attr-defined]
        counter = self

        def counted(client: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
            counter.record(client.meta.service_model.service_name, operation_name, api_params)
            return make_api_call(client, operation_name, api_params)

        with mock.patch.object(BaseClient, "_make_api_call", counted):
            yield self

    def record(self, service: str, operation: str, params: Mapping[str, Any]) -> None:
        self.calls[f"{service}.{operation}"] += 1
        if service == "dynamodb" and operation in DDB_WRITE_OPERATIONS:
            self.ddb_writes[operation] += _ddb_write_requests(operation, params)
        if service == "dynamodb":
            for kind, units in _ddb_request_units(operation, params).items():
                self.ddb_units[kind] = self.ddb_units.get(kind, 0.0) + units

    def snapshot(self) -> tuple[Counter[str], Counter[str]]:
        return Counter(self.calls), Counter(self.ddb_writes)


def _ddb_attribute_bytes(value: Mapping[str, Any]) -> int:
    (kind, data), *_ = value.items()
    if kind in ("S", "B"):
        return len(data.encode() if isinstance(data, str) else data)
    if kind == "N":
        return len(str(data)) // 2 + 2
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(name.encode()) + _ddb_attribute_bytes(item) for name, item in data.items())
    if kind == "L":
        return 3 + sum(1 + _ddb_attribute_bytes(item) for item in data)
    return sum(len(str(item).encode()) for item in data)  # SS, NS, BS


def ddb_item_bytes(item: Mapping[str, Any]) -> int:
    """DynamoDB's size of an item in its wire form: attribute names plus values."""
    return sum(len(name.encode()) + _ddb_attribute_bytes(value) for name, value in item.items())


def _ddb_request_units(operation: str, params: Mapping[str, Any]) -> dict[str, float]:
    """Estimated on-demand units of one request: a put by its item's size, other writes 1, transactions 2x,
    reads 1 (strongly consistent) or 0.5 per item under 4 KB."""

    def write_units(request: Mapping[str, Any]) -> float:
        item = request.get("Item")
        return float(max(1, math.ceil(ddb_item_bytes(item) / 1024))) if item else 1.0

    def read_units(request: Mapping[str, Any]) -> float:
        return 1.0 if request.get("ConsistentRead") else 0.5

    if operation in ("PutItem", "UpdateItem", "DeleteItem"):
        return {"wru": write_units(params)}
    if operation == "BatchWriteItem":
        requests = [
            r.get("PutRequest", r.get("DeleteRequest", {}))
            for rs in params.get("RequestItems", {}).values()
            for r in rs
        ]
        return {"wru": sum(write_units(r) for r in requests)}
    if operation == "TransactWriteItems":
        items: list[Mapping[str, Any]] = [next(iter(entry.values()), {}) for entry in params.get("TransactItems", [])]
        return {"wru": sum(2 * write_units(item) for item in items)}
    if operation in ("GetItem", "Query", "Scan"):
        return {"rru": read_units(params)}
    if operation == "BatchGetItem":
        return {"rru": sum(read_units(t) * len(t.get("Keys", [])) for t in params.get("RequestItems", {}).values())}
    if operation == "TransactGetItems":
        return {"rru": 2.0 * len(params.get("TransactItems", []))}
    return {}


def _ddb_write_requests(operation: str, params: Mapping[str, Any]) -> int:
    if operation == "BatchWriteItem":
        return sum(len(requests) for requests in params.get("RequestItems", {}).values())
    if operation == "TransactWriteItems":
        return len(params.get("TransactItems", []))
    return 1


@contextlib.contextmanager
def moto_cpu_time() -> Iterator[list[int]]:
    """Accumulates the CPU nanoseconds moto spends answering requests (its botocore before-send hook).

    Thread CPU time: records posted on several threads would count each other's time in process time."""
    from moto.core.botocore_stubber import BotocoreStubber

    answer = BotocoreStubber.__call__
    spent = [0]

    def timed(stubber: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.thread_time_ns()
        try:
            return answer(stubber, *args, **kwargs)
        finally:
            spent[0] += time.thread_time_ns() - started

    with mock.patch.object(BotocoreStubber, "__call__", timed):
        yield spent


@contextlib.contextmanager
def discarded_stdout() -> Iterator[None]:
    """Powertools writes logs and EMF metrics to stdout; the logger's stream was bound at import, so redirect fd 1."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


@dataclass
class CapturedLogs:
    """What the handlers wrote to stdout: Powertools JSON log lines and EMF metric blobs."""

    text: str = ""

    @property
    def lines(self) -> list[str]:
        return [line for line in self.text.splitlines() if line.strip()]

    @property
    def bytes(self) -> int:
        return sum(len(line.encode()) + 1 for line in self.lines)

    @property
    def emf_bytes(self) -> int:
        return sum(len(line.encode()) + 1 for line in self.lines if '"_aws"' in line)

    def metrics(self) -> set[str]:
        """Distinct CloudWatch metrics (namespace, name and dimension values) the EMF blobs define."""
        found = set()
        for line in self.lines:
            if '"_aws"' not in line:
                continue
            blob = json.loads(line)
            for directive in blob["_aws"]["CloudWatchMetrics"]:
                for dimensions in directive["Dimensions"] or [[]]:
                    values = ",".join(f"{name}={blob.get(name)}" for name in dimensions)
                    for metric in directive["Metrics"]:
                        found.add(f"{directive['Namespace']}/{metric['Name']}[{values}]")
        return found


@contextlib.contextmanager
def captured_stdout() -> Iterator[CapturedLogs]:
    """Like discarded_stdout, but keeps what was written (fd 1 goes to a temporary file) for counting."""
    captured = CapturedLogs()
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield captured  # print() (EMF metrics) reaches fd 1 through sys.stdout, flushed below
        finally:
            sys.stdout.flush()
            os.dup2(saved, 1)
            os.close(saved)
            sink.seek(0)
            captured.text = sink.read().decode(errors="replace")


@contextlib.contextmanager
def lambda_environment(values: Mapping[str, str]) -> Iterator[None]:
    """The deployed function's environment for the duration; adapters built under it are forgotten afterwards."""
    from billing_sync import composition

    saved = dict(os.environ)
    for name in [*_UNDEPLOYED_VARIABLES, *(n for n in os.environ if n.startswith("POWERTOOLS_"))]:
        os.environ.pop(name, None)
    os.environ.update(LAMBDA_ENVIRONMENT)
    os.environ.update(values)
    composition.reset()
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        composition.reset()


def _forget_cached_secrets() -> None:
    from aws_lambda_powertools.utilities.parameters import base

    base.clear_caches()
    base.DEFAULT_PROVIDERS.clear()


@cache
def _stack_template() -> dict[str, Any]:
    """The synthesised stack, as the local runtime builds its environment from it (synthesised once per input)."""
    return synthesize_template(REPO_ROOT, CDK_OUT_DIR)


@contextlib.contextmanager
def function_stack(handler_module: str) -> Iterator[dict[str, str]]:
    """moto with the stack's resources and the environment of the function in `handler_module`; yields it."""
    from moto import mock_aws

    from billing_sync import composition

    with lambda_environment({"AWS_DEFAULT_REGION": REGION}), mock_aws():
        stack = provision(_stack_template(), region=REGION, webhook_secrets=[WEBHOOK_SECRET])
        environment = stack.function_for(handler_module).environment
        os.environ.update(environment)
        composition.reset()
        yield environment


def _per_event(counts: Mapping[str, int], events: int) -> dict[str, float]:
    return {name: round(count / events, 4) for name, count in sorted(counts.items())}


# ---- sample events ----


def customer_event(customer_id: str, event_id: str) -> dict[str, Any]:
    event = with_event_id(load_event("stripe_customer_created"), event_id)
    event["data"]["object"]["id"] = customer_id
    return event


def stripe_mix(label: str, invoices: int) -> tuple[list[dict], list[dict], list[dict]]:
    """(master data: product, price and customer events; invoice.finalized events; invoice_payment.paid
    events), all with distinct ids."""
    customers = [f"cus_{label}{n:05d}" for n in range(-(-invoices // INVOICES_PER_CUSTOMER))]
    customer_events = [load_event(name) for name in CATALOGUE_OF_BUILT_INVOICES] + [
        customer_event(customer, f"evt_{label}cus{n:05d}") for n, customer in enumerate(customers)
    ]
    invoice_events = [
        invoice_event(
            invoice_id=f"in_{label}{n:05d}",
            customer_id=customers[n // INVOICES_PER_CUSTOMER],
            event_id=f"evt_{label}inv{n:05d}",
            lines=[(2900 + 1000 * (n % 5), 500 * (n % 3), 0), (1200 + 100 * (n % 7), 0, 0)],
        )
        for n in range(invoices)
    ]
    payment_events = [invoice_payment_event(event) for event in invoice_events]
    return customer_events, invoice_events, payment_events


def canonical_details(payloads: list[dict]) -> list[dict[str, Any]]:
    """The canonical events the ingest path would publish for these Stripe events, as JSON data."""
    from billing_sync.composition.ingest import stripe_account_entities
    from billing_sync.sources.stripe import StripeNormaliser

    normaliser = StripeNormaliser(default_legal_entity="US01", stripe_accounts=stripe_account_entities())
    details = []
    for payload in payloads:
        event = normaliser.normalise(
            payload, received_at=datetime.now(UTC), raw_ref=f"s3://bench-raw/raw/stripe/{payload['id']}.json"
        )
        if event is None:
            raise BenchCheckFailed(f"{payload['type']} is not normalised")
        details.append(event.model_dump(mode="json"))
    return details


def signed_webhook_event(payload: dict[str, Any], secret: str = WEBHOOK_SECRET) -> dict[str, Any]:
    body = event_payload(payload)
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        "Stripe-Signature": sign_stripe_payload(body, secret, int(time.time())),
    }
    return api_gateway_event(method="POST", path=WEBHOOK_PATH, headers=headers, body=body, source_ip="3.18.12.63")


def posting_batches(details: list[dict[str, Any]], queue_arn: str) -> list[dict[str, Any]]:
    """SQS event source mapping batches whose bodies are the billing bus's EventBridge envelopes."""
    messages = []
    for detail in details:
        body = json.dumps(
            {
                "version": "0",
                "id": str(uuid.uuid4()),
                "detail-type": detail["event_type"],
                "source": "billing-sync",
                "account": ACCOUNT,
                "time": detail["occurred_at"],
                "region": REGION,
                "resources": [],
                "detail": detail,
            }
        )
        sent = str(int(time.time() * 1000))
        messages.append(
            {
                "MessageId": str(uuid.uuid4()),
                "ReceiptHandle": uuid.uuid4().hex,
                "Body": body,
                "MD5OfBody": hashlib.md5(body.encode()).hexdigest(),
                "Attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": sent,
                    "SenderId": "AIDAEVENTBRIDGE",
                    "ApproximateFirstReceiveTimestamp": sent,
                },
            }
        )
    return [
        sqs_event(messages[start : start + POSTING_BATCH_SIZE], queue_arn)
        for start in range(0, len(messages), POSTING_BATCH_SIZE)
    ]


# ---- ingest path: the webhook handler ----


@contextlib.contextmanager
def ingest_stack() -> Iterator[dict[str, str]]:
    """moto with the stack's resources and the webhook function's environment; yields that environment."""
    with function_stack("stripe_webhook") as environment:
        _forget_cached_secrets()
        try:
            yield environment
        finally:
            _forget_cached_secrets()


def _invoke_webhooks(handler: Callable, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    contexts = [LocalLambdaContext("StripeWebhookFunction", 10) for _ in events]
    return [handler(event, context) for event, context in zip(events, contexts, strict=True)]


def _check_accepted(responses: list[dict[str, Any]], expected: int) -> None:
    statuses = Counter(int(response["statusCode"]) for response in responses)
    _check(statuses == Counter({200: expected}), f"webhook statuses {dict(statuses)}, expected {expected} x 200")
    outcomes = Counter(json.loads(response["body"])["outcome"] for response in responses)
    _check(outcomes == Counter({"PUBLISHED": expected}), f"webhook outcomes {dict(outcomes)}")


def count_ingest_calls(webhooks: int = 300) -> dict[str, Any]:
    """AWS API calls made while the webhook handler accepts `webhooks` distinct invoice.finalized events, cold."""
    with ingest_stack() as environment:
        from billing_sync.handlers.stripe_webhook import lambda_handler

        _, invoices, _ = stripe_mix("count", webhooks)
        events = [signed_webhook_event(payload) for payload in invoices]
        counter = AwsCallCounter()
        with discarded_stdout(), counter.counting():
            responses = _invoke_webhooks(lambda_handler, events)
        _check_accepted(responses, webhooks)
        import boto3

        archived = boto3.client("s3", region_name=REGION).list_objects_v2(Bucket=environment["RAW_ARCHIVE_BUCKET"])
        _check(archived["KeyCount"] == webhooks, f"{archived['KeyCount']} raw payloads archived, expected {webhooks}")
    total = sum(counter.calls.values())
    return {
        "webhooks": webhooks,
        "aws_calls": total,
        "aws_calls_per_webhook": round(total / webhooks, 4),
        "aws_calls_breakdown": dict(sorted(counter.calls.items())),
        "aws_calls_per_webhook_breakdown": _per_event(counter.calls, webhooks),
    }


def measure_ingest_cpu(webhooks: int = 300) -> dict[str, Any]:
    with ingest_stack():
        from billing_sync.handlers.stripe_webhook import lambda_handler

        _, invoices, _ = stripe_mix("cpu", WARM_UP_EVENTS + webhooks)
        events = [signed_webhook_event(payload) for payload in invoices]
        warm_up, measured = events[:WARM_UP_EVENTS], events[WARM_UP_EVENTS:]
        contexts = [LocalLambdaContext("StripeWebhookFunction", 10) for _ in measured]
        with discarded_stdout():
            responses = _invoke_webhooks(lambda_handler, warm_up)
        with captured_stdout() as logs, moto_cpu_time() as moto_ns:
            started = time.process_time_ns()
            for event, context in zip(measured, contexts, strict=True):
                responses.append(lambda_handler(event, context))
            elapsed = time.process_time_ns() - started
        _check_accepted(responses, len(events))
    return _cpu_figures(elapsed, moto_ns[0], webhooks) | _log_figures(logs, events=webhooks, invocations=webhooks)


def _log_figures(logs: CapturedLogs, *, events: int, invocations: int) -> dict[str, Any]:
    return {
        "log_bytes_per_event": round(logs.bytes / events, 1),
        "log_bytes_per_event_without_emf": round((logs.bytes - logs.emf_bytes) / events, 1),
        "emf_bytes_per_invocation": round(logs.emf_bytes / invocations, 1),
        "log_lines_per_event": round(len(logs.lines) / events, 3),
        "emf_metrics": sorted(logs.metrics()),
    }


def _cpu_figures(elapsed_ns: int, moto_ns: int, events: int) -> dict[str, Any]:
    _check(events > 0, f"no events left to measure after {WARM_UP_EVENTS} warm-up events")
    return {
        "events": events,
        "cpu_us_per_event": round(elapsed_ns / events / 1000, 1),
        "cpu_us_per_event_excluding_aws": round((elapsed_ns - moto_ns) / events / 1000, 1),
        "moto_cpu_share": round(moto_ns / elapsed_ns, 3) if elapsed_ns else 0.0,
    }


# ---- posting path ----


def posting_stack() -> contextlib.AbstractContextManager[dict[str, str]]:
    """moto with the stack's resources and the posting function's environment; yields that environment."""
    return function_stack("post_to_erp")


def _check_books(names: Mapping[str, str], documents: int, lineage_posted: int) -> None:
    import boto3

    from billing_sync.domain.lineage import LineageStatus
    from billing_sync.erp.ledger import DynamoLedgerErpClient
    from billing_sync.state.dynamo import DynamoLineageStore

    dynamodb = boto3.client("dynamodb", region_name=REGION)
    count, balanced, _ = DynamoLedgerErpClient(dynamodb, names["LEDGER_TABLE_NAME"]).trial_balance()
    _check(count == documents, f"{count} ledger documents, expected {documents}")
    _check(balanced, "a posted journal does not balance")
    statuses = Counter(record.status for record in DynamoLineageStore(dynamodb, names["LINEAGE_TABLE_NAME"]).scan())
    _check(
        statuses == Counter({LineageStatus.POSTED: lineage_posted}),
        f"lineage statuses {dict(statuses)}, expected {lineage_posted} POSTED",
    )


def count_ddb_writes(invoices: int = 200) -> dict[str, Any]:
    """DynamoDB write requests of the posting service for customers, then invoices, then their payments."""
    customer_events, invoice_events, payment_events = stripe_mix("ddb", invoices)
    catalogue = len(CATALOGUE_OF_BUILT_INVOICES)
    phases = {
        "catalogue": canonical_details(customer_events[:catalogue]),
        "customer": canonical_details(customer_events[catalogue:]),
        "invoice": canonical_details(invoice_events),
        "payment": canonical_details(payment_events),
    }
    with posting_stack() as names:
        from billing_sync.composition import posting as posting_root
        from billing_sync.domain.posting import PostingStatus

        service = posting_root.posting_service()
        counter = AwsCallCounter()
        writes: dict[str, Counter[str]] = {}
        calls: dict[str, Counter[str]] = {}
        units: dict[str, dict[str, float]] = {}
        with counter.counting():
            for kind, details in phases.items():
                calls_before, writes_before = counter.snapshot()
                units_before = dict(counter.ddb_units)
                statuses = Counter(service.handle(detail).status for detail in details)
                _check(
                    statuses == Counter({PostingStatus.POSTED: len(details)}),
                    f"{kind} events: {dict(statuses)}, expected {len(details)} POSTED",
                )
                calls_after, writes_after = counter.snapshot()
                calls[kind], writes[kind] = calls_after - calls_before, writes_after - writes_before
                units[kind] = {
                    unit: counter.ddb_units.get(unit, 0.0) - units_before.get(unit, 0.0) for unit in ("wru", "rru")
                }
        _check_books(names, documents=2 * invoices, lineage_posted=sum(len(d) for d in phases.values()))
    customers = len(phases["customer"])
    posted = writes["invoice"] + writes["payment"]
    return {
        "customers": customers,
        "invoices": invoices,
        "payments": invoices,
        "ddb_writes_per_posted_event": round(sum(posted.values()) / (2 * invoices), 4),
        "ddb_writes_per_invoice": round(sum(writes["invoice"].values()) / invoices, 4),
        "ddb_writes_per_payment": round(sum(writes["payment"].values()) / invoices, 4),
        "ddb_writes_per_customer_upsert": round(sum(writes["customer"].values()) / customers, 4),
        "ddb_writes_breakdown": {kind: dict(sorted(counts.items())) for kind, counts in writes.items()},
        "aws_calls_breakdown": {kind: dict(sorted(counts.items())) for kind, counts in calls.items()},
        "aws_calls_per_event": {kind: _per_event(calls[kind], len(phases[kind])) for kind in phases},
        "ddb_request_units_per_event": {
            kind: {unit: round(units[kind][unit] / len(phases[kind]), 4) for unit in ("wru", "rru")} for kind in phases
        },
    }


def measure_posting_cpu(invoices: int = 200) -> dict[str, Any]:
    customer_events, invoice_events, payment_events = stripe_mix("cpu", invoices)
    details = canonical_details(customer_events + invoice_events + payment_events)
    with posting_stack() as names:
        from billing_sync.handlers.post_to_erp import lambda_handler

        batches = posting_batches(details, f"arn:aws:sqs:{REGION}:{ACCOUNT}:billing-sync-posting-bench")
        warm_up_batches = -(-WARM_UP_EVENTS // POSTING_BATCH_SIZE)
        warm_up, measured = batches[:warm_up_batches], batches[warm_up_batches:]
        contexts = [LocalLambdaContext("PostToErpFunction", 60) for _ in batches]
        with discarded_stdout():
            responses = [lambda_handler(batch, context) for batch, context in zip(warm_up, contexts, strict=False)]
        with captured_stdout() as logs, moto_cpu_time() as moto_ns:
            started = time.process_time_ns()
            for batch, context in zip(measured, contexts[warm_up_batches:], strict=True):
                responses.append(lambda_handler(batch, context))
            elapsed = time.process_time_ns() - started
        failures = sum(len(response.get("batchItemFailures", [])) for response in responses)
        _check(failures == 0, f"{failures} posting records failed")
        _check_books(names, documents=2 * invoices, lineage_posted=len(details))
    records = sum(len(batch["Records"]) for batch in measured)
    return _cpu_figures(elapsed, moto_ns[0], records) | _log_figures(logs, events=records, invocations=len(measured))


# ---- the local runtime, end to end ----

LOCAL_RUNTIME_CLIENTS = 8
LOCAL_RUNTIME_INVOICES = 100
LOCAL_RUNTIME_WARM_UP_INVOICES = 8
LOCAL_RUNTIME_START_SECONDS = 300  # a first start may synthesise the stack
LOCAL_RUNTIME_POST_SECONDS = 600


def local_runtime_mix(label: str, invoices: int, *, catalogue: bool = False) -> list[dict[str, Any]]:
    """Stripe events in the order a client sends them: master data, then invoices, then their payments. The
    catalogue's product and price (fixed ids) only with `catalogue`: the warm-up mix brings them."""
    master, invoice_events, payment_events = stripe_mix(label, invoices)
    return [*master[0 if catalogue else len(CATALOGUE_OF_BUILT_INVOICES) :], *invoice_events, *payment_events]


def measure_bare_posting_rate(invoices: int) -> dict[str, Any]:
    """Events per second of the posting handler alone, in one thread, on moto in process (`mock_aws`): SQS
    batches of the canonical events of `local_runtime_mix`, after a warm-up mix of their own."""
    warm_up_details = canonical_details(local_runtime_mix("warm", LOCAL_RUNTIME_WARM_UP_INVOICES, catalogue=True))
    details = canonical_details(local_runtime_mix("local", invoices))
    queue_arn = f"arn:aws:sqs:{REGION}:{ACCOUNT}:billing-sync-posting-bench"
    with posting_stack() as names:
        from billing_sync.handlers.post_to_erp import lambda_handler

        responses = []
        with discarded_stdout():
            for batch in posting_batches(warm_up_details, queue_arn):
                responses.append(lambda_handler(batch, LocalLambdaContext("PostToErpFunction", 60)))
            batches = posting_batches(details, queue_arn)
            started = time.perf_counter()
            for batch in batches:
                responses.append(lambda_handler(batch, LocalLambdaContext("PostToErpFunction", 60)))
            elapsed = time.perf_counter() - started
        failures = sum(len(response.get("batchItemFailures", [])) for response in responses)
        _check(failures == 0, f"{failures} posting records failed")
        _check_books(
            names,
            documents=2 * (invoices + LOCAL_RUNTIME_WARM_UP_INVOICES),
            lineage_posted=len(details) + len(warm_up_details),
        )
    return {"events": len(details), "seconds": round(elapsed, 3), "events_per_second": round(len(details) / elapsed, 2)}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServedRuntime:
    """`billing-sync local serve` in a child process, started as the CLI starts it, on 127.0.0.1 and a free
    port, with its own discovery file; `stop()` stops it as Ctrl-C does (SIGINT: drain, report, exit)."""

    def __init__(self, work_dir: Path, secret: str = WEBHOOK_SECRET) -> None:
        self.work_dir = work_dir
        self.port = free_port()
        self.secret = secret
        self.discovery_file = work_dir / "runtime.json"
        self.report_file = work_dir / "serve-report.json"
        self.stderr_file = work_dir / "serve.stderr"
        self.process: subprocess.Popen[bytes] | None = None
        self.discovery: dict[str, Any] = {}

    def start(self) -> ServedRuntime:
        env = {name: value for name, value in os.environ.items() if name not in _UNDEPLOYED_VARIABLES}
        env.update(BILLING_SYNC_LOCAL_STATE=str(self.discovery_file), BILLING_SYNC_STRIPE_WEBHOOK_SECRET=self.secret)
        command = [sys.executable, "-m", "billing_sync_ops.cli", "local", "serve", "--port", str(self.port)]
        command += ["--log-level", "ERROR", "--report", str(self.report_file)]
        with self.stderr_file.open("wb") as stderr:
            self.process = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + LOCAL_RUNTIME_START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchCheckFailed(f"local serve exited {self.process.returncode}:\n{self._stderr_tail()}")
            with contextlib.suppress(OSError, ValueError):
                document = json.loads(self.discovery_file.read_text())
                if document.get("pid") == self.process.pid:
                    self.discovery = document
                    return self
            time.sleep(0.2)
        raise BenchCheckFailed(f"local serve did not start within {LOCAL_RUNTIME_START_SECONDS} s")

    def _stderr_tail(self) -> str:
        return self.stderr_file.read_text(errors="replace")[-3000:]

    @property
    def webhook_url(self) -> str:
        return str(self.discovery["webhook_url"])

    def dynamodb(self) -> Any:
        import boto3

        return boto3.session.Session(
            aws_access_key_id="local", aws_secret_access_key="local", region_name=self.discovery["region"]
        ).client("dynamodb", endpoint_url=self.discovery["endpoint_url"])

    def stop(self) -> int:
        """SIGINT, as Ctrl-C; returns the exit status (killed when it does not stop within two minutes)."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return int(self.process.returncode)


def send_concurrently(url: str, payloads: list[dict[str, Any]], secret: str, clients: int) -> None:
    """Posts the payloads as signed webhooks from `clients` threads taking them in order; checks every answer
    is 200 PUBLISHED."""
    from concurrent.futures import ThreadPoolExecutor

    from billing_sync_ops.demo import post_webhook

    bodies = iter([event_payload(payload) for payload in payloads])
    lock = threading.Lock()
    answers: list[tuple[int, dict[str, Any]]] = []

    def client() -> None:
        while True:
            with lock:
                body = next(bodies, None)
            if body is None:
                return
            answer = post_webhook(url, body, sign_stripe_payload(body, secret, int(time.time())))
            with lock:
                answers.append(answer)

    with ThreadPoolExecutor(max_workers=clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    statuses = Counter((status, answer.get("outcome") or answer.get("error")) for status, answer in answers)
    _check(statuses == Counter({(200, "PUBLISHED"): len(payloads)}), f"webhook answers {dict(statuses)}")


def wait_until_posted(served: ServedRuntime, source_event_ids: set[str], timeout_seconds: float) -> datetime:
    """The moment the last of these events posted: its lineage record's `cp_posted`, read once every one is
    POSTED. Counted once a second (a count costs moto little; the moment comes from the records)."""
    dynamodb = served.dynamodb()
    table = served.discovery["outputs"]["LineageTableName"]
    posted = {
        "TableName": table,
        "FilterExpression": "#status = :posted",
        "ExpressionAttributeNames": {"#status": "status"},
    }
    posted["ExpressionAttributeValues"] = {":posted": {"S": "POSTED"}}
    deadline = time.monotonic() + timeout_seconds
    while True:
        count = sum(page["Count"] for page in dynamodb.get_paginator("scan").paginate(Select="COUNT", **posted))
        if count >= len(source_event_ids):
            items = [
                item
                for page in dynamodb.get_paginator("scan").paginate(**posted)
                for item in page["Items"]
                if item["source_event_id"]["S"] in source_event_ids
            ]
            if len(items) == len(source_event_ids):
                return max(datetime.fromisoformat(item["cp_posted"]["S"]) for item in items)
        if time.monotonic() > deadline:
            raise BenchCheckFailed(f"after {timeout_seconds} s {count} events POSTED, expected {len(source_event_ids)}")
        time.sleep(1.0)


def measure_served_rate(invoices: int, clients: int = LOCAL_RUNTIME_CLIENTS) -> dict[str, Any]:
    """Events per second end to end through `local serve`: from the first webhook sent by `clients` threads
    until the last event posted, after a warm-up mix sent and posted the same way."""
    warm_up = local_runtime_mix("warm", LOCAL_RUNTIME_WARM_UP_INVOICES, catalogue=True)
    payloads = local_runtime_mix("local", invoices)
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as work_dir:
        served = ServedRuntime(Path(work_dir))
        try:
            served.start()
            send_concurrently(served.webhook_url, warm_up, served.secret, clients)
            wait_until_posted(served, {payload["id"] for payload in warm_up}, LOCAL_RUNTIME_POST_SECONDS)
            started = datetime.now(UTC)
            send_concurrently(served.webhook_url, payloads, served.secret, clients)
            sent = (datetime.now(UTC) - started).total_seconds()
            last_posted = wait_until_posted(served, {payload["id"] for payload in payloads}, LOCAL_RUNTIME_POST_SECONDS)
        finally:
            status = served.stop()
        _check(status == 0, f"local serve exited {status} when stopped:\n{served._stderr_tail()}")
        report = json.loads(served.report_file.read_text())
    elapsed = (last_posted - started).total_seconds()
    return {
        "events": len(payloads),
        "clients": clients,
        "seconds": round(elapsed, 3),
        "sending_seconds": round(sent, 3),
        "events_per_second": round(len(payloads) / elapsed, 2),
        "runtime": report.get("runtime"),
    }


def _local_runtime_method(invoices: int) -> str:
    customers = -(-invoices // INVOICES_PER_CUSTOMER)
    return (
        f"Events per second end to end through `billing-sync local serve` (started as the CLI starts it, "
        f"`python -m billing_sync_ops.cli local serve --port <free> --log-level ERROR`, on 127.0.0.1, its own "
        f"discovery file), divided by events per second of the bare posting handler in one thread, both "
        f"measured in this run on the same events: {customers} customer.created, {invoices} invoice.finalized "
        f"and their {invoices} invoice_payment.paid events (billing_sync_ops.samples), in that order. Served: "
        f"{LOCAL_RUNTIME_CLIENTS} client threads take the events in order and POST each as a signed webhook "
        "(billing_sync_ops.signing; every answer checked 200 PUBLISHED); from the first send until the last "
        "event posted, that is the latest `cp_posted` of their lineage records, read through the runtime's "
        "moto endpoint once all are POSTED. Bare: billing_sync.handlers.post_to_erp.lambda_handler invoked in "
        "process on moto in process (mock_aws, the stack's resources from the synthesised template), SQS "
        f"batches of {POSTING_BATCH_SIZE} EventBridge envelopes of the same events' canonical forms, wall "
        "clock; books and lineage checked. Each side first takes a warm-up mix of "
        f"{LOCAL_RUNTIME_WARM_UP_INVOICES} invoices, their payments, customers and the catalogue, not counted."
    )


def measure_local_runtime(invoices: int) -> dict[str, Any]:
    """`local_runtime_efficiency`: events per second end to end through `local serve` over events per second
    of the bare posting handler, both measured here on the same mix."""
    _progress(f"local runtime: the bare posting handler on moto, one thread, {invoices} invoices and payments")
    bare = measure_bare_posting_rate(invoices)
    _progress(f"local runtime: `local serve` end to end, {LOCAL_RUNTIME_CLIENTS} clients, the same events")
    served = measure_served_rate(invoices)
    return {
        "local_runtime_efficiency": round(served["events_per_second"] / bare["events_per_second"], 3),
        "local_runtime_events_per_second": served["events_per_second"],
        "bare_posting_events_per_second": bare["events_per_second"],
        "local_runtime": {"served": served, "bare_posting": bare},
    }


# ---- the run ----


def _machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }


def _method(cold_path_runs: int, webhooks: int, invoices: int) -> dict[str, str]:
    return {
        "cold_path_ratio": (
            f"Median over {cold_path_runs} fresh interpreters (COLD_PATH_CHILD, run with `python -c`) of the CPU "
            "time from the script's first line until the handler's first AWS API call: it imports the handler "
            "module and invokes lambda_handler with a first event (a signed invoice webhook; an EventBridge "
            "partner event; an SQS batch of one canonical invoice), so settings, the account mapping, boto3, "
            "every client, Powertools and parameters load as on Lambda; botocore.client is patched as it loads "
            "(an import hook, nothing imported early) to record the clients created and to stop at the first "
            "_make_api_call. Divided by the median CPU time of `import boto3` plus boto3.client() for the same "
            "services in the same order, in fresh interpreters of the same run, alternating order each round; "
            "one discarded run each first writes bytecode caches. The environment is the function's from the "
            "synthesised stack plus what the Lambda service sets (region, function name, memory, credentials in "
            "variables, no shared config files). The ratio of the slowest handler (by CPU time); per handler in "
            "cold_path_ratios; wall-clock and whole-process (interpreter start to exit, from outside) ratios "
            "too. The interpreter is in cold_path_runtime: build/py313-runtime (Python 3.13, as deployed, with "
            "only aws-lambda-powertools, pydantic and boto3 at the project's versions) when it exists; this "
            "machine is x86_64, the stack deploys arm64."
        ),
        "usd_per_million_events": (
            "billing_sync_ops.cost.cost_from_bench: the counters and clocks below (AWS calls per webhook and per "
            "posted customer, invoice and payment; DynamoDB request units estimated from each request's "
            "parameters; CPU per event excluding moto; the bytes the handlers wrote to stdout, logs and EMF) and "
            "the synthesised template (memory, tracing mode, API stage tracing and its X-Ray sampling rule, "
            "access log format, log level), times billing_sync_ops/prices_us_east_1.json; itemised in `cost`, "
            "with its assumptions."
        ),
        "ddb_writes_per_posted_event": (
            f"PostingService from billing_sync.composition.posting.posting_service() against moto (mock_aws, the "
            "stack's resources provisioned from the synthesised template by billing_sync_ops.local_stack, tables "
            f"keyed by pk S, PAY_PER_REQUEST). {invoices} distinct invoice.finalized events, their "
            f"{-(-invoices // INVOICES_PER_CUSTOMER)} customers first and their {invoices} invoice.paid events "
            "last, built with billing_sync_ops.samples and normalised by "
            "StripeNormaliser(default_legal_entity='US01'). "
            "Every botocore call is counted by wrapping BaseClient._make_api_call; DynamoDB write requests are "
            "PutItem, UpdateItem and DeleteItem (1 each), BatchWriteItem and TransactWriteItems (1 per item). "
            "Writes during invoices and payments divided by invoices + payments; customers separately. Checked: "
            "every event POSTED, one balanced ledger document per invoice and payment, every lineage record POSTED."
        ),
        "aws_calls_per_webhook": (
            f"billing_sync.handlers.stripe_webhook.lambda_handler invoked in process, starting cold (composition "
            f"and Powertools parameter caches cleared), with {webhooks} distinct signed invoice.finalized API "
            "Gateway REST proxy events, against moto (the stack's resources provisioned from the "
            "synthesised template by billing_sync_ops.local_stack: S3 bucket, EventBridge bus, SQS queue, DynamoDB "
            "lineage table, Secrets Manager secret). Every call by any botocore client, including Powertools' "
            "GetSecretValue (cached for 300 s), is counted by wrapping BaseClient._make_api_call; total divided "
            "by webhooks. Checked: every response 200 PUBLISHED and one raw payload per webhook in S3."
        ),
        "ingest_cpu_us_per_event": (
            f"time.process_time_ns() around {webhooks} webhook handler invocations after {WARM_UP_EVENTS} warm-up "
            "invocations, divided by the invocations; logs and EMF metrics stay at the deployed level and go to "
            "a temporary file, whose bytes and lines are counted (ingest_log_bytes_per_event, EMF separately). "
            "It includes moto's in-process emulation of S3, EventBridge and Secrets Manager, so it is an "
            "upper bound. `ingest_cpu_us_per_event_excluding_aws` subtracts the CPU time spent inside moto's "
            "botocore before-send hook (timed with thread_time_ns in the same loop); botocore's own request "
            "building, signing and response parsing, which also run in Lambda, stay in."
        ),
        "posting_cpu_us_per_event": (
            "time.process_time_ns() around billing_sync.handlers.post_to_erp.lambda_handler invocations with SQS "
            f"batches of {POSTING_BATCH_SIZE} records whose bodies are billing bus EventBridge envelopes of the "
            f"canonical events (customers, then {invoices} invoices, then their payments), after "
            f"{WARM_UP_EVENTS} warm-up records, divided by the measured records. Includes moto's in-process "
            "DynamoDB (an upper bound); `posting_cpu_us_per_event_excluding_aws` subtracts moto's before-send "
            "time as for ingest. Checked: no batch item failures, all documents and lineage POSTED."
        ),
        "local_runtime_efficiency": _local_runtime_method(min(invoices, LOCAL_RUNTIME_INVOICES)),
    }


def _measured(*, cold_path_runs: int, webhooks: int, invoices: int, python: str | None = None) -> dict[str, Any]:
    """The phases the cold start and the cost model need, flattened into bench keys."""
    _progress(f"cold path: {cold_path_runs} rounds of {len(HANDLER_MODULES)} handlers and their boto3 baselines")
    cold = measure_cold_path(cold_path_runs, python)
    _progress(f"posting: DynamoDB writes for {invoices} invoices, {invoices} payments and their customers")
    writes = count_ddb_writes(invoices)
    _progress(f"ingest: AWS calls for {webhooks} webhooks")
    calls = count_ingest_calls(webhooks)
    _progress(f"ingest: warm CPU and logs over {webhooks} webhooks")
    ingest_cpu = measure_ingest_cpu(webhooks)
    _progress(f"posting: warm CPU and logs over {invoices} invoices, {invoices} payments and their customers")
    posting_cpu = measure_posting_cpu(invoices)
    return {
        **{key: value for key, value in cold.items() if key != "cold_path_samples_ms"},
        "ddb_writes_per_posted_event": writes["ddb_writes_per_posted_event"],
        "ddb_writes_per_invoice": writes["ddb_writes_per_invoice"],
        "ddb_writes_per_payment": writes["ddb_writes_per_payment"],
        "ddb_writes_per_customer_upsert": writes["ddb_writes_per_customer_upsert"],
        "ddb_writes_breakdown": writes["ddb_writes_breakdown"],
        "ddb_request_units_per_event": writes["ddb_request_units_per_event"],
        "posting_aws_calls_breakdown": writes["aws_calls_breakdown"],
        "posting_aws_calls_per_event": writes["aws_calls_per_event"],
        "aws_calls_per_webhook": calls["aws_calls_per_webhook"],
        "aws_calls_per_webhook_breakdown": calls["aws_calls_per_webhook_breakdown"],
        "aws_calls_breakdown": calls["aws_calls_breakdown"],
        **{f"ingest_{key}": value for key, value in ingest_cpu.items() if key not in ("events", "emf_metrics")},
        **{f"posting_{key}": value for key, value in posting_cpu.items() if key not in ("events", "emf_metrics")},
        "emf_metrics": sorted(set(ingest_cpu["emf_metrics"]) | set(posting_cpu["emf_metrics"])),
        "counts": {
            "cold_path_runs": cold_path_runs,
            "webhooks": calls["webhooks"],
            "ingest_cpu_events": ingest_cpu["events"],
            "customers": writes["customers"],
            "invoices": writes["invoices"],
            "payments": writes["payments"],
            "posting_cpu_events": posting_cpu["events"],
        },
        "cold_path_samples_ms": cold["cold_path_samples_ms"],
    }


def measure_cost(*, cold_path_runs: int = 1, webhooks: int = 100, invoices: int = 40) -> dict[str, Any]:
    """`make cost`: the measured phases the cost model needs, priced (see billing_sync_ops.cost)."""
    from billing_sync_ops import cost

    results = _measured(cold_path_runs=cold_path_runs, webhooks=webhooks, invoices=invoices)
    priced = cost.cost_from_bench(results, _stack_template(), cost.PriceTable.load())
    return priced | {"measured": {key: value for key, value in results.items() if key != "cold_path_samples_ms"}}


def run(*, cold_path_runs: int, webhooks: int, invoices: int) -> dict[str, Any]:
    from billing_sync_ops import cost

    started = time.monotonic()
    results = _measured(cold_path_runs=cold_path_runs, webhooks=webhooks, invoices=invoices)
    results["cost"] = cost.cost_from_bench(results, _stack_template(), cost.PriceTable.load())
    results["usd_per_million_events"] = results["cost"]["usd_per_million_events"]
    # Other phases register here: results.update(<module>.run(...)), with their targets in TARGETS.
    from billing_sync_ops import bench_posting  # batch10_over_single, DynamoDB writes and round trips

    _progress("posting: batches of 10 against one record with a 100 ms ERP, DynamoDB calls per posted event")
    results.update(bench_posting.run(invoices=min(invoices, 50)))
    results.update(measure_local_runtime(invoices=min(invoices, LOCAL_RUNTIME_INVOICES)))
    return _finished(results, started, _method(cold_path_runs, webhooks, invoices))


def run_part(part: str, *, invoices: int) -> dict[str, Any]:
    """One phase of PARTS by itself, with its targets, method and machine."""
    started = time.monotonic()
    if part != "local_runtime":
        raise ValueError(f"unknown part {part!r}; one of {', '.join(PARTS)}")
    results = measure_local_runtime(invoices=invoices)
    return _finished(results, started, {"local_runtime_efficiency": _local_runtime_method(invoices)})


def _finished(results: dict[str, Any], started: float, method: dict[str, str]) -> dict[str, Any]:
    results["targets"] = {
        name: {
            "target": target,
            "value": results[name],
            "met": results[name] >= target if name in AT_LEAST else results[name] <= target,
        }
        for name, target in TARGETS.items()
        if name in results
    }
    results["method"] = method
    results["machine"] = _machine()
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    return results


def _summary(results: Mapping[str, Any]) -> str:
    from billing_sync_ops import cost

    lines = [f"billing-sync bench ({results['wall_seconds']} s)"]
    for name, target in results["targets"].items():
        bound = ">=" if name in AT_LEAST else "<="
        lines.append(
            f"  {name}: {target['value']} (target {bound} {target['target']}: {'met' if target['met'] else 'MISSED'})"
        )
    if "local_runtime_efficiency" in results:
        lines.append(
            f"  local_runtime_events_per_second: {results['local_runtime_events_per_second']} "
            f"vs bare posting {results['bare_posting_events_per_second']}"
        )
    if "cold_path_runtime" not in results:
        return "\n".join(lines)
    runtime = results["cold_path_runtime"]
    lines += [
        f"  cold_path_ratios: {results['cold_path_ratios']} on Python {runtime['python']} {runtime['machine']}",
        f"  cold_path_cpu_ms: {results['cold_path_cpu_ms']} vs boto3 + clients {results['cold_path_baseline_cpu_ms']}",
        f"  ddb_writes_per_customer_upsert: {results['ddb_writes_per_customer_upsert']}",
        f"  aws_calls_per_webhook: {results['aws_calls_per_webhook']} {results['aws_calls_breakdown']}",
        f"  ingest_cpu_us_per_event: {results['ingest_cpu_us_per_event']} "
        f"(excluding moto {results['ingest_cpu_us_per_event_excluding_aws']})",
        f"  posting_cpu_us_per_event: {results['posting_cpu_us_per_event']} "
        f"(excluding moto {results['posting_cpu_us_per_event_excluding_aws']})",
        cost.table(results["cost"]),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="billing_sync_ops.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "build" / "bench.json")
    parser.add_argument("--cold-path-runs", type=int, default=9)
    parser.add_argument("--webhooks", type=int, default=300)
    parser.add_argument("--invoices", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="small inputs, for a smoke test")
    parser.add_argument(
        "--only", choices=PARTS, help="run only this phase (written to build/bench-<part>.json unless --output)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.cold_path_runs, args.webhooks, args.invoices = 3, 30, 20
    try:
        if args.only:
            if args.output == parser.get_default("output"):
                args.output = REPO_ROOT / "build" / f"bench-{args.only}.json"
            invoices = min(args.invoices, LOCAL_RUNTIME_INVOICES)
            results = run_part(args.only, invoices=invoices)
        else:
            results = run(cold_path_runs=args.cold_path_runs, webhooks=args.webhooks, invoices=args.invoices)
    except BenchCheckFailed as exc:
        print(f"[bench] correctness check failed: {exc}", file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(_summary(results), file=sys.stderr)
    print(f"[bench] wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
