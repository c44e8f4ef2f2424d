"""Composition root of the reconciliation function: build the extracts, run the engine, publish to S3.

`run_reconciliation(period, entity)` is the one entry point. It asks the extract builder for both sides,
writes them as partitioned Parquet in `/tmp`, reconciles them with DuckDB (the engine layer), writes the JSON,
CSV and HTML reports, and uploads extracts and reports to the reconciliation bucket: extracts to the layout the
Glue tables read (`reconciliation/extracts/<table>/legal_entity=<E>/period=<P>/`, each written partition
replaced), reports to `reconciliation/reports/<period>/`.

Extract builders (`extract_builder()` chooses): with the Stripe API key configured, both sides from
`reconciliation.sources.build_extracts` (Stripe's list API, the raw archive, the ERP port, lineage). Without it,
the ERP side and lineage only: every ERP document then reports as `missing_in_billing`, and the result says
`billing_side_built: false` so nobody mistakes it for a clean or a broken month. Either way only the rows of the
period (and entity) reconciled are written, so a run never replaces another period's partitions.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from billing_sync.domain.journal import DocumentKind
from billing_sync.domain.ports import ErpClient
from billing_sync.reconciliation.extracts import (
    ErpDocumentRow,
    ErpLineRow,
    Extracts,
    LineageRow,
    check_period,
    erp_document_rows,
    lineage_row,
)
from billing_sync.settings import SettingsError

EXTRACTS_PREFIX = "reconciliation/extracts"
REPORTS_PREFIX = "reconciliation/reports"


class ExtractBuilder(Protocol):
    @property
    def billing_side_built(self) -> bool:
        """False while the builder leaves the billing side empty (the ERP side then reports missing_in_billing)."""
        ...

    def build(self, period: str, entity: str | None) -> Extracts:
        """Both sides of `period` (one entity, or every entity) as extract rows."""
        ...


class LineageReader(Protocol):
    def get(self, event_id: str) -> Any: ...


def previous_period(moment: datetime) -> str:
    """The month before `moment`'s month, as YYYY-MM (what the monthly schedule reconciles)."""
    year, month = (moment.year, moment.month - 1) if moment.month > 1 else (moment.year - 1, 12)
    return f"{year:04d}-{month:02d}"


@dataclass(frozen=True)
class ErpSideExtractBuilder:
    """The ERP side and lineage, through the ERP port and the lineage store; no billing side (see module doc)."""

    erp: ErpClient
    lineage: LineageReader
    billing_side_built: bool = False

    def build(self, period: str, entity: str | None) -> Extracts:
        documents: list[ErpDocumentRow] = []
        lines: list[ErpLineRow] = []
        lineage: dict[str, LineageRow] = {}
        for document in self.erp.posted_documents(entity):
            if document.posting_date.strftime("%Y-%m") != period:
                continue
            ref = self.erp.find_document(document.external_id)
            remaining, status = 0, "posted"
            if document.kind is DocumentKind.INVOICE:
                applied = self.erp.applied_total(document.external_id, DocumentKind.PAYMENT) + self.erp.applied_total(
                    document.external_id, DocumentKind.CREDIT_MEMO
                )
                remaining = max(document.total - applied, 0)
                status = "open" if remaining else "paid"
            row, row_lines = erp_document_rows(
                document,
                erp_document_id=ref.document_id if ref is not None else document.external_id,
                status=status,
                amount_remaining=remaining,
            )
            documents.append(row)
            lines.extend(row_lines)
            if document.source_event_id not in lineage:
                record = self.lineage.get(document.source_event_id)
                if record is not None:
                    lineage[document.source_event_id] = lineage_row(
                        record, legal_entity=document.legal_entity, period=period
                    )
        return Extracts(erp_documents=documents, erp_document_lines=lines, lineage=tuple(lineage.values()))


@dataclass(frozen=True)
class SourceExtractBuilder:
    """Both sides through `build_extracts`: the source's list API, the raw archive, the ERP port and lineage."""

    reader: Any
    erp: ErpClient
    lineage: Callable[[], Iterable[Any]]
    raw_event: Callable[[Any], Mapping[str, Any] | None]
    mapping: Any
    default_legal_entity: str
    billing_side_built: bool = True

    def build(self, period: str, entity: str | None) -> Extracts:
        from billing_sync.reconciliation.sources import build_extracts

        return build_extracts(
            reader=self.reader,
            erp=self.erp,
            lineage=list(self.lineage()),
            raw_event=self.raw_event,
            mapping=self.mapping,
            periods=[period],
            default_legal_entity=self.default_legal_entity,
        )


