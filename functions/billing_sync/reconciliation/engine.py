"""Run the reconciliation SQL with DuckDB over the partitioned Parquet extracts under one root.

The SQL lives in `sql/*.sql` (one source, rendered by `statements.py`: DuckDB here, Trino in `athena.py`).
Each extract table becomes a view over `read_parquet('<root>/<table>/**/*.parquet', hive_partitioning = true)`,
so DuckDB reads only the partitions the period and entity filters select; a table with no files is an empty view
of its contracted columns.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from billing_sync.reconciliation.extracts import TABLES, check_period
from billing_sync.reconciliation.statements import render_sql

CLASSES = (
    "matched",
    "missing_in_erp",
    "missing_in_billing",
    "amount_mismatch",
    "status_mismatch",
    "duplicate_in_erp",
    "posted_not_in_lineage",
)
"""Every document gets exactly one of these, in this order of precedence after `matched`."""


class ReconciliationError(RuntimeError):
    """Raised when the extracts cannot be read or the SQL fails on them."""


@dataclass(frozen=True, slots=True)
class LineDifference:
    """One document line that differs: amounts in minor units, `None` where the line is absent on that side."""

    line_id: str
    billing_amount: int | None
    erp_amount: int | None
    difference: int
    detail: str


@dataclass(frozen=True, slots=True)
class DocumentResult:
    """One document's class, both sides' totals and, for an amount mismatch, the lines that differ."""

    classification: str
    source: str | None
    document_id: str | None
    external_id: str
    kind: str
    legal_entity: str
    period: str
    currency: str
    billing_amount: int | None
    erp_amount: int | None
    difference: int | None
    billing_status: str | None
    erp_status: str | None
    erp_currency: str | None
    erp_count: int
    erp_document_ids: tuple[str, ...]
    event_id: str | None
    in_events: bool | None
    in_list_api: bool | None
    lineage_status: str | None
    detail: str
    lines: tuple[LineDifference, ...] = ()

    @property
    def lineage_command(self) -> str | None:
        """The CLI command that shows this document's trail from raw event to ERP document."""
        return f"billing-sync lineage show {self.event_id}" if self.event_id else None


@dataclass(frozen=True, slots=True)
class ControlResult:
    """One balancing control for an entity, currency and period: both sides and `variance = left - right`."""

    control: str
    legal_entity: str
    currency: str
    period: str
    item: str
    left_label: str
    left_amount: int
    right_label: str
    right_amount: int
    variance: int


@dataclass(frozen=True)
class Reconciliation:
    """The outcome for one period: a count per class, the documents per class and the controls.

    `documents["matched"]` is empty unless `reconcile(..., include_matched=True)`; its count is always there.
    """

    period: str
    entity: str | None
    counts: Mapping[str, int]
    documents: Mapping[str, tuple[DocumentResult, ...]]
    controls: tuple[ControlResult, ...] = field(default=())

    @property
    def differences(self) -> tuple[DocumentResult, ...]:
        """Every document not matched, in class order."""
        return tuple(doc for cls in CLASSES[1:] for doc in self.documents.get(cls, ()))

    @property
    def difference_count(self) -> int:
        return sum(count for cls, count in self.counts.items() if cls != "matched")

    def control_breaks(self) -> tuple[ControlResult, ...]:
        """Controls whose sides do not agree."""
        return tuple(c for c in self.controls if c.variance)

    def summary(self) -> dict[str, Any]:
        """The JSON summary the CLI prints: period, entity, count per class, controls."""
        return {
            "period": self.period,
            "entity": self.entity,
            "documents": dict(self.counts),
            "controls": [_control_dict(c) for c in self.controls],
        }


def _control_dict(control: ControlResult) -> dict[str, Any]:
    return {name: getattr(control, name) for name in ControlResult.__slots__}


def _parquet_files(root: str, table: str) -> str | None:
    base = f"{root.rstrip('/')}/{table}"
    if "://" in base:
        return f"{base}/**/*.parquet"
    path = Path(base)
    return f"{base}/**/*.parquet" if path.is_dir() and any(path.rglob("*.parquet")) else None


def register_extracts(con: duckdb.DuckDBPyConnection, root: str | Path) -> None:
    """Create one view per extract table over the Parquet layout under `root` (an empty view where none)."""
    for table, columns in TABLES.items():
        glob = _parquet_files(str(root), table)
        if glob is None:
            body = ", ".join(f"CAST(NULL AS {kind}) AS {name}" for name, kind in columns)
            con.execute(f"CREATE OR REPLACE TEMP VIEW {table} AS SELECT {body} WHERE FALSE")
            continue
        names = ", ".join(name for name, _ in columns)
        source = "'" + glob.replace("'", "''") + "'"
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {table} AS SELECT {names} FROM read_parquet({source}, "
            "hive_partitioning = true, hive_types = {'legal_entity': VARCHAR, 'period': VARCHAR})"
        )


