"""`billing-sync reconcile --period YYYY-MM [--entity E] [--json] [--out DIR]`: billing against the ERP.

Builds both sides' extracts through the ports (Stripe's list API through the SourceReader, the ERP through
`ErpClient.posted_documents`, lineage and the raw archive for which documents arrived as events), writes them
as Parquet under `DIR/extracts` (default `build/reconciliation`), runs the reconciliation SQL with DuckDB and
writes the JSON, CSV and HTML reports under `DIR/reports`. The Stripe API is, for a deployed stack
(`--stack-name`), api.stripe.com with the restricted key in the stack's secret; locally, the Stripe API double
the runtime serves (its `StripeApiBase` output) or, when the runtime publishes none, a double started here over
`events/stripe_api`. Exit codes: 0 reconciled (no document differs and every control balances), 1 differences
found (see the report) or the run failed (the message on stderr says why), 2 bad usage, 3 target not found.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from billing_sync.aws.archive import raw_object
from billing_sync.composition.reconciliation import reconciliation_kpis_of
from billing_sync.domain.errors import BillingSyncError
from billing_sync.domain.journal import DocumentKind
from billing_sync.domain.kpis import metric_rows
from billing_sync.domain.lineage import LineageRecord, LineageStatus
from billing_sync.domain.mapping import AccountMapping
from billing_sync.domain.ports import ErpClient, SourceReader
from billing_sync.erp.ledger import DynamoLedgerErpClient
from billing_sync.reconciliation.engine import CLASSES, Reconciliation, ReconciliationError, reconcile
from billing_sync.reconciliation.extracts import ExtractError, write_extracts
from billing_sync.reconciliation.report import LatencyRow, ReportPaths, format_amount, write_reports
from billing_sync.reconciliation.sources import build_extracts, raw_event_from_bytes
from billing_sync.sources.stripe.api import DEFAULT_API_BASE, StripeApiReader
from billing_sync.state.dynamo import DynamoLineageStore
from billing_sync_ops.ops.output import EXIT_ITEMS_FAILED, EXIT_OK, EXIT_USAGE, emit, log
from billing_sync_ops.ops.revenue import load_mapping
from billing_sync_ops.ops.target import Target, TargetNotFoundError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO_ROOT / "build" / "reconciliation"
LOCAL_STRIPE_FIXTURES = REPO_ROOT / "events" / "stripe_api"
LOCAL_STRIPE_KEY = "rk_local_double"
STRIPE_KEY_LOGICAL_ID = "StripeApiRestrictedKey"


@dataclass(frozen=True)
class ReconcilePorts:
    """What a reconciliation run reads: the source's API, the ERP, lineage and the raw archive."""

    reader: SourceReader
    erp: ErpClient
    lineage: Callable[[], Sequence[LineageRecord]]
    raw_event: Callable[[LineageRecord], Mapping[str, Any] | None]
    mapping: AccountMapping
    default_legal_entity: str


@dataclass(frozen=True)
class PeriodOutcome:
    result: Reconciliation
    reports: ReportPaths

    @property
    def reconciled(self) -> bool:
        return not self.result.difference_count and not self.result.control_breaks()


def run_reconciliation(
    ports: ReconcilePorts, periods: Sequence[str], *, out: Path, entity: str | None = None
) -> list[PeriodOutcome]:
    """Extracts for `periods` once, then the engine and the reports per period. Raises ExtractError,
    ReconciliationError, OSError and what the ports raise."""
    log(f"reading Stripe's list API, the ERP and lineage for {', '.join(periods)} ...")
    records = list(ports.lineage())
    extracts = build_extracts(
        reader=ports.reader,
        erp=ports.erp,
        lineage=records,
        raw_event=ports.raw_event,
        mapping=ports.mapping,
        periods=periods,
        default_legal_entity=ports.default_legal_entity,
    )
    extracts_root = out / "extracts"
    write_extracts(extracts_root, extracts)
    log(
        f"extracts under {extracts_root}: {len(extracts.billing_documents)} billing documents, "
        f"{len(extracts.erp_documents)} ERP documents, {len(extracts.lineage)} lineage records"
    )
    exceptions = Counter(
        str(record.category) for record in records if record.status is LineageStatus.EXCEPTION and record.category
    )
    latencies = _latencies(records, ports.raw_event)
    outcomes = []
    for period in periods:
        result = reconcile(extracts_root, period, entity)
        reports = write_reports(result, out / "reports", latencies=latencies, exceptions_by_category=exceptions)
        outcomes.append(PeriodOutcome(result, reports))
    return outcomes


