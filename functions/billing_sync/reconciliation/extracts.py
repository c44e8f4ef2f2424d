"""The columnar extracts reconciliation compares, and the writer that lays them out as partitioned Parquet.

Every table is one row type here and one directory under a root (a local directory or an S3 prefix):
`<root>/<table>/legal_entity=<E>/period=<YYYY-MM>/*.parquet`, hive-style, so DuckDB (`read_parquet(...,
hive_partitioning = true)`) and Athena (Glue tables partitioned by `legal_entity`, `period`) read the same
files. Money is signed integer minor units in the row's transaction currency (BIGINT); never a float.

Tables (columns in order; `TABLES` is the machine-readable contract):

- `billing_documents`: one row per billed document, from the canonical events received and from the
  source's own list API. `kind` is `invoice`, `payment`, `credit_note` or `refund`; `external_id` is the
  deterministic ERP external id the posting path gives it (the join key); `status` is the source's
  (`open`, `paid`, `void`, `uncollectible` for invoices; `succeeded`, `failed` for payments and refunds;
  `issued`, `void` for credit notes); `event_ids` the canonical events that carried it; `in_events` and
  `in_list_api` say where it was seen (a document only in the list API was never delivered).
- `billing_document_lines`: one row per document line (`line_id` is the source's line id, `il_…`, `cnli_…`).
- `erp_documents`: one row per ERP document read through the ERP port. `kind` is a `DocumentKind` value
  (or `refund_credit_memo`, see `erp_document_rows`); `status` is `open` or `paid` (invoices), `void` (voided
  invoices and credit memos), `posted` otherwise; `amount_remaining` is what is still open on an invoice.
- `erp_document_lines`: one row per ERP document line (`line_id` is the line's `source_line_id`).
- `lineage`: one row per accepted event: its lineage `status` and the ERP document ids it records as posted.
- `balance_transactions`: Stripe balance transactions (`type` `charge`, `payment`, `refund`, `stripe_fee`,
  `adjustment`, `payout`); `payout_id` is the payout that settled it (for a payout row, the payout itself).
- `deferred_revenue`: the deferred-revenue roll-forward per side (`billing`: from the recognition schedules
  of billed lines; `erp`: from the running balances), entity, period and currency.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from datetime import date
from pathlib import Path
from typing import Any

import duckdb

from billing_sync.domain.accounting.external_ids import (
    credit_note_external_id,
    invoice_external_id,
    payment_external_id,
    refund_credit_memo_external_id,
    refund_external_id,
)
from billing_sync.domain.journal import DocumentKind, ErpDocument
from billing_sync.domain.lineage import LineageRecord

_PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")

BILLING_KINDS = ("invoice", "payment", "credit_note", "refund")
"""The billing document kinds reconciled one by one."""

_REFUND_CREDIT_MEMO = refund_credit_memo_external_id("", "")  # "-refund-credit-memo-"

_EXTERNAL_IDS = {
    "invoice": invoice_external_id,
    "payment": payment_external_id,
    "credit_note": credit_note_external_id,
    "refund": refund_external_id,
}


class ExtractError(ValueError):
    """Raised for a row that breaks the extract contract (a float amount, a malformed period, an unknown kind)."""


def erp_external_id(source: str, kind: str, document_id: str) -> str:
    """The ERP external id posting gives a billing document; raises ExtractError for an unknown kind."""
    try:
        return _EXTERNAL_IDS[kind](source, document_id)
    except KeyError:
        raise ExtractError(f"{kind!r} is not a reconciled billing kind {BILLING_KINDS}") from None


def check_period(period: str) -> str:
    """Return `period` if it is `YYYY-MM`; raises ExtractError."""
    if not isinstance(period, str) or not _PERIOD.match(period):
        raise ExtractError(f"period must be YYYY-MM, got {period!r}")
    return period


def _check_row(row: Any) -> None:
    for name in row.MONEY:
        value = getattr(row, name)
        if type(value) is not int:
            raise ExtractError(f"{type(row).__name__}.{name} must be integer minor units, got {value!r}")
    check_period(row.period)


@dataclass(frozen=True, slots=True)
class BillingDocumentRow:
    source: str
    document_id: str
    kind: str
    external_id: str
    legal_entity: str
    period: str
    currency: str
    total: int
    amount_remaining: int
    status: str
    document_date: date | None
    due_date: date | None
    event_ids: tuple[str, ...]
    in_events: bool
    in_list_api: bool

    MONEY = ("total", "amount_remaining")

    def __post_init__(self) -> None:
        _check_row(self)
        if self.kind not in BILLING_KINDS:
            raise ExtractError(f"{self.kind!r} is not a reconciled billing kind {BILLING_KINDS}")


@dataclass(frozen=True, slots=True)
class BillingLineRow:
    source: str
    document_id: str
    external_id: str
    line_id: str
    legal_entity: str
    period: str
    amount: int

    MONEY = ("amount",)

    def __post_init__(self) -> None:
        _check_row(self)


@dataclass(frozen=True, slots=True)
class ErpDocumentRow:
    erp_document_id: str
    external_id: str
    kind: str
    legal_entity: str
    period: str
    currency: str
    total: int
    amount_remaining: int
    status: str
    document_date: date | None
    due_date: date | None
    source_event_id: str

    MONEY = ("total", "amount_remaining")

    def __post_init__(self) -> None:
        _check_row(self)


@dataclass(frozen=True, slots=True)
class ErpLineRow:
    erp_document_id: str
    external_id: str
    line_id: str
    legal_entity: str
    period: str
    amount: int

    MONEY = ("amount",)

    def __post_init__(self) -> None:
        _check_row(self)


@dataclass(frozen=True, slots=True)
class LineageRow:
    event_id: str
    status: str
    erp_document_ids: tuple[str, ...]
    legal_entity: str
    period: str

    MONEY = ()

    def __post_init__(self) -> None:
        _check_row(self)


@dataclass(frozen=True, slots=True)
class BalanceTransactionRow:
    balance_transaction_id: str
    type: str
    source_id: str
    payout_id: str | None
    legal_entity: str
    period: str
    currency: str
    amount: int
    fee: int
    net: int

    MONEY = ("amount", "fee", "net")

    def __post_init__(self) -> None:
        _check_row(self)
        if self.amount - self.fee != self.net:
            raise ExtractError(f"{self.balance_transaction_id}: amount - fee != net")


@dataclass(frozen=True, slots=True)
class DeferredRevenueRow:
    side: str
    legal_entity: str
    period: str
    currency: str
    opening: int
    billed: int
    recognised: int
    credited: int
    closing: int

    MONEY = ("opening", "billed", "recognised", "credited", "closing")

    def __post_init__(self) -> None:
        _check_row(self)
        if self.side not in ("billing", "erp"):
            raise ExtractError(f"deferred revenue side must be 'billing' or 'erp', got {self.side!r}")


_DUCK_TYPES: dict[str, str] = {
    "int": "BIGINT",
    "str": "VARCHAR",
    "bool": "BOOLEAN",
    "date | None": "DATE",
    "str | None": "VARCHAR",
    "tuple[str, ...]": "VARCHAR[]",
}
_GLUE_TYPES = {
    "BIGINT": "bigint",
    "VARCHAR": "string",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "VARCHAR[]": "array<string>",
}

PARTITION_COLUMNS = ("legal_entity", "period")
"""Every table is partitioned by these, in this order."""


def _columns(row_type: type) -> tuple[tuple[str, str], ...]:
    return tuple((f.name, _DUCK_TYPES[str(f.type)]) for f in fields(row_type))


ROW_TYPES: dict[str, type] = {
    "billing_documents": BillingDocumentRow,
    "billing_document_lines": BillingLineRow,
    "erp_documents": ErpDocumentRow,
    "erp_document_lines": ErpLineRow,
    "lineage": LineageRow,
    "balance_transactions": BalanceTransactionRow,
    "deferred_revenue": DeferredRevenueRow,
}

TABLES: dict[str, tuple[tuple[str, str], ...]] = {name: _columns(row) for name, row in ROW_TYPES.items()}
"""Table name -> ((column, DuckDB type), ...): the contract the SQL, the writer and the Glue tables share."""


def glue_columns(table: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(data columns, partition keys) of `table` as Glue/Hive types, for the Glue table definitions."""
    data = [(name, _GLUE_TYPES[kind]) for name, kind in TABLES[table] if name not in PARTITION_COLUMNS]
    return data, [(name, "string") for name in PARTITION_COLUMNS]


