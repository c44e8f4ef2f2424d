"""How a pair's rate is chosen from ECB euro reference rates: direct, inverse, cross, look-back, missing."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from billing_sync.domain.fx import Rate
from billing_sync.state.rates import LOOK_BACK_DAYS, wanted
from tests.fakes.rates import InMemoryRateTable, sample_rate_table

FRIDAY = date(2026, 11, 20)
SUNDAY = date(2026, 11, 22)


def ecb(day: date, **per_euro: str) -> list[Rate]:
    """The ECB's publication of `day`: 1 EUR = value per currency."""
    return [Rate("EUR", currency, Decimal(value), "ecb", day) for currency, value in per_euro.items()]


@pytest.fixture
def table() -> InMemoryRateTable:
    return InMemoryRateTable(ecb(FRIDAY, USD="1.0850", JPY="162.31", KWD="0.33340"))


def test_a_published_pair_is_returned_as_published(table: InMemoryRateTable) -> None:
    # GIVEN Friday's ECB rates
    # WHEN the EUR/USD rate of Friday is asked for
    rate = table.rate("EUR", "USD", FRIDAY)
    # THEN it is the ECB's figure, from the ECB, as of Friday
    assert rate == Rate("EUR", "USD", Decimal("1.0850"), "ecb", FRIDAY)
    assert rate is not None and rate.convert(100000) == 108500  # 1,000.00 EUR = 1,085.00 USD


def test_the_inverse_of_a_published_pair_is_one_over_it_to_twelve_places(table: InMemoryRateTable) -> None:
    # WHEN USD/EUR is asked for (the ECB publishes only EUR/USD)
    rate = table.rate("USD", "EUR", FRIDAY)
    # THEN it is 1 / 1.0850 quantised half-even to 12 decimal places
    assert rate == Rate("USD", "EUR", Decimal("0.921658986175"), "ecb", FRIDAY)
    assert rate is not None and rate.convert(108500) == 100000


def test_two_non_euro_currencies_cross_through_the_euro(table: InMemoryRateTable) -> None:
    # WHEN USD/JPY (JP01 translating a USD invoice) and JPY/KWD are asked for
    usd_jpy = table.rate("USD", "JPY", FRIDAY)
    jpy_kwd = table.rate("JPY", "KWD", FRIDAY)
    # THEN each is EUR/quote divided by EUR/base on the same day, marked as a cross
    assert usd_jpy == Rate("USD", "JPY", Decimal("149.594470046083"), "ecb-cross", FRIDAY)
    assert jpy_kwd == Rate("JPY", "KWD", Decimal("0.002054094018"), "ecb-cross", FRIDAY)
    # AND 100.00 USD is 14,959 JPY (JPY has no minor unit), 10,000 JPY is 20.541 KWD (three decimals)
    assert usd_jpy is not None and usd_jpy.convert(10000) == 14959
    assert jpy_kwd is not None and jpy_kwd.convert(10000) == 20541


def test_a_weekend_uses_the_friday_publication_and_says_so(table: InMemoryRateTable) -> None:
    # WHEN a rate is asked for on Sunday (the ECB publishes nothing at weekends)
    rate = table.rate("EUR", "USD", SUNDAY)
    # THEN Friday's rate answers, dated Friday
    assert rate is not None and rate.as_of == FRIDAY and rate.value == Decimal("1.0850")


def test_a_later_publication_wins_over_an_earlier_one() -> None:
    # GIVEN Thursday's and Friday's rates
    table = InMemoryRateTable(ecb(date(2026, 11, 19), USD="1.0700") + ecb(FRIDAY, USD="1.0850"))
    # WHEN Saturday's rate is asked for
    # THEN Friday's answers, not Thursday's
    assert table.rate("EUR", "USD", date(2026, 11, 21)) == Rate("EUR", "USD", Decimal("1.0850"), "ecb", FRIDAY)


def test_easter_is_bridged_but_a_longer_gap_is_missing_never_guessed() -> None:
    # GIVEN rates up to Maundy Thursday 2 April 2026 (no publication Good Friday to Easter Monday)
    thursday = date(2026, 4, 2)
    table = InMemoryRateTable(ecb(thursday, USD="1.0800"))
    # WHEN Easter Monday (four days later) and the Tuesday after (five days) are asked for
    easter_monday = table.rate("EUR", "USD", date(2026, 4, 6))
    tuesday = table.rate("EUR", "USD", date(2026, 4, 7))
    # THEN Easter Monday gets Thursday's rate; Tuesday gets none
    assert LOOK_BACK_DAYS == 4
    assert easter_monday is not None and easter_monday.as_of == thursday
    assert tuesday is None


def test_a_rate_published_after_the_day_is_never_used(table: InMemoryRateTable) -> None:
    # WHEN Thursday's rate is asked for and only Friday's exists
    # THEN there is none: a later rate is not a rate "on or before"
    assert table.rate("EUR", "USD", date(2026, 11, 19)) is None


def test_a_currency_the_ecb_does_not_publish_has_no_rate(table: InMemoryRateTable) -> None:
    # WHEN GBP is asked for and Friday's publication has no GBP
    # THEN there is no rate, direct or cross
    assert table.rate("EUR", "GBP", FRIDAY) is None
    assert table.rate("USD", "GBP", FRIDAY) is None


def test_a_cross_needs_both_legs_from_the_same_publication() -> None:
    # GIVEN USD published Friday but JPY only Thursday
    table = InMemoryRateTable(ecb(date(2026, 11, 19), JPY="161.00") + ecb(FRIDAY, USD="1.0850"))
    # WHEN USD/JPY is asked for on Friday
    rate = table.rate("USD", "JPY", FRIDAY)
    # THEN there is no rate: a cross of two days' figures would be a guess
    assert rate is None


def test_one_lookup_asks_for_at_most_twenty_items() -> None:
    # GIVEN a cross pair (direct, inverse and two euro legs, over five days)
    keys = wanted("USD", "JPY", SUNDAY)
    # THEN one BatchGetItem (100 keys at most) covers it, newest day first
    assert len(keys) == 20 == len(set(keys))
    assert keys[0] == ("USD", "JPY", SUNDAY) and keys[-1][2] == date(2026, 11, 18)


def test_the_shipped_rates_cover_every_business_day_of_november_2026() -> None:
    # GIVEN the rates file shipped for the demo and the samples
    table = sample_rate_table()
    # WHEN every day of November is looked up for the currencies the samples use
    days = [date(2026, 11, day) for day in range(1, 31)]
    # THEN every day has a rate, at most three days old, in a realistic range
    for day in days:
        usd = table.rate("EUR", "USD", day)
        jpy = table.rate("USD", "JPY", day)
        assert usd is not None and (day - usd.as_of).days <= 3 and Decimal("1.0") < usd.value < Decimal("1.2")
        assert jpy is not None and jpy.source == "ecb-cross" and Decimal(130) < jpy.value < Decimal(170)
