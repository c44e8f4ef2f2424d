"""An in-memory RateTable choosing rates exactly as the DynamoDB one does (state.rates.choose_rate)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from functools import cache
from pathlib import Path

from billing_sync.domain.fx import Rate
from billing_sync.state.rates import choose_rate
from billing_sync_ops.ops.rates import parse_ecb_csv

SAMPLE_RATES_FILE = Path(__file__).resolve().parents[2] / "events" / "rates" / "ecb_2026-11.csv"


class InMemoryRateTable:
    def __init__(self, rates: Iterable[Rate] = ()) -> None:
        self.stored: dict[tuple[str, str, date], Rate] = {}
        self.lookups: list[tuple[str, str, date]] = []
        self.put_rates(rates)

    def rate(self, base: str, quote: str, on: date) -> Rate | None:
        self.lookups.append((base, quote, on))
        return choose_rate(base, quote, on, lambda b, q, day: self.stored.get((b, q, day)))

    def put_rates(self, rates: Iterable[Rate]) -> int:
        count = 0
        for rate in rates:
            self.stored[(rate.base, rate.quote, rate.as_of)] = rate
            count += 1
        return count


@cache
def sample_rates() -> tuple[Rate, ...]:
    """The ECB-format rates shipped for the demo and the samples (events/rates/ecb_2026-11.csv)."""
    return tuple(parse_ecb_csv(SAMPLE_RATES_FILE.read_text(), name=SAMPLE_RATES_FILE.name))


def sample_rate_table() -> InMemoryRateTable:
    return InMemoryRateTable(sample_rates())
