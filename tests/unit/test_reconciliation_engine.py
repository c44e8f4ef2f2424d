"""Reconciliation engine: extracts as partitioned Parquet, one SQL source run by DuckDB and transpiled for Athena."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest
import sqlglot

from billing_sync.domain.events import derive_event_id
from billing_sync.domain.journal import DocumentKind, DocumentLine, ErpDocument, JournalLine
from billing_sync.domain.lineage import LineageRecord, LineageStatus
from billing_sync.reconciliation import statements
from billing_sync.reconciliation.athena import S3Layout, athena_sql, glue_table_ddl
from billing_sync.reconciliation.engine import (
    CLASSES,
    Reconciliation,
    ReconciliationError,
    reconcile,
    register_extracts,
)
from billing_sync.reconciliation.extracts import (
    BalanceTransactionRow,
    BillingDocumentRow,
    BillingLineRow,
    DeferredRevenueRow,
    ErpDocumentRow,
    ErpLineRow,
    ExtractError,
    Extracts,
    LineageRow,
    erp_document_rows,
    erp_external_id,
    lineage_row,
    write_extracts,
)

PERIOD = "2026-10"
US = "US01"
JP = "JP01"


@dataclass
class Books:
    """Data builder: both sides of a period, in agreement unless a test plants a difference."""

    period: str = PERIOD
    billing: list[BillingDocumentRow] = field(default_factory=list)
    billing_lines: list[BillingLineRow] = field(default_factory=list)
    erp: list[ErpDocumentRow] = field(default_factory=list)
    erp_lines: list[ErpLineRow] = field(default_factory=list)
    lineage: list[LineageRow] = field(default_factory=list)
    balance_transactions: list[BalanceTransactionRow] = field(default_factory=list)
    deferred: list[DeferredRevenueRow] = field(default_factory=list)
    _erp_seq: int = 100

    def document(
        self,
        kind: str,
        document_id: str,
        lines: dict[str, int],
        *,
        entity: str = US,
        currency: str = "USD",
        status: str = "paid",
        erp_status: str | None = None,
        remaining: int = 0,
        due: date | None = None,
        in_events: bool = True,
        in_list_api: bool = True,
        posted: bool = True,
        erp_period: str | None = None,
        erp_lines: dict[str, int] | None = None,
    ) -> str:
        """Bill a document and, when `posted`, post it to the ERP with lineage; return its ERP external id."""
        external_id = erp_external_id("stripe", kind, document_id)
        event_id = derive_event_id("stripe", f"evt_1Q{document_id[-10:]}")
        total = sum(lines.values())
        self.billing.append(
            BillingDocumentRow(
                source="stripe",
                document_id=document_id,
                kind=kind,
                external_id=external_id,
                legal_entity=entity,
                period=self.period,
                currency=currency,
                total=total,
                amount_remaining=remaining,
                status=status,
                document_date=date(2026, 10, 5),
                due_date=due,
                event_ids=(event_id,) if in_events else (),
                in_events=in_events,
                in_list_api=in_list_api,
            )
        )
        for line_id, amount in lines.items():
            self.billing_lines.append(
                BillingLineRow("stripe", document_id, external_id, line_id, entity, self.period, amount)
            )
        if posted:
            self.post(
                kind,
                external_id,
                erp_lines if erp_lines is not None else lines,
                entity=entity,
                currency=currency,
                status=erp_status or _erp_status(kind, status),
                remaining=remaining,
                due=due,
                event_id=event_id,
                period=erp_period or self.period,
            )
        return external_id

    def post(
        self,
        kind: str,
        external_id: str,
        lines: dict[str, int],
        *,
        entity: str = US,
        currency: str = "USD",
        status: str = "posted",
        remaining: int = 0,
        due: date | None = None,
        event_id: str,
        period: str | None = None,
        lineage: bool = True,
    ) -> str:
        """Post one ERP document (with POSTED lineage unless `lineage=False`); return its ERP document id."""
        erp_kind = {"credit_note": "credit_memo"}.get(kind, kind)
        self._erp_seq += 1
        erp_id = f"{erp_kind.upper()}-{self._erp_seq:06d}"
        period = period or self.period
        self.erp.append(
            ErpDocumentRow(
                erp_document_id=erp_id,
                external_id=external_id,
                kind=erp_kind,
                legal_entity=entity,
                period=period,
                currency=currency,
                total=sum(lines.values()),
                amount_remaining=remaining,
                status=status,
                document_date=date(2026, 10, 5),
                due_date=due,
                source_event_id=event_id,
            )
        )
        for line_id, amount in lines.items():
            self.erp_lines.append(ErpLineRow(erp_id, external_id, line_id, entity, period, amount))
        if lineage:
            self._record_lineage(event_id, erp_id, entity, period)
        return erp_id

    def _record_lineage(self, event_id: str, erp_id: str, entity: str, period: str) -> None:
        for i, row in enumerate(self.lineage):
            if row.event_id == event_id:
                self.lineage[i] = replace(row, erp_document_ids=(*row.erp_document_ids, erp_id))
                return
        self.lineage.append(LineageRow(event_id, "POSTED", (erp_id,), entity, period))

    def extracts(self) -> Extracts:
        return Extracts(
            billing_documents=self.billing,
            billing_document_lines=self.billing_lines,
            erp_documents=self.erp,
            erp_document_lines=self.erp_lines,
            lineage=self.lineage,
            balance_transactions=self.balance_transactions,
            deferred_revenue=self.deferred,
        )


def _erp_status(kind: str, status: str) -> str:
    if kind == "invoice":
        return {"paid": "paid", "void": "void"}.get(status, "open")
    return "void" if status == "void" else "posted"


INVOICE_USD = "in_1QAbCdEfGhIjKlMn"
INVOICE_JPY = "in_1QJpYxWvUtSrQpOn"
PAYMENT_USD = "inpay_1QAbCdEfGhIjKl"
CREDIT_NOTE_USD = "cn_1QAbCdEfGhIjKlMn"
REFUND_USD = "re_1QAbCdEfGhIjKlMn"
PAYOUT = "po_1QPaYoUtAbCdEfGh"


def clean_books() -> Books:
    """October 2026: a paid USD invoice with its payment, a credit note and its refund; an open JPY invoice;
    the Stripe balance transactions of one payout; deferred revenue on both sides."""
    books = Books()
    books.document("invoice", INVOICE_USD, {"il_1QAbCdEfGhIjKl01": 12000, "il_1QAbCdEfGhIjKl02": 3000})
    books.document("payment", PAYMENT_USD, {"inpay": 15000}, status="succeeded")
    books.document("credit_note", CREDIT_NOTE_USD, {"cnli_1QAbCdEfGhIjKl01": 3000}, status="issued")
    books.document("refund", REFUND_USD, {"re": 3000}, status="succeeded")
    books.document(
        "invoice",
        INVOICE_JPY,
        {"il_1QJpYxWvUtSrQp01": 5000, "il_1QJpYxWvUtSrQp02": 1500},
        entity=JP,
        currency="JPY",
        status="open",
        remaining=6500,
        due=date(2026, 10, 20),
    )
    books.balance_transactions += [
        BalanceTransactionRow(
            "txn_1QChArGe00000001", "charge", "ch_1QAbCd", PAYOUT, US, PERIOD, "USD", 15000, 465, 14535
        ),
        BalanceTransactionRow("txn_1QReFuNd00000001", "refund", REFUND_USD, PAYOUT, US, PERIOD, "USD", -3000, 0, -3000),
        BalanceTransactionRow("txn_1QPaYoUt00000001", "payout", PAYOUT, PAYOUT, US, PERIOD, "USD", -11535, 0, -11535),
    ]
    payout_event = derive_event_id("stripe", "evt_1QPayoutPaid0001")
    books.post("payout", f"stripe-payout-{PAYOUT}", {"payout": 11535}, event_id=payout_event)
    books.deferred += [
        DeferredRevenueRow("billing", US, PERIOD, "USD", 40000, 9000, 7000, 1500, 40500),
        DeferredRevenueRow("erp", US, PERIOD, "USD", 40000, 9000, 7000, 1500, 40500),
    ]
    return books


def run(tmp_path: Path, books: Books, entity: str | None = None, period: str = PERIOD) -> Reconciliation:
    write_extracts(tmp_path / "extracts", books.extracts())
    return reconcile(tmp_path / "extracts", period, entity)


def only(result: Reconciliation, cls: str):
    assert result.counts[cls] == 1, result.counts
    assert result.difference_count == (0 if cls == "matched" else 1), result.counts
    return result.documents[cls][0]


def test_clean_period_reconciles_to_zero_differences(tmp_path: Path) -> None:
    # GIVEN books in agreement
    books = clean_books()

    # WHEN reconciled
    result = run(tmp_path, books)

    # THEN every document is matched and no control breaks
    assert result.counts == {**dict.fromkeys(CLASSES, 0), "matched": 5}
    assert result.differences == ()
    assert result.control_breaks() == ()


def test_extracts_are_parquet_partitioned_by_entity_and_period(tmp_path: Path) -> None:
    # WHEN the extracts are written
    written = write_extracts(tmp_path, clean_books().extracts())

    # THEN each table is hive-partitioned by legal entity then period
    root = Path(written["billing_documents"])
    assert sorted(p.relative_to(root).parent.as_posix() for p in root.rglob("*.parquet")) == [
        "legal_entity=JP01/period=2026-10",
        "legal_entity=US01/period=2026-10",
    ]
    totals = duckdb.sql(
        f"SELECT legal_entity, currency, SUM(total)::BIGINT FROM read_parquet('{root}/**/*.parquet', "
        "hive_partitioning = true) GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    assert totals == [("JP01", "JPY", 6500), ("US01", "USD", 36000)]


def test_rewriting_a_partition_replaces_it(tmp_path: Path) -> None:
    # GIVEN extracts written once
    books = clean_books()
    write_extracts(tmp_path, books.extracts())

    # WHEN the same period is extracted again
    result_root = tmp_path
    write_extracts(result_root, books.extracts())

    # THEN nothing is doubled
    assert reconcile(result_root, PERIOD).counts["matched"] == 5


def _missing_in_erp(books: Books) -> str:
    return books.document("invoice", "in_1QMiSsInGeRpAbCd", {"il_1QMiSsInGeRp01": 4200}, posted=False)


def _missing_in_billing(books: Books) -> str:
    external_id = erp_external_id("stripe", "invoice", "in_1QGhOsTiNvOiCe01")
    books.post("invoice", external_id, {"il_1QGhOsT01": 990}, status="open", remaining=990, event_id="ev-ghost")
    return external_id


def _amount_mismatch(books: Books) -> str:
    return books.document(
        "invoice",
        "in_1QAmOuNtMiSmAtCh",
        {"il_1QAmOuNt01": 12000, "il_1QAmOuNt02": 3000},
        erp_lines={"il_1QAmOuNt01": 12000, "il_1QAmOuNt02": 2500},
    )


def _status_mismatch(books: Books) -> str:
    return books.document("invoice", "in_1QStAtUsMiSmAtC", {"il_1QStAtUs01": 7700}, erp_status="open")


def _duplicate_in_erp(books: Books) -> str:
    external_id = books.document("invoice", "in_1QDuPlIcAtEdDoC", {"il_1QDuPlIc01": 2500})
    books.post("invoice", external_id, {"il_1QDuPlIc01": 2500}, status="paid", event_id="ev-dup-redrive")
    return external_id


def _posted_not_in_lineage(books: Books) -> str:
    external_id = erp_external_id("stripe", "invoice", "in_1QNoLiNeAgE00001")
    event_id = derive_event_id("stripe", "evt_1QNoLineage0001")
    books.billing.append(
        replace(
            books.billing[0],
            document_id="in_1QNoLiNeAgE00001",
            external_id=external_id,
            total=1800,
            event_ids=(event_id,),
        )
    )
    books.billing_lines.append(BillingLineRow("stripe", "in_1QNoLiNeAgE00001", external_id, "il_1", US, PERIOD, 1800))
    books.post("invoice", external_id, {"il_1": 1800}, status="paid", event_id=event_id, lineage=False)
    books.lineage.append(LineageRow(event_id, "EXCEPTION", (), US, PERIOD))
    return external_id


PLANTS: dict[str, tuple[Callable[[Books], str], int | None, int | None]] = {
    # class: (plant, billing amount, ERP amount)
    "missing_in_erp": (_missing_in_erp, 4200, None),
    "missing_in_billing": (_missing_in_billing, None, 990),
    "amount_mismatch": (_amount_mismatch, 15000, 14500),
    "status_mismatch": (_status_mismatch, 7700, 7700),
    "duplicate_in_erp": (_duplicate_in_erp, 2500, 5000),
    "posted_not_in_lineage": (_posted_not_in_lineage, 1800, 1800),
}


@pytest.mark.parametrize("cls", PLANTS)
def test_each_planted_difference_is_found_with_its_amounts(tmp_path: Path, cls: str) -> None:
    # GIVEN clean books with one planted difference
    books = clean_books()
    plant, billing_amount, erp_amount = PLANTS[cls]
    external_id = plant(books)

    # WHEN reconciled
    result = run(tmp_path, books)

    # THEN exactly that document is reported, in its class, with both sides' amounts
    doc = only(result, cls)
    assert doc.external_id == external_id
    assert (doc.billing_amount, doc.erp_amount) == (billing_amount, erp_amount)
    assert doc.difference == (billing_amount or 0) - (erp_amount or 0)
    assert result.counts["matched"] == 5


@pytest.mark.parametrize(
    ("lineage_status", "records_document"),
    [(None, False), ("CLAIMED", True), ("POSTED", False)],
    ids=["no-lineage", "claimed-when-the-erp-accepted", "posted-another-document"],
)
def test_erp_document_without_posted_lineage_is_reported(
    tmp_path: Path, lineage_status: str | None, records_document: bool
) -> None:
    # GIVEN an invoice the ERP holds whose event's lineage does not record it as posted
    books = clean_books()
    external_id = books.document("invoice", "in_1QCrAsHaFtErErP", {"il_1": 6100})
    event_id, erp_id = books.erp[-1].source_event_id, books.erp[-1].erp_document_id
    books.lineage = [row for row in books.lineage if row.event_id != event_id]
    if lineage_status is not None:
        ids = (erp_id,) if records_document else ("INVOICE-999999",)
        books.lineage.append(LineageRow(event_id, lineage_status, ids, US, PERIOD))

    # WHEN reconciled
    doc = only(run(tmp_path, books), "posted_not_in_lineage")

    # THEN it is reported with what lineage says
    assert (doc.external_id, doc.lineage_status, doc.erp_document_ids) == (external_id, lineage_status, (erp_id,))
    assert (doc.billing_amount, doc.erp_amount, doc.difference) == (6100, 6100, 0)


def test_amount_mismatch_reports_each_differing_line(tmp_path: Path) -> None:
    # GIVEN an invoice whose second line reached the ERP 5.00 short and a third line the ERP invented
    books = clean_books()
    books.document(
        "invoice",
        "in_1QLiNeDiFfErS01",
        {"il_a": 12000, "il_b": 3000},
        erp_lines={"il_a": 12000, "il_b": 2500, "il_c": 500},
    )

    # WHEN reconciled
    doc = only(run(tmp_path, books), "amount_mismatch")

    # THEN the totals agree but the lines do not, and each differing line is reported
    assert (doc.billing_amount, doc.erp_amount, doc.difference) == (15000, 15000, 0)
    assert [(line.line_id, line.billing_amount, line.erp_amount, line.difference) for line in doc.lines] == [
        ("il_b", 3000, 2500, 500),
        ("il_c", None, 500, -500),
    ]


def test_currency_difference_is_an_amount_mismatch_without_a_difference(tmp_path: Path) -> None:
    # GIVEN a JPY invoice the ERP booked in USD
    books = clean_books()
    books.document("invoice", "in_1QCuRrEnCy00001", {"il_1": 1000}, entity=JP, currency="JPY")
    books.erp[-1] = replace(books.erp[-1], currency="USD")

    # WHEN reconciled
    doc = only(run(tmp_path, books), "amount_mismatch")

    # THEN it is reported across currencies, never netted
    assert (doc.currency, doc.erp_currency, doc.difference) == ("JPY", "USD", None)
    assert "currency JPY in billing, USD in ERP" in doc.detail


def test_invoice_only_in_the_list_api_is_missing_in_erp(tmp_path: Path) -> None:
    # GIVEN an invoice Stripe's list API returns but no event ever delivered
    books = clean_books()
    books.document(
        "invoice",
        "in_1QNeVeRdElIvErEd",
        {"il_1QNeVeR01": 250000},
        entity=JP,
        currency="JPY",
        in_events=False,
        posted=False,
        status="open",
        remaining=250000,
    )

    # WHEN reconciled
    doc = only(run(tmp_path, books), "missing_in_erp")

    # THEN it is missing in the ERP, flagged as never delivered, in yen
    assert (doc.document_id, doc.currency, doc.billing_amount, doc.difference) == (
        "in_1QNeVeRdElIvErEd",
        "JPY",
        250000,
        250000,
    )
    assert (doc.in_events, doc.in_list_api, doc.event_id) == (False, True, None)
    assert "never delivered" in doc.detail


def test_every_class_at_once_is_counted_exactly(tmp_path: Path) -> None:
    # GIVEN clean books with one of every difference planted
    books = clean_books()
    planted = {cls: plant(books) for cls, (plant, _, _) in PLANTS.items()}

    # WHEN reconciled
    result = run(tmp_path, books)

    # THEN each is found in its class and nothing else moved
    assert result.counts == {"matched": 5, **dict.fromkeys(PLANTS, 1)}
    assert {cls: [d.external_id for d in result.documents[cls]] for cls in PLANTS} == {
        cls: [external_id] for cls, external_id in planted.items()
    }


def test_document_posted_in_a_later_period_is_matched_in_its_billing_period_only(tmp_path: Path) -> None:
    # GIVEN an October invoice the ERP booked into November (October closed)
    books = clean_books()
    books.document("invoice", "in_1QLaTePeRiOd001", {"il_1": 5000}, erp_period="2026-11")

    # WHEN October and November are reconciled
    october = run(tmp_path, books)
    november = reconcile(tmp_path / "extracts", "2026-11")

    # THEN it is matched in October and not a stray ERP document in November
    assert october.counts["matched"] == 6 and october.difference_count == 0
    assert november.counts == dict.fromkeys(CLASSES, 0)


def test_entity_filter_keeps_one_legal_entity(tmp_path: Path) -> None:
    # GIVEN books with differences in both entities
    books = clean_books()
    _missing_in_erp(books)
    books.document("invoice", "in_1QJpMiSsInG0001", {"il_1": 800}, entity=JP, currency="JPY", posted=False)

    # WHEN reconciled for JP01 only
    result = run(tmp_path, books, entity=JP)

    # THEN only JP01's documents and controls are there
    assert result.counts["matched"] == 1
    assert [d.document_id for d in result.differences] == ["in_1QJpMiSsInG0001"]
    assert {c.legal_entity for c in result.controls} == {JP}


def test_lineage_command_names_the_event(tmp_path: Path) -> None:
    books = clean_books()
    _status_mismatch(books)
    doc = only(run(tmp_path, books), "status_mismatch")
    assert doc.lineage_command == f"billing-sync lineage show {doc.event_id}"
    assert doc.event_id == derive_event_id("stripe", "evt_1Q" + "in_1QStAtUsMiSmAtC"[-10:])


def controls_of(result: Reconciliation) -> dict[tuple[str, str, str, str], tuple[int, int, int]]:
    return {
        (c.control, c.legal_entity, c.currency, c.item): (c.left_amount, c.right_amount, c.variance)
        for c in result.controls
    }


def test_controls_balance_to_the_minor_unit(tmp_path: Path) -> None:
    # GIVEN clean books plus receivables of every age and a deferred-revenue roll-forward that does not roll
    books = clean_books()
    for suffix, due, remaining in [
        ("A", date(2026, 11, 15), 1001),  # not yet due at Oct 31
        ("B", date(2026, 10, 1), 2002),  # 30 days past due at Oct 31
        ("C", date(2026, 9, 1), 3003),  # 60
        ("D", date(2026, 8, 1), 4004),  # 91
    ]:
        books.document(
            "invoice", f"in_1QAgInG0000000{suffix}", {"il": remaining}, status="open", remaining=remaining, due=due
        )
    books.erp[-1] = replace(books.erp[-1], amount_remaining=4000)  # the ERP applied 4 cents the source did not
    books.deferred[1] = replace(books.deferred[1], closing=40499)

    # WHEN reconciled
    controls = controls_of(run(tmp_path, books))

    # THEN each control shows both sides and the variance, in minor units
    assert controls[("billed_vs_erp_invoices", US, "USD", "")] == (25010, 25010, 0)
    assert controls[("billed_vs_erp_invoices", JP, "JPY", "")] == (6500, 6500, 0)
    assert controls[("cash_settled_vs_erp_payments", US, "USD", "")] == (15000, 15000, 0)
    assert controls[("credit_notes_vs_erp_credit_memos", US, "USD", "")] == (3000, 3000, 0)
    assert controls[("refunds_vs_erp_refunds", US, "USD", "")] == (3000, 3000, 0)
    assert controls[("stripe_clearing_vs_payouts", US, "USD", "")] == (11535, 11535, 0)
    assert controls[("payouts_vs_erp_payouts", US, "USD", "")] == (11535, 11535, 0)
    assert controls[("deferred_revenue_rollforward", US, "USD", "billing")] == (40500, 40500, 0)
    assert controls[("deferred_revenue_rollforward", US, "USD", "erp")] == (40500, 40499, 1)
    assert controls[("deferred_revenue_closing", US, "USD", "")] == (40500, 40499, 1)
    assert controls[("receivables_aging", US, "USD", "current")] == (1001, 1001, 0)
    assert controls[("receivables_aging", US, "USD", "1-30")] == (2002, 2002, 0)
    assert controls[("receivables_aging", US, "USD", "31-60")] == (3003, 3003, 0)
    assert controls[("receivables_aging", US, "USD", "90+")] == (4004, 4000, 4)
    assert controls[("receivables_aging", JP, "JPY", "1-30")] == (6500, 6500, 0)


def test_controls_show_what_the_erp_is_missing(tmp_path: Path) -> None:
    # GIVEN a planted missing invoice, a duplicate and an unbalanced payout
    books = clean_books()
    _missing_in_erp(books)
    _duplicate_in_erp(books)
    books.erp[[d.kind for d in books.erp].index("payout")] = replace(
        books.erp[[d.kind for d in books.erp].index("payout")], total=11000
    )

    # WHEN reconciled
    controls = controls_of(run(tmp_path, books))

    # THEN the invoice control moves by exactly the missing and the duplicated amounts
    assert controls[("billed_vs_erp_invoices", US, "USD", "")] == (15000 + 4200 + 2500, 15000 + 5000, 1700)
    assert controls[("payouts_vs_erp_payouts", US, "USD", "")] == (11535, 11000, 535)


def test_a_float_amount_is_refused() -> None:
    with pytest.raises(ExtractError, match="integer minor units"):
        BillingLineRow("stripe", "in_1", "stripe-invoice-in_1", "il_1", US, PERIOD, 12.5)  # type: ignore[arg-type]
    with pytest.raises(ExtractError, match="YYYY-MM"):
        reconcile(Path("."), "2026-13")


def test_empty_root_reconciles_to_nothing(tmp_path: Path) -> None:
    result = reconcile(tmp_path, PERIOD)
    assert result.counts == dict.fromkeys(CLASSES, 0)
    assert result.controls == ()


def test_unreadable_extracts_raise_a_reconciliation_error(tmp_path: Path) -> None:
    broken = tmp_path / "billing_documents" / "legal_entity=US01" / "period=2026-10"
    broken.mkdir(parents=True)
    (broken / "part.parquet").write_bytes(b"not parquet")
    with pytest.raises(ReconciliationError):
        reconcile(tmp_path, PERIOD)


# --- Athena: the same SQL, transpiled ---

LAYOUT = S3Layout(bucket="acme-billing-sync-recon", table_prefix="recon_")


@pytest.mark.parametrize("name", ["reconcile", "controls"])
def test_transpiled_sql_parses_as_trino_and_translates_duckdb_functions(name: str) -> None:
    # WHEN the SQL is transpiled for Athena
    text = athena_sql(name, "billing_sync", LAYOUT, period=PERIOD, entity="US01")

    # THEN Trino parses it, it reads the Glue tables, the parameters are literals
    sqlglot.parse_one(text, read="trino")
    assert '"billing_sync"."recon_billing_documents"' in text
    assert "$period" not in text and ":period" not in text and "'2026-10'" in text
    upper = text.upper()
    # and the DuckDB-only functions are Trino's
    if name == "reconcile":
        assert "LIST_CONTAINS" not in upper and "CONTAINS(" in upper
        assert "LIST(" not in upper and "ARRAY_AGG(" in upper
    else:
        assert "LAST_DAY(" not in upper and "LAST_DAY_OF_MONTH(" in upper
    if name == "reconcile":
        assert "ARRAY_LENGTH(" not in upper and "CARDINALITY(" in upper


def test_transpiled_sql_quotes_parameters() -> None:
    text = athena_sql("reconcile", "billing_sync", LAYOUT, period=PERIOD, entity="x' OR '1'='1")
    sqlglot.parse_one(text, read="trino")
    assert "'x'' OR ''1''=''1'" in text


def test_transpiled_sql_refuses_an_unknown_table(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN SQL reading a table outside the extract contract
    monkeypatch.setattr(statements, "_parsed", lambda name: sqlglot.parse_one("SELECT * FROM ledger_everything"))

    # THEN it is refused rather than sent to Athena
    with pytest.raises(statements.SqlRenderError, match="ledger_everything"):
        athena_sql("reconcile", "billing_sync", LAYOUT, period=PERIOD)


@pytest.mark.parametrize("name", ["reconcile", "controls"])
def test_athena_text_gives_the_duckdb_result(tmp_path: Path, name: str) -> None:
    # GIVEN the extracts of a period with every difference planted
    books = clean_books()
    for plant, _, _ in PLANTS.values():
        plant(books)
    root = tmp_path / "extracts"
    write_extracts(root, books.extracts())

    # WHEN the Athena text is read back as Trino and run by DuckDB over the same files
    text = athena_sql(name, "billing_sync", LAYOUT, period=PERIOD)
    con = duckdb.connect()
    con.execute("CREATE SCHEMA billing_sync")
    register_extracts(con, root)
    for table in (
        "billing_documents",
        "billing_document_lines",
        "erp_documents",
        "erp_document_lines",
        "lineage",
        "balance_transactions",
        "deferred_revenue",
    ):
        con.execute(f"CREATE VIEW billing_sync.recon_{table} AS SELECT * FROM {table}")
    via_athena = con.execute(sqlglot.transpile(text, read="trino", write="duckdb")[0]).fetchall()
    direct = con.execute(statements.load_sql(name), {"period": PERIOD, "entity": None}).fetchall()

    # THEN both give the same rows: one source
    assert sorted(map(repr, via_athena)) == sorted(map(repr, direct))


def test_glue_ddl_declares_the_partitions() -> None:
    ddl = glue_table_ddl("erp_documents", "billing_sync", LAYOUT)
    assert "PARTITIONED BY (`legal_entity` string, `period` string)" in ddl
    assert "LOCATION 's3://acme-billing-sync-recon/reconciliation/extracts/erp_documents/'" in ddl
    assert "`total` bigint" in ddl


def test_documents_read_through_the_erp_port_reconcile_against_billing(tmp_path: Path) -> None:
    # GIVEN a JPY invoice as the ERP port returns it, and its POSTED lineage record
    event_id = derive_event_id("stripe", "evt_1QJpInvoiceFinal")
    external_id = erp_external_id("stripe", "invoice", INVOICE_JPY)
    document = ErpDocument(
        external_id=external_id,
        kind=DocumentKind.INVOICE,
        legal_entity=JP,
        subsidiary="JP01",
        customer_external_id="stripe-customer-cus_1QJp",
        currency="JPY",
        posting_date=date(2026, 10, 5),
        total=6500,
        lines=(
            DocumentLine(item="SaaS-JP", source_line_id="il_1QJpYxWvUtSrQp01", amount=5000),
            DocumentLine(item="Seats-JP", source_line_id="il_1QJpYxWvUtSrQp02", amount=1500),
        ),
        journal=(
            JournalLine(account="1100 Accounts Receivable", currency="JPY", debit=6500),
            JournalLine(account="4000 Revenue", currency="JPY", credit=6500),
        ),
        source_event_id=event_id,
    )
    at = datetime(2026, 10, 5, 9, tzinfo=UTC)
    record = LineageRecord(
        event_id=event_id,
        source="stripe",
        source_event_id="evt_1QJpInvoiceFinal",
        event_type="invoice.issued",
        status=LineageStatus.POSTED,
        first_seen=at,
        last_seen=at,
        erp_document_ids=("INV-JP-000001",),
    )
    erp_row, erp_lines = erp_document_rows(
        document, erp_document_id="INV-JP-000001", status="open", amount_remaining=6500
    )
    billing = clean_books()
    jp_invoice = next(row for row in billing.billing if row.document_id == INVOICE_JPY)
    books = Books(
        billing=[replace(jp_invoice, event_ids=(event_id,))],
        billing_lines=[line for line in billing.billing_lines if line.document_id == INVOICE_JPY],
        erp=[erp_row],
        erp_lines=list(erp_lines),
        lineage=[lineage_row(record, legal_entity=JP, period=PERIOD)],
    )

    # WHEN reconciled
    result = run(tmp_path, books)

    # THEN the port's document matches the billed one, line by line
    assert result.counts == {**dict.fromkeys(CLASSES, 0), "matched": 1}
    assert [line.line_id for line in erp_lines] == ["il_1QJpYxWvUtSrQp01", "il_1QJpYxWvUtSrQp02"]


def test_the_refund_sagas_credit_memo_is_not_compared_as_a_credit_note() -> None:
    memo = ErpDocument(
        external_id="stripe-refund-credit-memo-re_1QAbCdEfGhIjKlMn",
        kind=DocumentKind.CREDIT_MEMO,
        legal_entity=US,
        subsidiary="US01",
        customer_external_id="stripe-customer-cus_1Q",
        currency="USD",
        posting_date=date(2026, 10, 9),
        total=3000,
        journal=(
            JournalLine(account="4000 Revenue", currency="USD", debit=3000),
            JournalLine(account="1100 Accounts Receivable", currency="USD", credit=3000),
        ),
        source_event_id="ev-refund",
    )
    row, _ = erp_document_rows(memo, erp_document_id="CM-1", status="posted")
    assert (row.kind, row.period) == ("refund_credit_memo", PERIOD)
