"""`make cost`: dollars per million events, from counted AWS usage per event type times a dated price table.

The usage comes from the bench's counters and clocks (billing_sync_ops.bench): AWS calls per webhook and per
posted event of each kind, DynamoDB request units estimated from the request parameters, log bytes the
handlers actually wrote, CPU time per event; the deployment (memory, tracing, sampling, log level, access log
format) from the synthesised template. What the bench cannot see (API Gateway and the SQS event source
mapping's own requests, how often Lambda starts an environment, AWS-side latency) is an assumption, named in
`ASSUMPTIONS` and in the output. Prices: `prices_us_east_1.json`, each with its date and source page.

    python -m billing_sync_ops.cost [--bench build/bench.json] [--output build/cost.json]

Without `--bench`, the counting and timing phases the model needs run first (about a minute).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

PRICES_FILE = Path(__file__).with_name("prices_us_east_1.json")
MIX = {"customer": 0.20, "invoice": 0.40, "payment": 0.40}
EVENTS_PER_MONTH = 1_000_000
SECONDS_PER_MONTH = 30 * 24 * 3600
GIB = 1024**3
# Lambda allocates CPU in proportion to memory: one full vCPU at 1,769 MB.
FULL_VCPU_MB = 1769
# Assumptions: in-region round trips as the function waits for them (p50-ish), in milliseconds.
AWS_LATENCY_MS = {
    "dynamodb": 6.0,
    "s3": 25.0,
    "events": 20.0,
    "sqs": 12.0,
    "secretsmanager": 20.0,
    "stepfunctions": 25.0,
}
DEFAULT_LATENCY_MS = 20.0
# Lambda's own sampling under active tracing: the first request each second, then 5 % (not configurable).
ACTIVE_RESERVOIR_PER_SECOND = 1.0
ACTIVE_FIXED_RATE = 0.05
# Assumption: Lambda replaces a busy function's environment about once an hour; each start bills its INIT.
COLD_STARTS_PER_FUNCTION_PER_MONTH = 30 * 24
# DynamoDB refreshes a table's data key about every 5 minutes per table in use, SQS once per data key reuse
# period per principal and queue, CloudWatch Logs per log group and stream roll: an estimate, not a count.
KMS_FIXED_REQUESTS_PER_MONTH = 100_000
ASSUMPTIONS = (
    f"Volume {EVENTS_PER_MONTH:,} events a month, spread evenly ({EVENTS_PER_MONTH / SECONDS_PER_MONTH:.2f}/s): "
    "fixed monthly items (custom metrics, the secret) are divided by it.",
    "List prices, first tier, no free tier; the ERP (the ledger's own table) is counted as DynamoDB usage, "
    "the ERP service itself is excluded.",
    "Lambda duration = measured CPU per event (this machine, moto excluded) x 1769 MB / memory (the vCPU "
    f"share below 1,769 MB) + counted AWS calls x assumed latency {AWS_LATENCY_MS} ms, rounded up to 1 ms "
    "per invocation; Graviton and this machine's core are assumed equally fast.",
    "Posting batches hold one record at this volume (the SQS event source mapping has no batching window): "
    "one posting invocation, one ReceiveMessage and one DeleteMessageBatch per event, plus EventBridge's "
    "SendMessage to the queue. The mapping's empty long polls are a fixed cost left out (about $0.3 a month).",
    "DynamoDB units from request parameters: a PutItem by its item size (1 KB units), an UpdateItem or "
    "DeleteItem as 1 WRU (items under 1 KB), transactional items 2x; reads 1 RRU strongly consistent, 0.5 "
    "eventually consistent (items under 4 KB). A failed conditional write still pays its units.",
    "Secrets Manager: one GetSecretValue per warm environment per cache age (300 s), not per event.",
    "X-Ray: one trace per webhook request and one per posting invocation when recorded; under active tracing "
    "Lambda records the first request each second and 5 % of the rest, so at this volume every invocation; "
    "with pass-through tracing, a request is recorded at the API stage's sampling rule rate and a posting "
    "invocation at most at the same rate.",
    "Log bytes: what the handlers wrote to stdout in the bench (Powertools JSON logs and EMF metrics); "
    "Lambda's START/END/REPORT lines are not sent at system log level WARN; API Gateway access logs are "
    "estimated from the stage's format with 16-byte values; GB = 2^30 bytes.",
    f"INIT duration is billed (since August 2025): {COLD_STARTS_PER_FUNCTION_PER_MONTH} cold starts per "
    "function a month, each the bench's measured cold path.",
    "WAF inspects every webhook request once; its web ACL and rules are fixed monthly items.",
    "KMS: S3 bucket keys, SQS's 24-hour data key reuse and DynamoDB's table keys keep customer managed keys off "
    f"the per-event path; what remains is one Decrypt per GetSecretValue and about {KMS_FIXED_REQUESTS_PER_MONTH:,} "
    "requests a month for the services' cached data keys (a fixed item).",
    "Backups: each event leaves its written bytes in the tables; every retained backup copy stores them again "
    "at the warm price, so backup cost is per month of keeping a million events, reported apart from the total.",
)


class PriceTableError(ValueError):
    """The price table lacks a date, a source or a usable figure for an item."""


@dataclass(frozen=True, kw_only=True)
class Price:
    item: str
    usd: float
    per: float
    unit: str
    source: str
    as_of: date

    @property
    def usd_per_unit(self) -> float:
        return self.usd / self.per


@dataclass(frozen=True, kw_only=True)
class PriceTable:
    region: str
    as_of: date
    prices: Mapping[str, Price]

    @classmethod
    def load(cls, path: Path = PRICES_FILE) -> PriceTable:
        """Raises PriceTableError when the table or an item has no date or source, or a figure is unusable."""
        data = json.loads(path.read_text())
        try:
            as_of = date.fromisoformat(data["as_of"])
            prices = {}
            for item, entry in data["prices"].items():
                source = entry["source"]
                if not re.match(r"^https://\S+$", source):
                    raise PriceTableError(f"{item}: source {source!r} is not a URL")
                if not (entry["usd"] >= 0 and entry["per"] > 0):
                    raise PriceTableError(f"{item}: {entry['usd']} per {entry['per']} is not a price")
                prices[item] = Price(
                    item=item,
                    usd=float(entry["usd"]),
                    per=float(entry["per"]),
                    unit=entry["unit"],
                    source=source,
                    as_of=date.fromisoformat(entry["as_of"]),
                )
        except (KeyError, TypeError) as exc:
            raise PriceTableError(f"{path.name}: missing {exc}") from exc
        return cls(region=data["region"], as_of=as_of, prices=prices)


@dataclass(frozen=True, kw_only=True)
class FunctionProfile:
    """One function's share of one event: counted calls, request units, measured CPU and log bytes."""

    aws_calls: Mapping[str, float]
    cpu_ms: float
    log_bytes: float
    memory_mb: int
    traced_fraction: float
    ddb_wru: float = 0.0
    ddb_rru: float = 0.0
    invocations: float = 1.0