def _latencies(
    records: Sequence[LineageRecord], raw_event: Callable[[LineageRecord], Mapping[str, Any] | None]
) -> list[LatencyRow]:
    """Billing event time (the raw event's `created`) to the ERP acknowledgement (lineage POSTED)."""
    rows = []
    for record in records:
        if record.status is not LineageStatus.POSTED or not record.erp_document_ids:
            continue
        payload = raw_event(record)
        created = payload.get("created") if payload else None
        if isinstance(created, int):
            billed = datetime.fromtimestamp(created, tz=record.last_seen.tzinfo)
            rows.append(LatencyRow(record.event_id, billed, max(record.last_seen, billed)))
    return rows


# ---- the target's ports ----


def _s3_reader(s3: Any) -> Callable[[LineageRecord], Mapping[str, Any] | None]:
    cache: dict[str, Mapping[str, Any] | None] = {}

    def raw_event(record: LineageRecord) -> Mapping[str, Any] | None:
        ref = record.raw_ref or ""
        located = raw_object(ref)
        if located is None:
            return None
        if ref not in cache:
            try:
                body = s3.get_object(**located.get_object_args())["Body"].read()
            except Exception:  # an unreadable payload only loses its `in_events` mark
                body = None
            cache[ref] = raw_event_from_bytes(body)
        return cache[ref]

    return raw_event


def ports_for(
    *,
    dynamodb: Any,
    s3: Any,
    outputs: Mapping[str, str],
    reader: SourceReader,
    mapping: AccountMapping,
    default_legal_entity: str,
) -> ReconcilePorts:
    """The ports over a stack's (or the local runtime's) tables and bucket."""
    lineage = DynamoLineageStore(dynamodb, outputs["LineageTableName"])
    return ReconcilePorts(
        reader=reader,
        erp=DynamoLedgerErpClient(dynamodb, outputs["LedgerTableName"]),
        lineage=lineage.scan,
        raw_event=_s3_reader(s3),
        mapping=mapping,
        default_legal_entity=default_legal_entity,
    )


@contextmanager
def _stripe_reader(target: Target, stack_name: str | None) -> Iterator[SourceReader]:
    if not target.local:
        yield StripeApiReader(DEFAULT_API_BASE, _stack_stripe_key(target, stack_name))
        return
    base = target.optional_output("StripeApiBase")
    if base:
        yield StripeApiReader(base, lambda: LOCAL_STRIPE_KEY)
        return
    from billing_sync_ops.stripe_double import StripeDouble

    log(f"the local runtime publishes no Stripe API double; serving {LOCAL_STRIPE_FIXTURES} here")
    with StripeDouble(LOCAL_STRIPE_FIXTURES) as double:
        yield StripeApiReader(double.url, lambda: LOCAL_STRIPE_KEY)


def _stack_stripe_key(target: Target, stack_name: str | None) -> Callable[[], str]:
    """The restricted key in the stack's secret (named by an output, else found among the stack's resources)."""
    secret = target.optional_output("StripeApiKeySecretArn")
    if secret is None and stack_name:
        resources = target.client("cloudformation").describe_stack_resources(StackName=stack_name)["StackResources"]
        secret = next(
            (
                resource["PhysicalResourceId"]
                for resource in resources
                if resource["ResourceType"] == "AWS::SecretsManager::Secret"
                and STRIPE_KEY_LOGICAL_ID in resource["LogicalResourceId"]
            ),
            None,
        )
    if secret is None:
        raise TargetNotFoundError(f"{target.description} has no Stripe API key secret ({STRIPE_KEY_LOGICAL_ID})")
    found: list[str] = []

    def key() -> str:
        if not found:
            found.append(str(target.client("secretsmanager").get_secret_value(SecretId=secret)["SecretString"]).strip())
        return found[0]

    return key


# ---- the command ----