def s3_raw_events(client: Any, bucket: str) -> Callable[[Any], Mapping[str, Any] | None]:
    """A lineage record's archived raw payload from `bucket` (None when absent, unreadable or elsewhere)."""
    from botocore.exceptions import BotoCoreError, ClientError

    from billing_sync.aws.archive import raw_object
    from billing_sync.reconciliation.sources import raw_event_from_bytes

    cache: dict[str, Mapping[str, Any] | None] = {}

    def raw_event(record: Any) -> Mapping[str, Any] | None:
        ref = record.raw_ref or ""
        located = raw_object(ref)
        if located is None or located.bucket != bucket:
            return None
        if ref not in cache:
            try:
                body = client.get_object(**located.get_object_args())["Body"].read()
            except (BotoCoreError, ClientError):  # an unreadable payload only loses its document's `in_events`
                body = None
            cache[ref] = raw_event_from_bytes(body)
        return cache[ref]

    return raw_event


def scoped(extracts: Extracts, period: str, entity: str | None) -> Extracts:
    """Only the rows of `period` (and `entity`): what this run reconciles and may replace in S3."""

    def keep(rows: Iterable[Any]) -> tuple[Any, ...]:
        return tuple(r for r in rows if r.period == period and (entity is None or r.legal_entity == entity))

    return Extracts(**{name: keep(rows) for name, rows in extracts.tables().items()})


@dataclass(frozen=True)
class S3Publisher:
    """Uploads a local extract tree and report files to the reconciliation bucket."""

    client: Any
    bucket: str

    def replace_extracts(self, root: Path) -> list[str]:
        """Upload every Parquet file under `root`, first deleting what each written partition held before."""
        files = sorted(root.rglob("*.parquet"))
        for partition in sorted({path.parent for path in files}):
            prefix = f"{EXTRACTS_PREFIX}/{partition.relative_to(root).as_posix()}/"
            self._delete_prefix(prefix)
        keys = []
        for path in files:
            key = f"{EXTRACTS_PREFIX}/{path.relative_to(root).as_posix()}"
            self.client.upload_file(str(path), self.bucket, key)
            keys.append(key)
        return keys

    def put_reports(self, period: str, paths: Iterable[Path]) -> dict[str, str]:
        uris = {}
        content_types = {".json": "application/json", ".csv": "text/csv", ".html": "text/html; charset=utf-8"}
        for path in paths:
            key = f"{REPORTS_PREFIX}/{period}/{path.name}"
            self.client.upload_file(
                str(path), self.bucket, key, ExtraArgs={"ContentType": content_types.get(path.suffix, "text/plain")}
            )
            uris[path.suffix.lstrip(".")] = f"s3://{self.bucket}/{key}"
        return uris

    def _delete_prefix(self, prefix: str) -> None:
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            objects = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if objects:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True})


class AthenaQueryError(RuntimeError):
    """An Athena query failed, was cancelled or did not finish in time; the message carries its id and reason."""


_CONTROL_FIELDS = (
    "control",
    "legal_entity",
    "currency",
    "period",
    "item",
    "left_label",
    "left_amount",
    "right_label",
    "right_amount",
    "variance",
)


