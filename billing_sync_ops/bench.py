"""`make bench`: cold-start import cost, AWS calls and DynamoDB writes per event, warm CPU per event.

Everything is measured in one run on this machine: imports in fresh interpreters, the AWS paths in
process against moto (`mock_aws`) holding the synthesised stack's resources, provisioned as the local
runtime provisions them, with the real handlers, their environments from the template and the real
composition roots. Counts are counted by wrapping botocore's `BaseClient._make_api_call`, which every
client call goes through.

    python -m billing_sync_ops.bench --output build/bench.json [--quick]

Exits 1 when a phase's own correctness check fails (a refused webhook, an event not posted); a missed
target is reported in `targets`, not as a failure.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
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
    "handler_import_ratio": 1.6,
    "ddb_writes_per_posted_event": 3,
}

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


# ---- counting and timing AWS calls ----


class AwsCallCounter:
    """Counts every API call any botocore client makes, by `service.Operation`, and DynamoDB write requests."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.ddb_writes: Counter[str] = Counter()

    @contextlib.contextmanager
    def counting(self) -> Iterator[AwsCallCounter]:
        from botocore.client import BaseClient

        make_api_call = BaseClient._make_api_call
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

    def snapshot(self) -> tuple[Counter[str], Counter[str]]:
        return Counter(self.calls), Counter(self.ddb_writes)


def _ddb_write_requests(operation: str, params: Mapping[str, Any]) -> int:
    if operation == "BatchWriteItem":
        return sum(len(requests) for requests in params.get("RequestItems", {}).values())
    if operation == "TransactWriteItems":
        return len(params.get("TransactItems", []))
    return 1


@contextlib.contextmanager
def moto_cpu_time() -> Iterator[list[int]]:
    """Accumulates the CPU nanoseconds moto spends answering requests (its botocore before-send hook)."""
    from moto.core.botocore_stubber import BotocoreStubber

    answer = BotocoreStubber.__call__
    spent = [0]

    def timed(stubber: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.process_time_ns()
        try:
            return answer(stubber, *args, **kwargs)
        finally:
            spent[0] += time.process_time_ns() - started

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
            with moto_cpu_time() as moto_ns:
                started = time.process_time_ns()
                for event, context in zip(measured, contexts, strict=True):
                    responses.append(lambda_handler(event, context))
                elapsed = time.process_time_ns() - started
        _check_accepted(responses, len(events))
    return _cpu_figures(elapsed, moto_ns[0], webhooks)


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
        with counter.counting():
            for kind, details in phases.items():
                calls_before, writes_before = counter.snapshot()
                statuses = Counter(service.handle(detail).status for detail in details)
                _check(
                    statuses == Counter({PostingStatus.POSTED: len(details)}),
                    f"{kind} events: {dict(statuses)}, expected {len(details)} POSTED",
                )
                calls_after, writes_after = counter.snapshot()
                calls[kind], writes[kind] = calls_after - calls_before, writes_after - writes_before
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
            with moto_cpu_time() as moto_ns:
                started = time.process_time_ns()
                for batch, context in zip(measured, contexts[warm_up_batches:], strict=True):
                    responses.append(lambda_handler(batch, context))
                elapsed = time.process_time_ns() - started
        failures = sum(len(response.get("batchItemFailures", [])) for response in responses)
        _check(failures == 0, f"{failures} posting records failed")
        _check_books(names, documents=2 * invoices, lineage_posted=len(details))
    return _cpu_figures(elapsed, moto_ns[0], sum(len(batch["Records"]) for batch in measured))


# ---- the run ----


def _machine() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }


def _method(import_runs: int, webhooks: int, invoices: int) -> dict[str, str]:
    return {
        "handler_import_ratio": (
            f"Median over {import_runs} fresh interpreters of `python -X importtime -c 'import <handler>'` "
            "(cumulative microseconds on the handler module's own line, PYTHONPATH=functions), divided by the "
            f"median of `import boto3` over {import_runs} fresh interpreters in the same run; the largest ratio "
            "of the three handlers. Rounds alternate the order (baseline first, then handlers last-to-first) to "
            "spread drift. One discarded run per module first writes bytecode caches. The environment is the "
            "deployed one (POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE, POWERTOOLS_LOG_LEVEL=INFO, "
            "AWS_LAMBDA_FUNCTION_NAME, AWS_EXECUTION_ENV), with every other POWERTOOLS_* and PYTHON* variable "
            "removed. `handler_import_us_without_bytecode` imports a copy of billing_sync without __pycache__ "
            "and with PYTHONDONTWRITEBYTECODE=1, as the Lambda asset (which excludes *.pyc) is imported; "
            "libraries keep their bytecode in both cases."
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
            "invocations, divided by the invocations; logs and EMF metrics stay enabled (INFO) and go to "
            "/dev/null. It includes moto's in-process emulation of S3, EventBridge and Secrets Manager, so it is an "
            "upper bound. `ingest_cpu_us_per_event_excluding_aws` subtracts the CPU time spent inside moto's "
            "botocore before-send hook (timed with process_time_ns in the same loop); botocore's own request "
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
    }


def run(*, import_runs: int, webhooks: int, invoices: int) -> dict[str, Any]:
    started = time.monotonic()
    _progress(f"imports: {import_runs} rounds of boto3 and {len(HANDLER_MODULES)} handlers in fresh interpreters")
    imports = measure_imports(import_runs)
    _progress(f"posting: DynamoDB writes for {invoices} invoices, {invoices} payments and their customers")
    writes = count_ddb_writes(invoices)
    _progress(f"ingest: AWS calls for {webhooks} webhooks")
    calls = count_ingest_calls(webhooks)
    _progress(f"ingest: warm CPU over {webhooks} webhooks")
    ingest_cpu = measure_ingest_cpu(webhooks)
    _progress(f"posting: warm CPU over {invoices} invoices, {invoices} payments and their customers")
    posting_cpu = measure_posting_cpu(invoices)
    results: dict[str, Any] = {
        "handler_import_ratio": imports["handler_import_ratio"],
        "handler_import_us": imports["handler_import_us"],
        "boto3_import_us": imports["boto3_import_us"],
        "handler_import_ratios": imports["handler_import_ratios"],
        "handler_import_us_without_bytecode": imports["handler_import_us_without_bytecode"],
        "handler_import_ratio_without_bytecode": imports["handler_import_ratio_without_bytecode"],
        "ddb_writes_per_posted_event": writes["ddb_writes_per_posted_event"],
        "ddb_writes_per_invoice": writes["ddb_writes_per_invoice"],
        "ddb_writes_per_payment": writes["ddb_writes_per_payment"],
        "ddb_writes_per_customer_upsert": writes["ddb_writes_per_customer_upsert"],
        "ddb_writes_breakdown": writes["ddb_writes_breakdown"],
        "posting_aws_calls_breakdown": writes["aws_calls_breakdown"],
        "aws_calls_per_webhook": calls["aws_calls_per_webhook"],
        "aws_calls_per_webhook_breakdown": calls["aws_calls_per_webhook_breakdown"],
        "aws_calls_breakdown": calls["aws_calls_breakdown"],
        "ingest_cpu_us_per_event": ingest_cpu["cpu_us_per_event"],
        "ingest_cpu_us_per_event_excluding_aws": ingest_cpu["cpu_us_per_event_excluding_aws"],
        "ingest_moto_cpu_share": ingest_cpu["moto_cpu_share"],
        "posting_cpu_us_per_event": posting_cpu["cpu_us_per_event"],
        "posting_cpu_us_per_event_excluding_aws": posting_cpu["cpu_us_per_event_excluding_aws"],
        "posting_moto_cpu_share": posting_cpu["moto_cpu_share"],
        "counts": {
            "import_runs": import_runs,
            "webhooks": calls["webhooks"],
            "ingest_cpu_events": ingest_cpu["events"],
            "customers": writes["customers"],
            "invoices": writes["invoices"],
            "payments": writes["payments"],
            "posting_cpu_events": posting_cpu["events"],
        },
        "import_samples_us": imports["import_samples_us"],
    }
    results["targets"] = {
        name: {"target": target, "value": results[name], "met": results[name] <= target}
        for name, target in TARGETS.items()
    }
    results["method"] = _method(import_runs, webhooks, invoices)
    results["machine"] = _machine()
    results["wall_seconds"] = round(time.monotonic() - started, 1)
    return results


def _summary(results: Mapping[str, Any]) -> str:
    lines = [f"billing-sync bench ({results['wall_seconds']} s)"]
    for name, target in results["targets"].items():
        lines.append(
            f"  {name}: {target['value']} (target <= {target['target']}: {'met' if target['met'] else 'MISSED'})"
        )
    lines += [
        f"  handler_import_us: {results['handler_import_us']} vs boto3 {results['boto3_import_us']}",
        f"  ddb_writes_per_customer_upsert: {results['ddb_writes_per_customer_upsert']}",
        f"  aws_calls_per_webhook: {results['aws_calls_per_webhook']} {results['aws_calls_breakdown']}",
        f"  ingest_cpu_us_per_event: {results['ingest_cpu_us_per_event']} "
        f"(excluding moto {results['ingest_cpu_us_per_event_excluding_aws']})",
        f"  posting_cpu_us_per_event: {results['posting_cpu_us_per_event']} "
        f"(excluding moto {results['posting_cpu_us_per_event_excluding_aws']})",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="billing_sync_ops.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "build" / "bench.json")
    parser.add_argument("--import-runs", type=int, default=9)
    parser.add_argument("--webhooks", type=int, default=300)
    parser.add_argument("--invoices", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="small inputs, for a smoke test")
    args = parser.parse_args(argv)
    if args.quick:
        args.import_runs, args.webhooks, args.invoices = 3, 30, 20
    try:
        results = run(import_runs=args.import_runs, webhooks=args.webhooks, invoices=args.invoices)
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