def run_reconcile(
    target: Target,
    period: str,
    *,
    entity: str | None,
    out: Path | None,
    mapping_file: Path | None,
    default_legal_entity: str,
    stack_name: str | None,
    as_json: bool,
) -> int:
    try:
        mapping = load_mapping(mapping_file)
    except ValueError as exc:
        log(str(exc))
        return EXIT_USAGE
    if entity is not None and entity not in mapping.legal_entities:
        log(f"unknown legal entity {entity!r}: the mapping knows {', '.join(sorted(mapping.legal_entities))}")
        return EXIT_USAGE
    try:
        outcome = _reconcile_on(target, period, entity, out, mapping, default_legal_entity, stack_name)
    except (BillingSyncError, ReconciliationError, ExtractError, OSError) as exc:
        log(f"reconciliation of {period} failed: {exc}")
        return EXIT_ITEMS_FAILED
    payload = {"command": "reconcile", "target": target.description, **summary_payload(outcome)}
    emit(as_json, payload, render)
    return EXIT_OK if outcome.reconciled else EXIT_ITEMS_FAILED


def _reconcile_on(
    target: Target,
    period: str,
    entity: str | None,
    out: Path | None,
    mapping: AccountMapping,
    default_legal_entity: str,
    stack_name: str | None,
) -> PeriodOutcome:
    with ExitStack() as stack:
        reader = stack.enter_context(_stripe_reader(target, stack_name))
        ports = ports_for(
            dynamodb=target.client("dynamodb"),
            s3=target.client("s3"),
            outputs={
                "LineageTableName": target.output("LineageTableName"),
                "LedgerTableName": target.output("LedgerTableName"),
            },
            reader=reader,
            mapping=mapping,
            default_legal_entity=default_legal_entity,
        )
        (outcome,) = run_reconciliation(ports, [period], out=out or DEFAULT_OUT, entity=entity)
    return outcome


def summary_payload(outcome: PeriodOutcome) -> dict[str, Any]:
    """What `reconcile --json` prints: period, entity, documents (a count per class), controls, reports, and `kpis`:
    the data points the reconcile function publishes as metrics (name, unit, value, legal_entity, class/currency)."""
    summary = outcome.result.summary()
    return {
        **summary,
        "kpis": metric_rows(reconciliation_kpis_of(summary)),
        "reconciled": outcome.reconciled,
        "differences": [
            {
                "class": doc.classification,
                "external_id": doc.external_id,
                "legal_entity": doc.legal_entity,
                "currency": doc.currency,
                "billing_amount": doc.billing_amount,
                "erp_amount": doc.erp_amount,
                "detail": doc.detail,
                "lineage_command": doc.lineage_command,
            }
            for doc in outcome.result.differences
        ],
        "reports": {name: str(getattr(outcome.reports, name)) for name in ("json", "csv", "html")},
    }


def render(payload: dict[str, Any]) -> str:
    """The human summary: counts per class, each difference, control breaks and the report paths."""
    documents = payload["documents"]
    entity = f" ({payload['entity']})" if payload.get("entity") else ""
    state = "reconciled" if payload["reconciled"] else "DIFFERENCES FOUND"
    lines = [f"reconciliation {payload['period']}{entity}: {state}"]
    lines.append("  " + ", ".join(f"{cls} {documents.get(cls, 0)}" for cls in CLASSES))
    for diff in payload["differences"]:
        amounts = (
            f"billing {format_amount(diff['billing_amount'], diff['currency']) or 'none'} / "
            f"ERP {format_amount(diff['erp_amount'], diff['currency']) or 'none'} {diff['currency']}"
        )
        lines.append(f"  {diff['class']:<22} {diff['external_id']:<44} {amounts}: {diff['detail']}")
    breaks = [control for control in payload["controls"] if control["variance"]]
    lines.append(f"  controls: {len(payload['controls'])}, {len(breaks)} with a variance")
    for control in breaks:
        item = f" [{control['item']}]" if control["item"] else ""
        lines.append(
            f"    {control['control']}{item} {control['legal_entity']} {control['currency']}: "
            f"{control['left_label']} {format_amount(control['left_amount'], control['currency'])} vs "
            f"{control['right_label']} {format_amount(control['right_amount'], control['currency'])}, "
            f"variance {format_amount(control['variance'], control['currency'])}"
        )
    for kpi in payload.get("kpis", ()):
        figure = format_amount(int(kpi["value"]), kpi["currency"]) if "currency" in kpi else f"{kpi['value']:g}"
        detail = f" {kpi['class']}" if "class" in kpi else ""
        lines.append(f"  KPI {kpi['name']} {kpi['legal_entity']}{detail}: {figure}")
    lines.append(f"  report: {payload['reports']['html']}")
    return "\n".join(lines)