def erp_document_rows(
    document: ErpDocument,
    *,
    erp_document_id: str,
    status: str,
    amount_remaining: int = 0,
    due_date: date | None = None,
) -> tuple[ErpDocumentRow, tuple[ErpLineRow, ...]]:
    """An ERP document read through the ERP port as its extract row and line rows (period = posting month).

    A line without a source line id is keyed `<item>#<position>`. The credit memo the refund saga books for a
    refund without a credit note has no billing document of its own: its kind is `refund_credit_memo`, which
    the per-document comparison and the credit-note control leave out. Raises ExtractError on a broken contract.
    """
    period = document.posting_date.strftime("%Y-%m")
    kind = document.kind.value
    if document.kind is DocumentKind.CREDIT_MEMO and _REFUND_CREDIT_MEMO in document.external_id:
        kind = "refund_credit_memo"
    row = ErpDocumentRow(
        erp_document_id=erp_document_id,
        external_id=document.external_id,
        kind=kind,
        legal_entity=document.legal_entity,
        period=period,
        currency=document.currency,
        total=document.total,
        amount_remaining=amount_remaining,
        status=status,
        document_date=document.document_date or document.posting_date,
        due_date=due_date,
        source_event_id=document.source_event_id,
    )
    lines = tuple(
        ErpLineRow(
            erp_document_id=erp_document_id,
            external_id=document.external_id,
            line_id=line.source_line_id or f"{line.item}#{position}",
            legal_entity=document.legal_entity,
            period=period,
            amount=line.amount,
        )
        for position, line in enumerate(document.lines, start=1)
    )
    return row, lines