@dataclass(frozen=True, kw_only=True)
class Deployment:
    """What the synthesised template decides about cost, read by `deployment_from_template`."""

    webhook_memory_mb: int
    posting_memory_mb: int
    lambda_tracing: str  # Active or PassThrough
    api_tracing: bool
    api_sampling_rate: float | None  # the fixed rate of a sampling rule for the webhook path, if any
    access_log_bytes: int
    log_level: str
    custom_metrics: int = 0
    secrets: int = 1
    web_acls: int = 0
    web_acl_rules: int = 0
    kms_keys: int = 0
    secrets_on_customer_keys: bool = False
    backup_copies_retained: int = 0

    def traced_fraction(self, events_per_second: float) -> float:
        if self.lambda_tracing == "Active":
            return lambda_active_traced_fraction(events_per_second)
        if not self.api_tracing:
            return 0.0
        return self.api_sampling_rate if self.api_sampling_rate is not None else 1.0


def lambda_active_traced_fraction(requests_per_second: float) -> float:
    """The share of requests Lambda's fixed sampling (1/s reservoir, then 5 %) records."""
    if requests_per_second <= ACTIVE_RESERVOIR_PER_SECOND:
        return 1.0
    extra = requests_per_second - ACTIVE_RESERVOIR_PER_SECOND
    return (ACTIVE_RESERVOIR_PER_SECOND + ACTIVE_FIXED_RATE * extra) / requests_per_second


def billed_ms(profile: FunctionProfile) -> float:
    """One invocation's billed duration: CPU at the memory's vCPU share plus the awaited AWS round trips."""
    cpu_share = min(1.0, profile.memory_mb / FULL_VCPU_MB)
    waiting = sum(
        count * AWS_LATENCY_MS.get(call.partition(".")[0], DEFAULT_LATENCY_MS)
        for call, count in profile.aws_calls.items()
    )
    return float(math.ceil(profile.cpu_ms / cpu_share + waiting / profile.invocations))


