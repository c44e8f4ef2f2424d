"""Daily revenue allocation ("by day", as Stripe's revenue recognition computes it).

An obligation of signed amount `A` over the service period `[S, E)` spans `N = (date(E) - date(S)).days`
days (the partial first day counts, the partial last day is cut off). Through day `k` it has earned
`R(k) = sign(A) * floor(|A| * k / N)`, in integer minor units, so any schedule sums to `A` exactly and
is identical whenever it is recomputed. `N <= 0` (or a point in time) earns all of `A` on `date(S)`.
Posting uses `earned_through` for the share already earned; the release job continues from the same
numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta


def utc_date(moment: datetime) -> date:
    """The calendar day of `moment` in UTC, whatever offset it carries: books and schedules use UTC days."""
    offset = moment.utcoffset() or timedelta(0)
    return (moment - offset).date()


@dataclass(frozen=True)
class Obligation:
    amount: int
    start: date
    end: date

    @classmethod
    def over(cls, amount: int, period_start: datetime, period_end: datetime) -> Obligation:
        return cls(amount=amount, start=utc_date(period_start), end=utc_date(period_end))

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def cumulative(self, days_elapsed: int) -> int:
        """R(k): what the first `days_elapsed` days of service have earned."""
        if self.days <= 0:
            return self.amount if days_elapsed > 0 else 0
        k = min(max(days_elapsed, 0), self.days)
        magnitude = abs(self.amount) * k // self.days
        return magnitude if self.amount >= 0 else -magnitude

    def earned_through(self, day: date) -> int:
        """Earned by the end of `day` (UTC): 0 before the service starts, all of it once it has ended."""
        return self.cumulative((day - self.start).days + 1)

    def unearned_after(self, day: date) -> int:
        return self.amount - self.earned_through(day)

    def daily(self) -> list[int]:
        """The amount of each service day, in order."""
        days = max(self.days, 1)
        return [self.cumulative(k) - self.cumulative(k - 1) for k in range(1, days + 1)]

    def by_month(self) -> dict[tuple[int, int], int]:
        """The amount of each calendar month the service touches."""
        months: dict[tuple[int, int], int] = {}
        for offset, amount in enumerate(self.daily()):
            day = self.start + timedelta(days=offset)
            months[(day.year, day.month)] = months.get((day.year, day.month), 0) + amount
        return months