_DOCUMENT_COLUMNS = (
    "class, source, document_id, external_id, kind, legal_entity, period, currency, billing_amount, erp_amount, "
    "difference, billing_status, erp_status, erp_currency, erp_count, erp_document_ids, event_id, in_events, "
    "in_list_api, lineage_status, detail"
)


def _documents(con: duckdb.DuckDBPyConnection, include_matched: bool) -> dict[str, tuple[DocumentResult, ...]]:
    lines: dict[str, list[LineDifference]] = {}
    for external_id, line_id, billing_amount, erp_amount, difference, detail in con.execute(
        "SELECT external_id, line_id, billing_amount, erp_amount, difference, detail FROM recon "
        "WHERE level = 'line' ORDER BY external_id, line_id"
    ).fetchall():
        lines.setdefault(external_id, []).append(
            LineDifference(line_id, _int(billing_amount), _int(erp_amount), int(difference), detail)
        )
    where = "" if include_matched else "AND class <> 'matched'"
    by_class: dict[str, list[DocumentResult]] = {cls: [] for cls in CLASSES}
    for row in con.execute(
        f"SELECT {_DOCUMENT_COLUMNS} FROM recon WHERE level = 'document' {where} ORDER BY legal_entity, external_id"
    ).fetchall():
        doc = _document(row, tuple(lines.get(row[3], ())))
        by_class[doc.classification].append(doc)
    return {cls: tuple(docs) for cls, docs in by_class.items()}


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def _document(row: tuple[Any, ...], lines: tuple[LineDifference, ...]) -> DocumentResult:
    (cls, source, document_id, external_id, kind, entity, period, currency, billing_amount, erp_amount) = row[:10]
    (difference, billing_status, erp_status, erp_currency, erp_count, erp_ids) = row[10:16]
    (event_id, in_events, in_list_api, lineage_status, detail) = row[16:]
    return DocumentResult(
        classification=cls,
        source=source,
        document_id=document_id,
        external_id=external_id,
        kind=kind,
        legal_entity=entity,
        period=period,
        currency=currency,
        billing_amount=_int(billing_amount),
        erp_amount=_int(erp_amount),
        difference=_int(difference),
        billing_status=billing_status,
        erp_status=erp_status,
        erp_currency=erp_currency,
        erp_count=int(erp_count),
        erp_document_ids=tuple(erp_ids or ()),
        event_id=event_id,
        in_events=in_events,
        in_list_api=in_list_api,
        lineage_status=lineage_status,
        detail=detail,
        lines=lines,
    )


def _controls(con: duckdb.DuckDBPyConnection, period: str, entity: str | None) -> tuple[ControlResult, ...]:
    rows = con.execute(render_sql("controls", period=period, entity=entity)).fetchall()
    return tuple(
        ControlResult(
            control=control,
            legal_entity=entity,
            currency=currency,
            period=period,
            item=item,
            left_label=left_label,
            left_amount=int(left),
            right_label=right_label,
            right_amount=int(right),
            variance=int(variance),
        )
        for control, entity, currency, period, item, left_label, left, right_label, right, variance in rows
    )


def reconcile(
    root: str | Path,
    period: str,
    entity: str | None = None,
    *,
    include_matched: bool = False,
    connection: duckdb.DuckDBPyConnection | None = None,
) -> Reconciliation:
    """Reconcile `period` (YYYY-MM), for one legal entity or all, over the extracts under `root`.

    Raises ExtractError for a malformed period and ReconciliationError when DuckDB cannot run the SQL.
    """
    check_period(period)
    con = connection or duckdb.connect()
    try:
        register_extracts(con, root)
        con.execute(f"CREATE OR REPLACE TEMP TABLE recon AS {render_sql('reconcile', period=period, entity=entity)}")
        counts = dict.fromkeys(CLASSES, 0)
        for cls, count in con.execute(
            "SELECT class, COUNT(*) FROM recon WHERE level = 'document' GROUP BY class"
        ).fetchall():
            counts[cls] = int(count)
        documents = _documents(con, include_matched)
        controls = _controls(con, period, entity)
    except duckdb.Error as exc:
        raise ReconciliationError(f"reconciliation of {period} failed: {exc}") from exc
    finally:
        if connection is None:
            con.close()
    return Reconciliation(period=period, entity=entity, counts=counts, documents=documents, controls=controls)


def iter_rows(result: Reconciliation) -> Iterator[tuple[DocumentResult, LineDifference | None]]:
    """Every difference as (document, line): one per line that differs, else one per document."""
    for doc in result.differences:
        if doc.lines:
            for line in doc.lines:
                yield doc, line
        else:
            yield doc, None