@dataclass(frozen=True)
class AthenaReconciliation:
    """The same SQL, transpiled to Trino, in the Athena workgroup over the published extracts (beyond one machine).

    Three queries: every document's row (its CSV in the workgroup's result location is the document report), the
    count per class, and the controls. Raises AthenaQueryError.
    """

    client: Any
    work_group: str
    database: str
    bucket: str
    timeout_seconds: float = 840
    poll_seconds: float = 2

    def run(self, period: str, entity: str | None) -> dict[str, Any]:
        from billing_sync.reconciliation.athena import S3Layout, athena_sql
        from billing_sync.reconciliation.engine import CLASSES

        layout = S3Layout(bucket=self.bucket, prefix=EXTRACTS_PREFIX)
        documents_sql = athena_sql("reconcile", self.database, layout, period=period, entity=entity)
        documents_id = self._start(documents_sql)
        counts_id = self._start(
            f"SELECT class, COUNT(*) AS documents FROM ({documents_sql}) AS recon "
            "WHERE level = 'document' GROUP BY class"
        )
        controls_id = self._start(athena_sql("controls", self.database, layout, period=period, entity=entity))
        counts = dict.fromkeys(CLASSES, 0)
        for cls, count in self._rows(counts_id):
            counts[str(cls)] = int(count or 0)
        controls: list[dict[str, Any]] = []
        for row in self._rows(controls_id):
            control: dict[str, Any] = dict(zip(_CONTROL_FIELDS, row, strict=True))
            for name in ("left_amount", "right_amount", "variance"):
                control[name] = int(control[name] or 0)
            controls.append(control)
        return {
            "period": period,
            "entity": entity,
            "documents": counts,
            "controls": controls,
            "reports": {"documents_csv": self._wait(documents_id)},
        }

    def _start(self, sql: str) -> str:
        return str(
            self.client.start_query_execution(
                QueryString=sql,
                QueryExecutionContext={"Database": self.database},
                WorkGroup=self.work_group,
            )["QueryExecutionId"]
        )

    def _wait(self, query_id: str) -> str:
        """The query's result location once it succeeded."""
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            execution = self.client.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
            state = execution["Status"]["State"]
            if state == "SUCCEEDED":
                return str(execution.get("ResultConfiguration", {}).get("OutputLocation", ""))
            if state in ("FAILED", "CANCELLED"):
                reason = execution["Status"].get("StateChangeReason", "no reason given")
                raise AthenaQueryError(f"Athena query {query_id} {state.lower()}: {reason}")
            if time.monotonic() > deadline:
                raise AthenaQueryError(f"Athena query {query_id} still {state.lower()} after {self.timeout_seconds} s")
            time.sleep(self.poll_seconds)

    def _rows(self, query_id: str) -> list[list[str | None]]:
        self._wait(query_id)
        rows: list[list[str | None]] = []
        for page in self.client.get_paginator("get_query_results").paginate(QueryExecutionId=query_id):
            rows.extend([cell.get("VarCharValue") for cell in row["Data"]] for row in page["ResultSet"]["Rows"])
        return rows[1:]  # the first row holds the column names


@cache
def athena_reconciliation() -> AthenaReconciliation:
    from billing_sync.composition.aws import aws_client
    from billing_sync.settings import reconciliation_settings

    settings = reconciliation_settings()
    if not (settings.reconciliation_athena_workgroup and settings.reconciliation_glue_database):
        raise SettingsError("RECONCILIATION_ENGINE=athena needs RECONCILIATION_ATHENA_WORKGROUP and _GLUE_DATABASE")
    return AthenaReconciliation(
        aws_client("athena"),
        work_group=settings.reconciliation_athena_workgroup,
        database=settings.reconciliation_glue_database,
        bucket=settings.reconciliation_bucket,
        timeout_seconds=settings.athena_timeout_seconds,
    )


@cache
def extract_builder() -> ExtractBuilder:
    """The seam the full extract builders (billing side from events and Stripe's list API) replace."""
    from billing_sync.composition.aws import aws_client
    from billing_sync.erp.ledger import DynamoLedgerErpClient
    from billing_sync.settings import reconciliation_settings
    from billing_sync.state.dynamo import DynamoLineageStore

    settings = reconciliation_settings()
    dynamodb = aws_client("dynamodb")
    erp = DynamoLedgerErpClient(dynamodb, settings.ledger_table_name)
    lineage = DynamoLineageStore(dynamodb, settings.lineage_table_name)
    secret_arn = settings.stripe_api_key_secret_arn
    if secret_arn is None or settings.raw_archive_bucket is None:
        return ErpSideExtractBuilder(erp=erp, lineage=lineage)
    from billing_sync.domain.mapping import AccountMapping
    from billing_sync.sources.stripe.api import StripeApiReader

    def api_key() -> str:
        from aws_lambda_powertools.utilities import parameters  # imports boto3: first use only

        return str(parameters.get_secret(secret_arn, max_age=settings.secret_cache_seconds)).strip()

    return SourceExtractBuilder(
        reader=StripeApiReader(settings.stripe_api_base, api_key),
        erp=erp,
        lineage=lineage.scan,
        raw_event=s3_raw_events(aws_client("s3"), settings.raw_archive_bucket),
        mapping=AccountMapping.model_validate_json(settings.mapping_file.read_bytes()),
        default_legal_entity=settings.default_legal_entity,
    )


