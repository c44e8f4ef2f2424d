"""The daily allocation reproduces Stripe's "by day" revenue recognition to the minor unit."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from billing_sync.domain.recognition import Obligation


def at(year: int, month: int, day: int, hour: int = 0) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def test_stripes_worked_example_by_month():
    # GIVEN 120.00 USD from Jun 15 12:00 to Oct 13 12:00 UTC
    obligation = Obligation.over(12000, at(2026, 6, 15, 12), at(2026, 10, 13, 12))

    # THEN the months carry Stripe's figures
    assert obligation.by_month() == {
        (2026, 6): 1600,
        (2026, 7): 3100,
        (2026, 8): 3100,
        (2026, 9): 3000,
        (2026, 10): 1200,
    }


def test_a_month_across_february():
    obligation = Obligation.over(3100, at(2026, 1, 15), at(2026, 2, 15))
    assert obligation.by_month() == {(2026, 1): 1700, (2026, 2): 1400}


def test_jpy_and_kwd_days():
    assert Obligation.over(1000, at(2026, 3, 1), at(2026, 3, 8)).daily() == [142, 143, 143, 143, 143, 143, 143]
    assert Obligation.over(10000, at(2026, 3, 1), at(2026, 3, 4)).daily() == [3333, 3333, 3334]


def test_earned_through_a_posting_date():
    obligation = Obligation.over(3000, at(2026, 11, 1), at(2026, 12, 1))
    # GIVEN a 30-day period; THEN before it nothing, on day one a day, after it everything
    assert obligation.earned_through(date(2026, 10, 31)) == 0
    assert obligation.earned_through(date(2026, 11, 1)) == 100
    assert obligation.earned_through(date(2026, 11, 15)) == 1500
    assert obligation.earned_through(date(2026, 12, 1)) == 3000


def test_a_point_in_time_obligation_is_earned_on_its_day():
    obligation = Obligation.over(25000, at(2026, 11, 1, 9), at(2026, 11, 1, 9))
    assert obligation.earned_through(date(2026, 10, 31)) == 0
    assert obligation.earned_through(date(2026, 11, 1)) == 25000


@given(
    amount=st.integers(min_value=-(10**9), max_value=10**9),
    start=st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)),
    length=st.integers(min_value=0, max_value=800),
)
def test_any_schedule_sums_exactly_and_days_differ_by_at_most_one_unit(amount, start, length):
    obligation = Obligation.over(amount, start, start + timedelta(days=length, hours=3))
    daily = obligation.daily()
    assert sum(daily) == amount
    assert max(daily) - min(daily) <= 1
    assert sum(obligation.by_month().values()) == amount
    assert all((a >= 0) == (amount >= 0) or a == 0 for a in daily)