def lineage_row(record: LineageRecord, *, legal_entity: str, period: str) -> LineageRow:
    """A lineage record as its extract row (lineage does not carry the entity and period; the caller does)."""
    return LineageRow(
        event_id=record.event_id,
        status=record.status.value,
        erp_document_ids=tuple(record.erp_document_ids),
        legal_entity=legal_entity,
        period=period,
    )


@dataclass(frozen=True)
class Extracts:
    """Both sides of one reconciliation run, as rows."""

    billing_documents: Sequence[BillingDocumentRow] = ()
    billing_document_lines: Sequence[BillingLineRow] = ()
    erp_documents: Sequence[ErpDocumentRow] = ()
    erp_document_lines: Sequence[ErpLineRow] = ()
    lineage: Sequence[LineageRow] = ()
    balance_transactions: Sequence[BalanceTransactionRow] = ()
    deferred_revenue: Sequence[DeferredRevenueRow] = ()

    def tables(self) -> Mapping[str, Sequence[Any]]:
        return {name: getattr(self, name) for name in ROW_TYPES}


def _json_default(value: object) -> object:
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot serialise {value!r}")


def write_table(
    root: str | Path, table: str, rows: Iterable[Any], *, connection: duckdb.DuckDBPyConnection | None = None
) -> str:
    """Write `rows` of `table` as Parquet partitioned by legal entity and period under `root`; return its directory.

    The partitions written are replaced (a local root has them removed first; other partitions stay), so an
    extract re-run for one period never mixes with the previous run. Raises ExtractError for an unknown table.
    """
    if table not in TABLES:
        raise ExtractError(f"unknown extract table {table!r}")
    target = f"{str(root).rstrip('/')}/{table}"
    columns = TABLES[table]
    con = connection or duckdb.connect()
    with tempfile.TemporaryDirectory() as scratch:
        staged = Path(scratch) / f"{table}.ndjson"
        partitions: set[tuple[str, str]] = set()
        count = 0
        with staged.open("w", encoding="utf-8") as out:
            for row in rows:
                record = asdict(row)
                partitions.add((record["legal_entity"], record["period"]))
                out.write(json.dumps(record, default=_json_default))
                out.write("\n")
                count += 1
        if not count:
            return target
        if "://" not in target:
            for entity, period in partitions:
                shutil.rmtree(Path(target) / f"legal_entity={entity}" / f"period={period}", ignore_errors=True)
            Path(target).mkdir(parents=True, exist_ok=True)
        spec = ", ".join(f"'{name}': '{kind}'" for name, kind in columns)
        con.execute(
            f"COPY (SELECT * FROM read_json(?, format = 'newline_delimited', columns = {{{spec}}})) "
            f"TO '{target}' (FORMAT PARQUET, PARTITION_BY (legal_entity, period), OVERWRITE_OR_IGNORE true, "
            "FILENAME_PATTERN 'part_{uuid}')",
            [str(staged)],
        )
    return target


def write_extracts(root: str | Path, extracts: Extracts) -> dict[str, str]:
    """Write every table of `extracts` under `root`; return table name -> directory."""
    con = duckdb.connect()
    try:
        return {name: write_table(root, name, rows, connection=con) for name, rows in extracts.tables().items()}
    finally:
        con.close()
