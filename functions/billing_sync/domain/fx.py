"""Functional currency (ASC 830): rates, and journals translated line by line into the entity's currency.

A rate is functional major units per transaction major unit (1 EUR = 1.0850 USD). Translation rounds
half-up to the functional currency's minor unit; what one rate leaves over (a rounding difference) or
what two rates leave over (a foreign balance settled at another rate than it was booked at) goes to one
line that carries only a functional amount on the `residual_account`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from billing_sync.domain.errors import DependencyPendingError
from billing_sync.domain.journal import ErpDocument, JournalLine, functional_imbalance
from billing_sync.domain.money import currency_exponent

IDENTITY_SOURCE = "identity"


@dataclass(frozen=True)
class Rate:
    """`value` functional (`quote`) major units per one transaction (`base`) major unit."""

    base: str
    quote: str
    value: Decimal
    source: str
    as_of: date

    @classmethod
    def identity(cls, currency: str, on: date) -> Rate:
        return cls(base=currency, quote=currency, value=Decimal(1), source=IDENTITY_SOURCE, as_of=on)

    def convert(self, minor_units: int) -> int:
        """`minor_units` of `base` in minor units of `quote`, rounded half-up (away from zero)."""
        shift = currency_exponent(self.quote) - currency_exponent(self.base)
        exact = Decimal(minor_units) * self.value * Decimal(10) ** shift
        return int(exact.to_integral_value(rounding=ROUND_HALF_UP))


def rate_key(base: str, quote: str, on: date) -> str:
    """The waiting-room key of a rate the rate table does not hold yet."""
    return f"rate:{base}:{quote}:{on.isoformat()}"


class MissingRateError(DependencyPendingError):
    """No rate for a currency pair on a date: the event waits for it, never a guess."""

    def __init__(self, base: str, quote: str, on: date) -> None:
        super().__init__(f"no {base}/{quote} rate on or before {on.isoformat()}", key=rate_key(base, quote, on))


def translate(
    document: ErpDocument,
    *,
    functional_currency: str,
    rate: Rate,
    residual_account: str,
    carried: Mapping[str, Rate] | None = None,
    exact: Mapping[str, int] | None = None,
) -> ErpDocument:
    """`document` with every journal line in `functional_currency` as well.

    Lines on an account in `carried` use that rate (a receivable relieved at the rate it was booked at);
    `exact` gives the functional amount of an account's lines outright (cash Stripe converted, from its
    balance transaction; the document must then have one line on that account). The residual goes to
    `residual_account`. An already translated document is returned unchanged.
    """
    if document.functional_currency is not None:
        return document
    if rate.base != document.currency or rate.quote != functional_currency:
        raise ValueError(
            f"rate {rate.base}/{rate.quote} cannot translate {document.external_id} from {document.currency} "
            f"into {functional_currency}"
        )
    carried = carried or {}
    exact = exact or {}
    lines = [
        _translated(line, carried.get(line.account, rate), exact.get(line.account), functional_currency)
        for line in document.journal
    ]
    residual = functional_imbalance(lines)
    if residual:
        lines.append(
            JournalLine(
                account=residual_account,
                currency=document.currency,
                functional_currency=functional_currency,
                functional_debit=max(-residual, 0),
                functional_credit=max(residual, 0),
                rate=rate.value,
                rate_source=rate.source,
                rate_date=rate.as_of,
                memo=f"{document.external_id} translation residual",
            )
        )
    return document.model_copy(update={"journal": tuple(lines)})


def _translated(line: JournalLine, rate: Rate, exact: int | None, functional_currency: str) -> JournalLine:
    net = rate.convert(line.net) if exact is None else (exact if line.net > 0 else -exact)
    return line.model_copy(
        update={
            "functional_currency": functional_currency,
            "functional_debit": max(net, 0),
            "functional_credit": max(-net, 0),
            "rate": rate.value,
            "rate_source": rate.source,
            "rate_date": rate.as_of,
        }
    )


def carried_rate(document: ErpDocument, account: str) -> Rate | None:
    """The rate `document` booked `account` at (what a later settlement or reversal relieves it at)."""
    for line in document.journal:
        if (
            line.account == account
            and line.rate is not None
            and line.rate_date is not None
            and line.functional_currency
        ):
            return Rate(
                base=line.currency,
                quote=line.functional_currency,
                value=line.rate,
                source=f"carried:{document.external_id}",
                as_of=line.rate_date,
            )
    return None
