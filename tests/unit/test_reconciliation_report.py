"""Reconciliation reports: JSON, CSV (one row per difference) and a self-contained HTML page."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import pytest

from billing_sync.reconciliation.engine import Reconciliation
from billing_sync.reconciliation.report import (
    CSV_COLUMNS,
    LatencyRow,
    format_amount,
    latency_histogram,
    latency_summary,
    write_reports,
)
from tests.unit.test_reconciliation_engine import PLANTS, clean_books, run

GENERATED = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
BILLED = datetime(2026, 10, 31, 23, 0, tzinfo=UTC)


def latencies(*seconds: float) -> list[LatencyRow]:
    return [LatencyRow(f"ev-{i}", BILLED, BILLED + timedelta(seconds=s)) for i, s in enumerate(seconds)]


class Page(HTMLParser):
    """Collects what a reader sees: tables by id with their rows, figures by id, and any external reference."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.figures: dict[str, int] = {}
        self.external: list[str] = []
        self._table: str | None = None
        self._figure: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        for name in ("src", "href"):
            if attributes.get(name):
                self.external.append(str(attributes[name]))
        if tag in ("script", "link", "img", "iframe"):
            self.external.append(tag)
        if tag == "table":
            self._table = attributes.get("id") or ""
            self.tables[self._table] = []
        elif tag == "figure":
            self._figure = attributes.get("id") or ""
            self.figures[self._figure] = 0
        elif tag == "rect" and self._figure is not None:
            self.figures[self._figure] += 1
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._table is not None and self._row is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        elif tag == "figure":
            self._figure = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def planted(tmp_path: Path) -> Reconciliation:
    books = clean_books()
    for plant, _, _ in PLANTS.values():
        plant(books)
    return run(tmp_path, books)


def test_reports_carry_every_difference(tmp_path: Path) -> None:
    # GIVEN a period with every difference class planted
    result = planted(tmp_path)

    # WHEN the reports are written
    paths = write_reports(result, tmp_path / "reports", generated_at=GENERATED)

    # THEN the JSON has the counts, the controls and each difference
    document = json.loads(paths.json.read_text())
    assert document["period"] == "2026-10"
    assert document["documents"] == {"matched": 5, **dict.fromkeys(PLANTS, 1)}
    assert {c["control"] for c in document["controls"]} >= {"billed_vs_erp_invoices", "receivables_aging"}
    assert sorted(d["classification"] for d in document["differences"]) == sorted(PLANTS)
    # and the CSV has one row per difference: the amount mismatch by line, the rest by document
    with paths.csv.open() as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == len(PLANTS)
    mismatch = next(r for r in rows if r["class"] == "amount_mismatch")
    assert (mismatch["line_id"], mismatch["billing_amount"], mismatch["erp_amount"], mismatch["difference"]) == (
        "il_1QAmOuNt02",
        "3000",
        "2500",
        "500",
    )
    missing = next(r for r in rows if r["class"] == "missing_in_erp")
    assert missing["lineage_command"] == f"billing-sync lineage show {missing['event_id']}"


def test_html_report_is_self_contained_with_its_tables_and_figures(tmp_path: Path) -> None:
    # GIVEN a period with every difference class, exceptions and posting latencies
    result = planted(tmp_path)

    # WHEN the HTML page is written
    paths = write_reports(
        result,
        tmp_path / "reports",
        latencies=latencies(0.4, 2, 2, 45, 7200),
        exceptions_by_category={"MAPPING": 3, "ERP_REJECTED": 1},
        generated_at=GENERATED,
    )
    page = Page()
    page.feed(paths.html.read_text())

    # THEN it references nothing outside itself
    assert page.external == []
    # and it has the class counts, the controls and one row per difference with its lineage command
    assert page.tables["documents-by-class"][1:] == [["matched", "5"], *[[cls, "1"] for cls in PLANTS]]
    controls = {(r[0], r[1], r[3]): r for r in page.tables["controls"][1:]}
    assert controls[("billed_vs_erp_invoices", "US01", "")][4:] == [
        "billed",
        "462.00 USD",
        "erp_invoices",
        "449.90 USD",
        "12.10 USD",
    ]
    differences = page.tables["differences"][1:]
    assert sorted(r[0] for r in differences) == sorted(PLANTS)
    assert all(r[11].startswith("billing-sync lineage show ") for r in differences if r[0] != "missing_in_billing")
    mismatch = next(r for r in differences if r[0] == "amount_mismatch")
    assert mismatch[5:9] == ["il_1QAmOuNt02", "30.00 USD", "25.00 USD", "5.00 USD"]
    # and the three charts, with one bar per class, per category and per latency bucket
    assert page.figures == {
        "chart-differences-by-class": 6,
        "chart-exceptions-by-category": 2,
        "chart-posting-latency": 7,
    }


def test_html_without_latency_rows_has_no_latency_chart(tmp_path: Path) -> None:
    paths = write_reports(run(tmp_path, clean_books()), tmp_path / "reports", generated_at=GENERATED)
    page = Page()
    page.feed(paths.html.read_text())
    assert "chart-posting-latency" not in page.figures
    assert page.tables["differences"][1:] == []
    assert "billing and ERP agree" in paths.html.read_text()


def test_latency_arithmetic() -> None:
    rows = latencies(*range(1, 101))
    assert latency_summary(rows) == {"count": 100, "p50_seconds": 50, "p95_seconds": 95, "max_seconds": 100}
    assert latency_summary([]) is None
    assert dict(latency_histogram(latencies(0.5, 1, 4.9, 30, 3600))) == {
        "<1 s": 1,
        "1-5 s": 2,
        "5-30 s": 0,
        "30-60 s": 1,
        "1-5 min": 0,
        "5-60 min": 0,
        ">1 h": 1,
    }


def test_amounts_are_formatted_exactly_from_the_currency_exponent() -> None:
    assert format_amount(123456, "USD") == "1,234.56 USD"
    assert format_amount(-500, "JPY") == "-500 JPY"
    assert format_amount(10001, "KWD") == "10.001 KWD"
    assert format_amount(None, "USD") == ""


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")), reason="no Chromium")
def test_html_report_renders_in_a_browser(tmp_path: Path) -> None:
    # GIVEN the HTML page of a period with differences
    paths = write_reports(planted(tmp_path), tmp_path / "reports", latencies=latencies(1, 2), generated_at=GENERATED)
    browser = shutil.which("chromium") or shutil.which("chromium-browser")

    # WHEN headless Chromium renders its DOM
    dom = subprocess.run(
        [str(browser), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", paths.html.as_uri()],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout

    # THEN the tables and the charts are in the rendered page
    page = Page()
    page.feed(dom)
    assert {"documents-by-class", "controls", "differences"} <= set(page.tables)
    assert page.figures["chart-differences-by-class"] == 6