@cache
def publisher() -> S3Publisher:
    from billing_sync.composition.aws import aws_client
    from billing_sync.settings import reconciliation_settings

    return S3Publisher(aws_client("s3"), reconciliation_settings().reconciliation_bucket)


def reconciliation_kpis_of(result: Mapping[str, Any]) -> list[Any]:
    """The KPIs of a run's summary (`domain.kpis.reconciliation_kpis`): differences by class under the entity
    reconciled (else the all-entities dimension the KPI function uses), deferred revenue variance per entity."""
    from billing_sync.composition.kpis import ALL_ENTITIES
    from billing_sync.domain.kpis import reconciliation_kpis

    return reconciliation_kpis(
        result["documents"], result["controls"], differences_entity=result.get("entity") or ALL_ENTITIES
    )


def publish_reconciliation_kpis(result: Mapping[str, Any]) -> int:
    """Emit the run's KPIs as EMF metrics, one blob per data point, with the dimensions the KPI function gives
    them (service, legal entity, then class or currency), so the dashboard and alarms read them. Returns how many.

    A run without a billing side publishes nothing: every ERP document would count as missing in billing.
    """
    if not result.get("billing_side_built", True):
        return 0
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    from billing_sync.domain.kpis import KPI_NAMESPACE_DIMENSION, kpi_metrics
    from billing_sync.observability import metrics

    emitted = 0
    for entity in reconciliation_kpis_of(result):
        for point in kpi_metrics(entity):
            with single_metric(
                name=point.name,
                unit=MetricUnit(point.unit),
                value=point.value,
                namespace=metrics.namespace,
                default_dimensions={
                    **metrics.default_dimensions,
                    "service": str(metrics.service),
                    KPI_NAMESPACE_DIMENSION: entity.legal_entity,
                },
            ) as metric:
                for name, value in point.dimensions.items():
                    metric.add_dimension(name=name, value=value)
            emitted += 1
    return emitted


def run_reconciliation(period: str, entity: str | None) -> dict[str, Any]:
    """Reconcile `period` (YYYY-MM) for `entity` (or every entity) and publish extracts and reports to S3.

    Returns the summary (`period`, `entity`, `documents` per class, `controls`), `reports` (S3 URIs of the JSON,
    CSV and HTML files), `extracts` (rows per table) and `billing_side_built`. Raises ExtractError for a
    malformed period, ReconciliationError when the engine fails, and the stores' and S3's errors.
    """
    from billing_sync.reconciliation.engine import reconcile
    from billing_sync.reconciliation.extracts import write_extracts
    from billing_sync.reconciliation.report import write_reports
    from billing_sync.settings import reconciliation_settings

    check_period(period)
    engine = reconciliation_settings().reconciliation_engine
    # DuckDB resolves its home directory (extensions, secrets) from HOME, which Lambda leaves unset.
    os.environ.setdefault("HOME", tempfile.gettempdir())
    builder = extract_builder()
    extracts = scoped(builder.build(period, entity), period, entity)
    with tempfile.TemporaryDirectory(prefix="reconciliation-") as scratch:
        root = Path(scratch) / "extracts"
        write_extracts(root, extracts)
        published = publisher()
        published.replace_extracts(root)
        if engine == "athena":
            summary = athena_reconciliation().run(period, entity)
        else:
            result = reconcile(root, period, entity)
            paths = write_reports(result, Path(scratch) / "reports")
            summary = {
                **result.summary(),
                "reports": published.put_reports(period, (paths.json, paths.csv, paths.html)),
            }
    return {
        **summary,
        "engine": engine,
        "extracts": {name: len(rows) for name, rows in extracts.tables().items()},
        "billing_side_built": builder.billing_side_built,
    }
