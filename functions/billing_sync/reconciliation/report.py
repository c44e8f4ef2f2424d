"""Reconciliation reports: JSON (everything), CSV (one row per difference) and a self-contained HTML page.

The HTML page has no external assets: inline CSS and inline SVG bar charts (differences by class,
exceptions by category and, given latency rows, a posting latency histogram), the controls and a table of
every difference with the command that shows its lineage. Amounts stay integer minor units in JSON and CSV;
the HTML shows them in major units, formatted exactly from the currency's exponent.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from decimal import Decimal
from html import escape
from pathlib import Path
from typing import Any

from billing_sync.domain.money import UnknownCurrencyError, currency_exponent
from billing_sync.reconciliation.engine import CLASSES, Reconciliation, iter_rows

CSV_COLUMNS = (
    "class",
    "legal_entity",
    "period",
    "source",
    "document_id",
    "external_id",
    "kind",
    "currency",
    "line_id",
    "billing_amount",
    "erp_amount",
    "difference",
    "billing_status",
    "erp_status",
    "erp_currency",
    "erp_document_ids",
    "event_id",
    "in_events",
    "in_list_api",
    "lineage_status",
    "lineage_command",
    "detail",
)
"""The CSV header: amounts in minor units; `line_id` empty for a document-level difference."""

LATENCY_BUCKETS: tuple[tuple[str, float], ...] = (
    ("<1 s", 1),
    ("1-5 s", 5),
    ("5-30 s", 30),
    ("30-60 s", 60),
    ("1-5 min", 300),
    ("5-60 min", 3600),
    (">1 h", float("inf")),
)


@dataclass(frozen=True, slots=True)
class LatencyRow:
    """One posted event: when billing produced it and when the ERP acknowledged its document."""

    event_id: str
    billed_at: datetime
    acknowledged_at: datetime

    @property
    def seconds(self) -> float:
        return (self.acknowledged_at - self.billed_at).total_seconds()


@dataclass(frozen=True, slots=True)
class ReportPaths:
    json: Path
    csv: Path
    html: Path


def latency_summary(rows: Sequence[LatencyRow]) -> dict[str, float | int] | None:
    """Count, p50, p95 and max posting latency in seconds (nearest rank), or None without rows."""
    if not rows:
        return None
    ordered = sorted(row.seconds for row in rows)

    def rank(p: int) -> float:
        return ordered[max(0, -(-p * len(ordered) // 100) - 1)]

    return {"count": len(ordered), "p50_seconds": rank(50), "p95_seconds": rank(95), "max_seconds": ordered[-1]}


def latency_histogram(rows: Iterable[LatencyRow]) -> list[tuple[str, int]]:
    """How many latencies fall in each of LATENCY_BUCKETS (upper bounds exclusive)."""
    counts = dict.fromkeys((label for label, _ in LATENCY_BUCKETS), 0)
    for row in rows:
        seconds = row.seconds
        label = next(label for label, upper in LATENCY_BUCKETS if seconds < upper)
        counts[label] += 1
    return list(counts.items())


def format_amount(amount: int | None, currency: str | None) -> str:
    """`amount` minor units as major units of `currency` ("1,234.50 USD"), exactly; '' for None."""
    if amount is None:
        return ""
    if not currency:
        return str(amount)
    try:
        exponent = currency_exponent(currency)
    except UnknownCurrencyError:
        return f"{amount} {currency} (minor units)"
    return f"{Decimal(amount).scaleb(-exponent):,.{exponent}f} {currency}"


def _csv_rows(result: Reconciliation) -> Iterable[dict[str, Any]]:
    for doc, line in iter_rows(result):
        yield {
            "class": doc.classification,
            "legal_entity": doc.legal_entity,
            "period": doc.period,
            "source": doc.source or "",
            "document_id": doc.document_id or "",
            "external_id": doc.external_id,
            "kind": doc.kind,
            "currency": doc.currency,
            "line_id": line.line_id if line else "",
            "billing_amount": _blank(line.billing_amount if line else doc.billing_amount),
            "erp_amount": _blank(line.erp_amount if line else doc.erp_amount),
            "difference": _blank(line.difference if line else doc.difference),
            "billing_status": doc.billing_status or "",
            "erp_status": doc.erp_status or "",
            "erp_currency": doc.erp_currency or "",
            "erp_document_ids": " ".join(doc.erp_document_ids),
            "event_id": doc.event_id or "",
            "in_events": _blank(doc.in_events),
            "in_list_api": _blank(doc.in_list_api),
            "lineage_status": doc.lineage_status or "",
            "lineage_command": doc.lineage_command or "",
            "detail": line.detail if line else doc.detail,
        }


def _blank(value: object) -> object:
    return "" if value is None else value


def report_document(
    result: Reconciliation,
    *,
    latencies: Sequence[LatencyRow] = (),
    exceptions_by_category: Mapping[str, int] | None = None,
    generated_at: datetime | None = None,
) -> dict[str, Any]:
    """The JSON report: the summary, every difference with its lines, the controls, exceptions and latency."""
    return {
        **result.summary(),
        "generated_at": (generated_at or datetime.now(UTC)).isoformat(),
        "differences": [
            {**asdict(doc), "lines": [asdict(line) for line in doc.lines], "lineage_command": doc.lineage_command}
            for doc in result.differences
        ],
        "exceptions_by_category": dict(exceptions_by_category or {}),
        "posting_latency": latency_summary(latencies),
    }


def write_reports(
    result: Reconciliation,
    out_dir: str | Path,
    *,
    latencies: Sequence[LatencyRow] = (),
    exceptions_by_category: Mapping[str, int] | None = None,
    stem: str | None = None,
    generated_at: datetime | None = None,
) -> ReportPaths:
    """Write `<stem>.json`, `<stem>.csv` and `<stem>.html` under `out_dir`; return their paths. Raises OSError."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = stem or f"reconciliation-{result.period}" + (f"-{result.entity}" if result.entity else "")
    when = generated_at or datetime.now(UTC)
    paths = ReportPaths(json=out / f"{stem}.json", csv=out / f"{stem}.csv", html=out / f"{stem}.html")
    document = report_document(
        result, latencies=latencies, exceptions_by_category=exceptions_by_category, generated_at=when
    )
    paths.json.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    with paths.csv.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(_csv_rows(result))
    paths.html.write_text(
        render_html(result, latencies=latencies, exceptions_by_category=exceptions_by_category, generated_at=when),
        encoding="utf-8",
    )
    return paths


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem;color:#1f2933;background:#fff}
h1{font-size:1.5rem;margin-bottom:.25rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #d9e2ec}
.meta{color:#52606d;margin-top:0}.charts{display:flex;flex-wrap:wrap;gap:1.5rem}
figure{margin:0;padding:.75rem;border:1px solid #d9e2ec;border-radius:6px}
figcaption{font-weight:600;margin-bottom:.5rem}
table{border-collapse:collapse;font-size:.85rem;margin-top:.5rem}th,td{border:1px solid #d9e2ec;padding:.3rem .5rem;
text-align:left;vertical-align:top}th{background:#f0f4f8}td.num{text-align:right;font-variant-numeric:tabular-nums;
white-space:nowrap}tr.break td{background:#fff5f5}code{font-size:.8rem;white-space:nowrap}
.ok{color:#2f855a}.bad{color:#c53030}
"""


def _bar_chart(chart_id: str, title: str, items: Sequence[tuple[str, int]], colour: str) -> str:
    width, label_width, bar_height, gap = 560, 170, 20, 8
    height = max(1, len(items)) * (bar_height + gap) + gap
    peak = max((value for _, value in items), default=0) or 1
    usable = width - label_width - 60
    parts = [
        f'<figure id="{chart_id}"><figcaption>{escape(title)}</figcaption>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}">',
    ]
    if not items:
        parts.append(f'<text x="8" y="{bar_height}" font-size="12" fill="#52606d">no data</text>')
    for i, (label, value) in enumerate(items):
        y = gap + i * (bar_height + gap)
        length = round(usable * value / peak) if value else 0
        parts.append(
            f'<text x="{label_width - 6}" y="{y + bar_height - 6}" font-size="12" text-anchor="end" '
            f'fill="#1f2933">{escape(label)}</text>'
            f'<rect x="{label_width}" y="{y}" width="{length}" height="{bar_height}" fill="{colour}">'
            f"<title>{escape(label)}: {value}</title></rect>"
            f'<text x="{label_width + length + 6}" y="{y + bar_height - 6}" font-size="12" '
            f'fill="#1f2933">{value}</text>'
        )
    parts.append("</svg></figure>")
    return "".join(parts)


def _table(table_id: str, headers: Sequence[str], rows: Iterable[tuple[Sequence[str], str]], numeric: set[int]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = []
    for cells, row_class in rows:
        tds = "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>" for i, cell in enumerate(cells)
        )
        body.append(f'<tr class="{row_class}">{tds}</tr>' if row_class else f"<tr>{tds}</tr>")
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def render_html(
    result: Reconciliation,
    *,
    latencies: Sequence[LatencyRow] = (),
    exceptions_by_category: Mapping[str, int] | None = None,
    generated_at: datetime | None = None,
) -> str:
    """The self-contained HTML report (no scripts, no external assets)."""
    scope = f"{result.period} · {result.entity or 'all legal entities'}"
    when = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    differences = result.difference_count
    breaks = len(result.control_breaks())
    verdict = (
        '<span class="ok">billing and ERP agree</span>'
        if not differences and not breaks
        else f'<span class="bad">{differences} document difference(s), {breaks} control break(s)</span>'
    )
    charts = [
        _bar_chart(
            "chart-differences-by-class",
            "Differences by class",
            [(cls, result.counts.get(cls, 0)) for cls in CLASSES[1:]],
            "#c53030",
        ),
        _bar_chart(
            "chart-exceptions-by-category",
            "Exceptions by category",
            sorted((exceptions_by_category or {}).items()),
            "#b7791f",
        ),
    ]
    latency_note = ""
    if latencies:
        charts.append(
            _bar_chart(
                "chart-posting-latency",
                "Posting latency (billing event to ERP)",
                latency_histogram(latencies),
                "#2b6cb0",
            )
        )
        summary = latency_summary(latencies) or {}
        latency_note = (
            f'<p id="latency-summary">Posting latency over {summary["count"]} events: '
            f"p50 {summary['p50_seconds']:g} s, "
            f"p95 {summary['p95_seconds']:g} s, max {summary['max_seconds']:g} s.</p>"
        )
    class_rows = (([escape(cls), str(result.counts.get(cls, 0))], "") for cls in CLASSES)
    control_rows = (
        (
            [
                escape(c.control),
                escape(c.legal_entity),
                escape(c.currency),
                escape(c.item),
                escape(c.left_label),
                escape(format_amount(c.left_amount, c.currency)),
                escape(c.right_label),
                escape(format_amount(c.right_amount, c.currency)),
                escape(format_amount(c.variance, c.currency)),
            ],
            "break" if c.variance else "",
        )
        for c in result.controls
    )
    difference_rows = (
        (
            [
                escape(doc.classification),
                escape(doc.legal_entity),
                escape(doc.kind),
                escape(doc.document_id or ""),
                f"<code>{escape(doc.external_id)}</code>",
                escape(line.line_id if line else ""),
                escape(format_amount(line.billing_amount if line else doc.billing_amount, doc.currency)),
                escape(format_amount(line.erp_amount if line else doc.erp_amount, doc.erp_currency or doc.currency)),
                escape(format_amount(line.difference if line else doc.difference, doc.currency)),
                escape(" ".join(doc.erp_document_ids)),
                escape(line.detail if line else doc.detail),
                f"<code>{escape(doc.lineage_command)}</code>" if doc.lineage_command else "",
            ],
            "",
        )
        for doc, line in iter_rows(result)
    )
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">',
            f"<title>Reconciliation {escape(scope)}</title><style>{_CSS}</style></head><body>",
            f"<h1>Reconciliation {escape(scope)}</h1>",
            f'<p class="meta">Generated {escape(when)}: {verdict}</p>',
            "<h2>Documents by class</h2>",
            _table("documents-by-class", ["class", "documents"], class_rows, {1}),
            f'<h2>Charts</h2><div class="charts">{"".join(charts)}</div>{latency_note}',
            "<h2>Balancing controls</h2>",
            _table(
                "controls",
                ["control", "entity", "currency", "item", "left", "left amount", "right", "right amount", "variance"],
                control_rows,
                {5, 7, 8},
            ),
            "<h2>Differences</h2>",
            _table(
                "differences",
                [
                    "class",
                    "entity",
                    "kind",
                    "document",
                    "ERP external id",
                    "line",
                    "billing",
                    "ERP",
                    "difference",
                    "ERP documents",
                    "detail",
                    "lineage",
                ],
                difference_rows,
                {6, 7, 8},
            ),
            "</body></html>\n",
        ]
    )
