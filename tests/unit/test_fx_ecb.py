"""Reading the ECB's reference-rate CSV files: the daily file, the history file, and files that are neither."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from billing_sync.domain.fx import Rate
from billing_sync_ops.ops.rates import EcbFormatError, parse_ecb_csv
from tests.fakes.rates import SAMPLE_RATES_FILE

# The layout of https://www.ecb.europa.eu/stats/eurofxref/eurofxref.zip (spaces after commas, a trailing comma)
DAILY = "Date, USD, JPY, BGN, CZK, GBP, \n27 November 2026, 1.0850, 162.31, 1.9558, 25.012, 0.83120, \n"
# The layout of eurofxref-hist.zip: ISO dates, newest first, N/A where a currency had no rate that day
HISTORY = (
    "Date,USD,JPY,CYP,GBP,\n"
    "2026-11-27,1.0850,162.31,N/A,0.83120,\n"
    "2026-11-26,1.0838,161.90,N/A,0.83055,\n"
    "2007-12-31,1.4721,164.93,0.585274,0.73335,\n"
)


def test_the_daily_file_gives_one_rate_per_currency_for_its_day() -> None:
    # GIVEN the ECB's daily file
    # WHEN it is parsed
    rates = parse_ecb_csv(DAILY, name="eurofxref.csv")
    # THEN every column is a rate of one euro in that currency, from the ECB, as of the row's day
    day = date(2026, 11, 27)
    assert rates == [
        Rate("EUR", "USD", Decimal("1.0850"), "ecb", day),
        Rate("EUR", "JPY", Decimal("162.31"), "ecb", day),
        Rate("EUR", "BGN", Decimal("1.9558"), "ecb", day),
        Rate("EUR", "CZK", Decimal("25.012"), "ecb", day),
        Rate("EUR", "GBP", Decimal("0.83120"), "ecb", day),
    ]


def test_the_history_file_skips_not_available_cells() -> None:
    # GIVEN the history file, where the Cyprus pound ends in 2007
    # WHEN it is parsed
    rates = parse_ecb_csv(HISTORY, name="eurofxref-hist.csv")
    # THEN each day has its rates, and CYP only where the ECB published one
    assert len(rates) == 10
    assert [(r.quote, r.as_of) for r in rates if r.quote == "CYP"] == [("CYP", date(2007, 12, 31))]
    assert Rate("EUR", "USD", Decimal("1.0838"), "ecb", date(2026, 11, 26)) in rates


def test_the_shipped_file_is_an_ecb_file_of_business_days() -> None:
    # GIVEN events/rates/ecb_2026-11.csv
    rates = parse_ecb_csv(SAMPLE_RATES_FILE.read_text(), name=SAMPLE_RATES_FILE.name)
    # THEN it holds USD, JPY, GBP, CHF and KWD for weekdays only, through the end of November 2026
    days = {rate.as_of for rate in rates}
    assert {rate.quote for rate in rates} == {"USD", "JPY", "GBP", "CHF", "KWD"}
    assert all(day.weekday() < 5 for day in days)
    assert max(days) == date(2026, 11, 30) and date(2026, 10, 30) in days
    assert len(rates) == 5 * len(days)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("Currency,USD,\n2026-11-27,1.0850,\n", "line 1, column 1: expected `Date`"),
        ("Date,USD,usd,\n2026-11-27,1.0850,1.0850,\n", "line 1, column 3: 'usd' is not a currency code"),
        ("Date,USD,JPY,\n2026-11-27,1.0850,162.31,\n2026-13-01,1.08,160,\n", "line 3, column 1: '2026-13-01'"),
        ("Date,USD,JPY,\n2026-11-27,1.0850,abc,\n", "line 2, column 3: 'abc' is not a positive rate"),
        ("Date,USD,JPY,\n2026-11-27,-1.0850,160,\n", "line 2, column 2: '-1.0850' is not a positive rate"),
        ("Date,USD,\n2026-11-27,1.0850,\n2026-11-27,1.0851,\n", "line 3, column 1: 2026-11-27 is also on line 2"),
        ("Date,USD,\n2026-11-27,1.0850,9.99,\n", "line 2, column 3: '9.99' is under no currency"),
    ],
    ids=["empty", "no-date-header", "bad-currency", "bad-date", "bad-value", "negative", "duplicate-day", "extra"],
)
def test_a_malformed_file_names_its_line_and_column(text: str, message: str) -> None:
    # GIVEN a file that is not a well-formed ECB file
    # WHEN it is parsed
    with pytest.raises(EcbFormatError) as raised:
        parse_ecb_csv(text, name="rates.csv")
    # THEN the error names the file and where it went wrong
    assert str(raised.value).startswith("rates.csv: ")
    assert message in str(raised.value)