def print_summaries(outcomes: Sequence[PeriodOutcome], *, file: Any = None) -> None:
    """One summary per period (the demo's ending)."""
    for outcome in outcomes:
        print(render(summary_payload(outcome)), file=file or sys.stdout)


def dumps(outcome: PeriodOutcome) -> str:
    return json.dumps(summary_payload(outcome), default=str)


# ---- the local runtime (the demo) ----


def periods_with_documents(erp: ErpClient, mapping: AccountMapping) -> list[str]:
    """Every month from the first to the last in which the ERP holds a reconciled document (invoice, payment,
    credit memo, refund), in its entity's calendar."""
    months = sorted(
        {
            document.posting_date.strftime("%Y-%m")
            for document in erp.posted_documents()
            if document.kind
            in (DocumentKind.INVOICE, DocumentKind.PAYMENT, DocumentKind.CREDIT_MEMO, DocumentKind.REFUND)
        }
    )
    if not months:
        return []
    year, month = int(months[0][:4]), int(months[0][5:])
    periods = []
    while f"{year:04d}-{month:02d}" <= months[-1]:
        periods.append(f"{year:04d}-{month:02d}")
        year, month = year + month // 12, month % 12 + 1
    return periods


def reconcile_runtime(
    runtime: Any, *, out: Path = DEFAULT_OUT, mapping: AccountMapping, default_legal_entity: str = "US01"
) -> list[PeriodOutcome]:
    """Reconciles every period with documents on a running LocalRuntime, against the Stripe API double it
    serves (or one started here over `events/stripe_api`)."""
    session = runtime._session
    double = getattr(runtime, "_stripe_double", None)
    with ExitStack() as stack:
        if double is None:
            from billing_sync_ops.stripe_double import StripeDouble

            double = stack.enter_context(StripeDouble(LOCAL_STRIPE_FIXTURES))
        ports = ports_for(
            dynamodb=session.client("dynamodb"),
            s3=session.client("s3"),
            outputs=runtime.stack.outputs,
            reader=StripeApiReader(double.url, lambda: LOCAL_STRIPE_KEY),
            mapping=mapping,
            default_legal_entity=default_legal_entity,
        )
        periods = periods_with_documents(ports.erp, mapping)
        return run_reconciliation(ports, periods, out=out) if periods else []


def render_periods(outcomes: Sequence[PeriodOutcome]) -> str:
    """The demo's ending: one line per period, every difference and control break, the HTML report's path."""
    if not outcomes:
        return "reconciliation: no period has documents"
    reports_dir = outcomes[-1].reports.html.parent
    lines = [f"reconciliation: Stripe (list API and events received) vs the ERP, per period ({reports_dir})"]
    lines.append(f"  {'period':<8} " + " ".join(f"{cls:>{len(cls)}}" for cls in CLASSES) + "  control breaks")
    for outcome in outcomes:
        counts = outcome.result.counts
        lines.append(
            f"  {outcome.result.period:<8} "
            + " ".join(f"{counts.get(cls, 0):>{len(cls)}}" for cls in CLASSES)
            + f"  {len(outcome.result.control_breaks()):>14}"
        )
    for outcome in outcomes:
        for doc in outcome.result.differences:
            lines.append(
                f"  {doc.period} {doc.classification} {doc.external_id} ({doc.legal_entity}): billing "
                f"{format_amount(doc.billing_amount, doc.currency) or 'none'} / ERP "
                f"{format_amount(doc.erp_amount, doc.currency) or 'none'} {doc.currency}: {doc.detail}"
            )
        for control in outcome.result.control_breaks():
            item = f" [{control.item}]" if control.item else ""
            lines.append(
                f"  {control.period} control {control.control}{item} {control.legal_entity} {control.currency}: "
                f"variance {format_amount(control.variance, control.currency)}"
            )
    differences = sum(outcome.result.difference_count for outcome in outcomes)
    lines.append(f"  {differences} document difference(s) over {len(outcomes)} period(s)")
    lines.append(
        f"  HTML report: {outcomes[-1].reports.html} (the latest period; every period's JSON, CSV, HTML beside it)"
    )
    return "\n".join(lines)
