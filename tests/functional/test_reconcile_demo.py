"""`make demo` ends with the reconciliation of every period the samples fall in and the HTML report's path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from billing_sync_ops.demo import run_demo

pytestmark = pytest.mark.infra  # runs the whole demo on the local runtime


def test_the_demo_ends_with_the_reconciliation_summary_and_an_html_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # WHEN the demo runs
    run_demo(None, reconciliation_out=tmp_path)
    out = capsys.readouterr().out

    # THEN its output ends with the reconciliation: a row per period, April to November 2026
    summary = out[out.index("reconciliation: Stripe") :]
    for period in ("2026-04", "2026-05", "2026-06", "2026-07", "2026-08", "2026-09", "2026-10", "2026-11"):
        assert re.search(rf"^\s+{period}\s+\d+", summary, re.MULTILINE), period
    # AND the one invoice Stripe holds but never delivered is its only document difference, explained
    assert "2026-11 missing_in_erp stripe-invoice-in_1QzUndNx4RkL2mQeNvrD3lvR (US01)" in summary
    assert "never delivered as an event" in summary
    assert "1 document difference(s) over 8 period(s)" in summary
    # AND the last line names an HTML report that exists
    last = summary.strip().splitlines()[-1]
    match = re.fullmatch(r"\s*HTML report: (\S+\.html)(?: .*)?", last)
    assert match is not None, last
    html = Path(match.group(1))
    assert html.is_file() and html.is_relative_to(tmp_path)
    assert "<table" in html.read_text(encoding="utf-8")