def function_usage(profile: FunctionProfile) -> dict[str, float]:
    """Priced units per event for one function's part: requests, GB-seconds, AWS calls, traces, logs."""
    calls = profile.aws_calls
    sqs_calls = sum(count for call, count in calls.items() if call.startswith("sqs."))
    return {
        "lambda_requests": profile.invocations,
        "lambda_arm64_gb_second": profile.invocations * billed_ms(profile) / 1000 * profile.memory_mb / 1024,
        "s3_standard_put": calls.get("s3.PutObject", 0.0),
        "eventbridge_custom_events": calls.get("events.PutEvents", 0.0),
        "sqs_standard_requests": sqs_calls,
        "dynamodb_on_demand_wru": profile.ddb_wru,
        "dynamodb_on_demand_rru": profile.ddb_rru,
        "secrets_manager_api_calls": calls.get("secretsmanager.GetSecretValue", 0.0),
        "step_functions_standard_transitions": 0.0,
        "xray_traces_recorded": profile.invocations * profile.traced_fraction,
        "cloudwatch_logs_ingestion_gb": profile.log_bytes / GIB,
    }


@dataclass(frozen=True, kw_only=True)
class EventUsage:
    """Everything one event of a type uses, in priced units."""

    units: dict[str, float] = field(default_factory=dict)

    def add(self, more: Mapping[str, float]) -> None:
        for item, value in more.items():
            self.units[item] = self.units.get(item, 0.0) + value


def usage_per_event(
    *,
    webhook: FunctionProfile,
    posting: FunctionProfile,
    deployment: Deployment,
    cold_path_ms: float = 0.0,
    events_per_month: int = EVENTS_PER_MONTH,
    secret_cache_seconds: int = 300,
) -> dict[str, float]:
    """One event through the webhook path and the posting path, with the pieces the bench cannot count."""
    usage = EventUsage()
    usage.add(function_usage(webhook))
    usage.add(function_usage(posting))
    # What AWS does around the code: the API request and its access log line, EventBridge's SendMessage to
    # the posting queue, the event source mapping's ReceiveMessage and DeleteMessageBatch per batch.
    usage.add(
        {
            "api_gateway_rest_requests": 1.0,
            "cloudwatch_logs_ingestion_gb": deployment.access_log_bytes / GIB,
            "sqs_standard_requests": 1.0 + 2.0 * posting.invocations,
            # one read per warm environment per cache age, not the bench's once per run
            "secrets_manager_api_calls": SECONDS_PER_MONTH / secret_cache_seconds / events_per_month,
        }
    )
    if deployment.web_acls:
        usage.add({"waf_requests": 1.0})
    if deployment.secrets_on_customer_keys:
        usage.add({"kms_requests": usage.units["secrets_manager_api_calls"]})
    init_gb_seconds = sum(
        COLD_STARTS_PER_FUNCTION_PER_MONTH
        / events_per_month
        * cold_path_ms
        / min(1.0, memory / FULL_VCPU_MB)
        / 1000
        * memory
        / 1024
        for memory in (deployment.webhook_memory_mb, deployment.posting_memory_mb)
    )
    usage.add({"lambda_arm64_gb_second": init_gb_seconds})
    return usage.units


def price_mix(
    usage_by_type: Mapping[str, Mapping[str, float]],
    *,
    prices: PriceTable,
    mix: Mapping[str, float] = MIX,
    fixed_monthly_units: Mapping[str, float] | None = None,
    events_per_month: int = EVENTS_PER_MONTH,
) -> dict[str, Any]:
    """Dollars per million events for the mix, itemised by price item and by event type; raises KeyError
    for a priced item missing from the table."""
    if abs(sum(mix.values()) - 1.0) > 1e-9:
        raise ValueError(f"the mix {dict(mix)} does not add up to 1")
    by_item: dict[str, float] = {}
    by_type: dict[str, float] = {}
    units_per_million: dict[str, float] = {}
    for event_type, share in mix.items():
        type_total = 0.0
        for item, units in usage_by_type[event_type].items():
            dollars = share * units * 1_000_000 * prices.prices[item].usd_per_unit
            by_item[item] = by_item.get(item, 0.0) + dollars
            units_per_million[item] = units_per_million.get(item, 0.0) + share * units * 1_000_000
            type_total += units * 1_000_000 * prices.prices[item].usd_per_unit
        by_type[event_type] = type_total
    fixed = {
        item: units * prices.prices[item].usd * 1_000_000 / events_per_month / prices.prices[item].per
        for item, units in (fixed_monthly_units or {}).items()
    }
    for item, dollars in fixed.items():
        by_item[item] = by_item.get(item, 0.0) + dollars
    total = sum(by_item.values())
    return {
        "usd_per_million_events": round(total, 2),
        "variable_usd_per_million_events": round(total - sum(fixed.values()), 2),
        "fixed_usd_per_month": round(sum(fixed.values()) * events_per_month / 1_000_000, 2),
        "by_item_usd": {item: round(value, 4) for item, value in sorted(by_item.items(), key=lambda kv: -kv[1])},
        "by_event_type_usd_per_million": {kind: round(value, 4) for kind, value in by_type.items()},
        "units_per_million_events": {item: round(value, 1) for item, value in sorted(units_per_million.items())},
        "mix": dict(mix),
        "events_per_month": events_per_month,
        "prices_as_of": prices.as_of.isoformat(),
    }


