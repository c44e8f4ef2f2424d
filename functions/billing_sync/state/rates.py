"""Daily exchange rates in the master-data table, and how a pair's rate is chosen from them.

Rates arrive as the ECB publishes them: euro reference rates (1 EUR = 1.0850 USD), one item per pair
and publication day, `pk = RATE#<BASE>#<QUOTE>#<YYYY-MM-DD>`. A lookup for `on` takes the latest
publication day from `on` back `LOOK_BACK_DAYS` days, because the ECB publishes nothing on weekends
and TARGET holidays (Good Friday to Easter Monday is the longest gap: four days). A rate older than
that is missing, never guessed: the event waits for it (MissingRateError) until an operator loads it.

For the pair asked, the stored rates give, by preference on the same day: the direct rate; the inverse
of the opposite pair; a cross through the euro (EUR/quote divided by EUR/base, both published that day).
Inverses and crosses are computed with 28 significant digits and quantised half-even to
`DERIVED_RATE_PLACES` decimal places: the error stays below 5e-13 per unit, far under half a minor
unit for any invoice amount (it would take a trillion major units to move a KWD fils).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from billing_sync.aws.errors import store_error
from billing_sync.domain.fx import Rate

PIVOT = "EUR"
LOOK_BACK_DAYS = 4
DERIVED_RATE_PLACES = 12
CROSS_SUFFIX = "-cross"
_CONTEXT = Context(prec=28)
_QUANTUM = Decimal(1).scaleb(-DERIVED_RATE_PLACES)
_RATES = "rate table"
_BATCH_WRITE_LIMIT = 25

PairDay = tuple[str, str, date]


def rate_pk(base: str, quote: str, on: date) -> str:
    return f"RATE#{base}#{quote}#{on.isoformat()}"


def candidate_days(on: date) -> list[date]:
    """The publication days a lookup for `on` may use, newest first."""
    return [on - timedelta(days=back) for back in range(LOOK_BACK_DAYS + 1)]


def wanted(base: str, quote: str, on: date) -> list[PairDay]:
    """Every stored pair and day that could answer (base, quote, on): direct, inverse and both euro legs."""
    pairs = [(base, quote), (quote, base), (PIVOT, base), (PIVOT, quote)]
    unique = [pair for i, pair in enumerate(pairs) if pair[0] != pair[1] and pair not in pairs[:i]]
    return [(b, q, day) for day in candidate_days(on) for b, q in unique]


def choose_rate(base: str, quote: str, on: date, stored: Callable[[str, str, date], Rate | None]) -> Rate | None:
    """The rate of (base, quote) on `on` from what `stored` holds (see the module docstring); None if none."""
    if base == quote:
        return Rate.identity(base, on)
    for day in candidate_days(on):
        if (direct := stored(base, quote, day)) is not None:
            return direct
        if (opposite := stored(quote, base, day)) is not None:
            return Rate(base, quote, _derived(Decimal(1) / opposite.value), opposite.source, day)
        to_base = Rate.identity(PIVOT, day) if base == PIVOT else stored(PIVOT, base, day)
        to_quote = Rate.identity(PIVOT, day) if quote == PIVOT else stored(PIVOT, quote, day)
        if to_base is not None and to_quote is not None:
            source = next(r.source for r in (to_base, to_quote) if r.base != r.quote)
            return Rate(base, quote, _derived(to_quote.value / to_base.value), f"{source}{CROSS_SUFFIX}", day)
    return None


def _derived(value: Decimal) -> Decimal:
    return _CONTEXT.plus(value).quantize(_QUANTUM, rounding=ROUND_HALF_EVEN, context=_CONTEXT)


class DynamoRateTable:
    """RateTable over the master-data table (string `pk` only). Raises what `store_error` classifies."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def rate(self, base: str, quote: str, on: date) -> Rate | None:
        if base == quote:
            return Rate.identity(base, on)
        found = self._batch_get(wanted(base, quote, on))
        return choose_rate(base, quote, on, lambda b, q, day: found.get((b, q, day)))

    def put_rates(self, rates: Iterable[Rate]) -> int:
        items = {
            rate_pk(rate.base, rate.quote, rate.as_of): {
                "pk": {"S": rate_pk(rate.base, rate.quote, rate.as_of)},
                "kind": {"S": "rate"},
                "value": {"S": str(rate.value)},
                "source": {"S": rate.source},
            }
            for rate in rates
        }  # one item per key: a batch may not name a key twice, and the last rate given wins
        puts = [{"PutRequest": {"Item": item}} for item in items.values()]
        try:
            for start in range(0, len(puts), _BATCH_WRITE_LIMIT):
                request: dict[str, Any] = {self._table: puts[start : start + _BATCH_WRITE_LIMIT]}
                while request:
                    request = self._client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
        except (BotoCoreError, ClientError) as exc:
            raise store_error(exc, _RATES, "store rates") from exc
        return len(items)

    def _batch_get(self, keys: list[PairDay]) -> Mapping[PairDay, Rate]:
        """One BatchGetItem (at most 20 keys of the 100 allowed), plus retries of unprocessed keys."""
        by_pk = {rate_pk(*key): key for key in keys}
        request: dict[str, Any] = {self._table: {"Keys": [{"pk": {"S": pk}} for pk in by_pk], "ConsistentRead": True}}
        found: dict[PairDay, Rate] = {}
        try:
            while request:
                response = self._client.batch_get_item(RequestItems=request)
                for item in response.get("Responses", {}).get(self._table, []):
                    base, quote, day = by_pk[item["pk"]["S"]]
                    found[(base, quote, day)] = Rate(base, quote, Decimal(item["value"]["S"]), item["source"]["S"], day)
                request = response.get("UnprocessedKeys") or {}
        except (BotoCoreError, ClientError) as exc:
            raise store_error(exc, _RATES, f"read rates {keys[0][0]}/{keys[0][1]}") from exc
        return found