# Not deployed: what the model says a change would save, for a decision by the owners of those paths.
# Raw payloads to S3 through Firehose (one 5 KB-rounded record each; Firehose writes one object per buffer
# of events, so S3 PUTs fall to a few thousand a month, left out), and an HTTP API in place of the REST API.
FIREHOSE_RECORD_GB = 5 * 1024 / GIB
WHAT_IF: dict[str, dict[str, float]] = {
    "archive_through_firehose": {"s3_standard_put": 0.0, "firehose_direct_put_gb": FIREHOSE_RECORD_GB},
    "http_api": {"api_gateway_rest_requests": 0.0, "api_gateway_http_requests": 1.0},
    "archive_through_firehose_and_http_api": {
        "s3_standard_put": 0.0,
        "firehose_direct_put_gb": FIREHOSE_RECORD_GB,
        "api_gateway_rest_requests": 0.0,
        "api_gateway_http_requests": 1.0,
    },
}


def _with(units: Mapping[str, float], changes: Mapping[str, float]) -> dict[str, float]:
    return {**units, **changes}


# ---- the deployment, from the synthesised template ----


def _function(template: Mapping[str, Any], module: str) -> Mapping[str, Any]:
    handler = f"billing_sync.handlers.{module}.lambda_handler"
    for resource in template["Resources"].values():
        if resource["Type"] == "AWS::Lambda::Function" and resource["Properties"].get("Handler") == handler:
            return resource["Properties"]
    raise KeyError(f"no function with handler {handler}")


def access_log_bytes(log_format: str, value_bytes: int = 16) -> int:
    """An access log line's size: the stage's format with each `$context.*` variable `value_bytes` long."""
    return len(re.sub(r"\$context\.[A-Za-z0-9_.]+", "x" * value_bytes, log_format).encode()) + 1


def deployment_from_template(template: Mapping[str, Any], *, custom_metrics: int = 0) -> Deployment:
    """Memory, tracing, sampling, access log size and log level of the webhook and posting functions."""
    webhook, posting = _function(template, "stripe_webhook"), _function(template, "post_to_erp")
    stages = [r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::ApiGateway::Stage"]
    stage = stages[0] if stages else {}
    rules = [
        r["Properties"]["SamplingRule"]
        for r in template["Resources"].values()
        if r["Type"] == "AWS::XRay::SamplingRule"
    ]
    webhook_rules = [rule for rule in rules if rule.get("URLPath", "*") in ("*", "/webhooks/*", "/webhooks/stripe")]
    webhook_rule = min(webhook_rules, key=lambda rule: rule["Priority"]) if webhook_rules else None
    log_format = stage.get("AccessLogSetting", {}).get("Format", "")
    modes = {
        webhook.get("TracingConfig", {}).get("Mode", "PassThrough"),
        posting.get("TracingConfig", {}).get("Mode", "PassThrough"),
    }
    resources = list(template["Resources"].values())
    secrets = [r for r in resources if r["Type"] == "AWS::SecretsManager::Secret"]
    web_acls = [r["Properties"] for r in resources if r["Type"] == "AWS::WAFv2::WebACL"]
    return Deployment(
        webhook_memory_mb=int(webhook.get("MemorySize", 128)),
        posting_memory_mb=int(posting.get("MemorySize", 128)),
        lambda_tracing="Active" if "Active" in modes else "PassThrough",
        api_tracing=bool(stage.get("TracingEnabled", False)),
        api_sampling_rate=float(webhook_rule["FixedRate"]) if webhook_rule else None,
        access_log_bytes=access_log_bytes(log_format) if isinstance(log_format, str) and log_format else 0,
        log_level=webhook.get("Environment", {}).get("Variables", {}).get("POWERTOOLS_LOG_LEVEL", "INFO"),
        custom_metrics=custom_metrics,
        secrets=len(secrets),
        web_acls=len(web_acls),
        web_acl_rules=sum(len(acl.get("Rules", [])) for acl in web_acls),
        kms_keys=sum(1 for r in resources if r["Type"] == "AWS::KMS::Key"),
        secrets_on_customer_keys=bool(secrets) and all("KmsKeyId" in r["Properties"] for r in secrets),
        backup_copies_retained=backup_copies_retained(resources),
    )


def backup_copies_retained(resources: list[Mapping[str, Any]]) -> int:
    """How many copies of a table the backup plans keep at once: per rule, the days it runs in a month (its
    cron day of month: `*`, a range `2-31`, a list `1,15` or a day) times its retention in days, over 30."""
    copies = 0
    for resource in resources:
        if resource["Type"] != "AWS::Backup::BackupPlan":
            continue
        for rule in resource["Properties"]["BackupPlan"]["BackupPlanRule"]:
            days = int(rule.get("Lifecycle", {}).get("DeleteAfterDays", 0))
            # cron(min hour day-of-month month day-of-week year)
            fields = str(rule.get("ScheduleExpression", "")).removeprefix("cron(").removesuffix(")").split()
            runs_a_month = _days_of_month(fields[2]) if len(fields) >= 3 else 1
            copies += max(1, round(days * runs_a_month / 30)) if days else 1
    return copies


def _days_of_month(field: str) -> int:
    if field in {"*", "?"}:
        return 30
    count = 0
    for part in field.split(","):
        first, _, last = part.partition("-")
        count += int(last) - int(first) + 1 if last else 1
    return min(count, 30)


# ---- from the bench's measurements ----


def cost_from_bench(results: Mapping[str, Any], template: Mapping[str, Any], prices: PriceTable) -> dict[str, Any]:
    """The itemised model from `make bench` results (counters, clocks, captured logs) and the template."""
    deployment = deployment_from_template(template, custom_metrics=len(results["emf_metrics"]))
    rate = EVENTS_PER_MONTH / SECONDS_PER_MONTH
    traced = deployment.traced_fraction(rate)
    webhooks = results["aws_calls_per_webhook_breakdown"]
    webhook = FunctionProfile(
        aws_calls={call: count for call, count in webhooks.items() if call != "secretsmanager.GetSecretValue"},
        cpu_ms=results["ingest_cpu_us_per_event_excluding_aws"] / 1000,
        log_bytes=results["ingest_log_bytes_per_event"],
        memory_mb=deployment.webhook_memory_mb,
        traced_fraction=traced,
    )
    usage_by_type = {}
    for kind in MIX:
        posting = FunctionProfile(
            aws_calls=results["posting_aws_calls_per_event"][kind],
            ddb_wru=results["ddb_request_units_per_event"][kind]["wru"],
            ddb_rru=results["ddb_request_units_per_event"][kind]["rru"],
            cpu_ms=results["posting_cpu_us_per_event_excluding_aws"] / 1000,
            # one record per batch at this volume: each event pays a whole invocation's EMF blob
            log_bytes=results["posting_log_bytes_per_event_without_emf"] + results["posting_emf_bytes_per_invocation"],
            memory_mb=deployment.posting_memory_mb,
            traced_fraction=traced,
        )
        usage_by_type[kind] = usage_per_event(
            webhook=webhook,
            posting=posting,
            deployment=deployment,
            cold_path_ms=max(results.get("cold_path_cpu_ms", {}).values(), default=0.0),
        )
    fixed_units = {
        "cloudwatch_custom_metric_month": deployment.custom_metrics,
        "secrets_manager_secret_month": deployment.secrets,
        "waf_web_acl_month": deployment.web_acls,
        "waf_rule_month": deployment.web_acl_rules,
        "kms_key_month": deployment.kms_keys,
        "kms_requests": KMS_FIXED_REQUESTS_PER_MONTH if deployment.kms_keys else 0,
    }
    priced = price_mix(usage_by_type, prices=prices, fixed_monthly_units=fixed_units)
    # Before the edge, key and backup controls: the same usage without WAF, customer keys and their requests.
    controls = ("waf_requests", "kms_requests")
    priced["usd_per_million_events_without_security_controls"] = price_mix(
        {kind: {k: v for k, v in units.items() if k not in controls} for kind, units in usage_by_type.items()},
        prices=prices,
        fixed_monthly_units={
            "cloudwatch_custom_metric_month": deployment.custom_metrics,
            "secrets_manager_secret_month": deployment.secrets,
        },
    )["usd_per_million_events"]
    stored_kb = sum(share * results["ddb_request_units_per_event"][kind]["wru"] for kind, share in MIX.items())
    priced["backup_usd_per_month_per_million_events_kept"] = round(
        stored_kb
        * 1024
        * 1_000_000
        / GIB
        * deployment.backup_copies_retained
        * prices.prices["backup_dynamodb_warm_gb_month"].usd_per_unit,
        2,
    )
    priced["what_if"] = {
        name: price_mix(
            {kind: _with(units, changes) for kind, units in usage_by_type.items()},
            prices=prices,
            fixed_monthly_units=fixed_units,
        )["usd_per_million_events"]
        for name, changes in WHAT_IF.items()
    }
    priced["deployment"] = {
        "webhook_memory_mb": deployment.webhook_memory_mb,
        "posting_memory_mb": deployment.posting_memory_mb,
        "lambda_tracing": deployment.lambda_tracing,
        "api_tracing": deployment.api_tracing,
        "api_sampling_rate": deployment.api_sampling_rate,
        "traced_fraction": round(traced, 4),
        "access_log_bytes": deployment.access_log_bytes,
        "log_level": deployment.log_level,
        "custom_metrics": deployment.custom_metrics,
        "secrets": deployment.secrets,
        "web_acls": deployment.web_acls,
        "web_acl_rules": deployment.web_acl_rules,
        "kms_keys": deployment.kms_keys,
        "backup_copies_retained": deployment.backup_copies_retained,
        "webhook_billed_ms": billed_ms(webhook),
    }
    priced["usage_per_event"] = {
        kind: {k: round(v, 9) for k, v in units.items()} for kind, units in usage_by_type.items()
    }
    priced["assumptions"] = list(ASSUMPTIONS)
    priced["price_sources"] = {item: price.source for item, price in prices.prices.items()}
    return priced


def table(cost: Mapping[str, Any]) -> str:
    """The itemised model as a readable table."""
    lines = [
        f"USD per million events, mix {cost['mix']} at {cost['events_per_month']:,} events/month "
        f"(us-east-1 list prices as of {cost['prices_as_of']})",
        f"{'item':38} {'units per 1M events':>22} {'USD':>10}",
    ]
    units = cost["units_per_million_events"]
    for item, dollars in cost["by_item_usd"].items():
        amount = f"{units[item]:,.1f}" if item in units else "fixed/month"
        lines.append(f"{item:38} {amount:>22} {dollars:>10.2f}")
    lines.append(f"{'total':38} {'':>22} {cost['usd_per_million_events']:>10.2f}")
    what_if = cost.get("what_if", {})
    if what_if:
        lines.append("not deployed, what if: " + ", ".join(f"{k} {v:.2f}" for k, v in what_if.items()))
    lines.append(
        "by event type: " + ", ".join(f"{k} {v:.2f}" for k, v in cost["by_event_type_usd_per_million"].items())
    )
    lines.append(
        f"variable {cost['variable_usd_per_million_events']:.2f} per million events + fixed "
        f"{cost['fixed_usd_per_month']:.2f} a month"
    )
    if "usd_per_million_events_without_security_controls" in cost:
        lines.append(
            f"without WAF, customer managed keys and their requests: "
            f"{cost['usd_per_million_events_without_security_controls']:.2f}; backups: "
            f"{cost['backup_usd_per_month_per_million_events_kept']:.2f} a month per million events kept"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="billing_sync_ops.cost", description=__doc__.splitlines()[0])
    parser.add_argument("--bench", type=Path, help="a bench.json to price instead of measuring now")
    parser.add_argument("--output", type=Path, default=Path("build") / "cost.json")
    args = parser.parse_args(argv)
    from billing_sync_ops import bench

    cost = json.loads(args.bench.read_text())["cost"] if args.bench else bench.measure_cost()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(cost, indent=2) + "\n")
    print(table(cost))
    print(f"[cost] wrote {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
