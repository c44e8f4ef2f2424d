"""Money as integer minor units with an ISO 4217 currency and its real exponent; never a float."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt

# ISO 4217 minor-unit exponents.
_EXPONENT_0_CODES = """
BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF
"""
_EXPONENT_2_CODES = """
AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BRL BSD BTN BWP BYN BZD CAD
CDF CHF CNY COP CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GTQ GYD
HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD
MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON
RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD
TZS UAH USD UYU UZS VES WST XCD YER ZAR ZMW ZWL
"""
_EXPONENT_3_CODES = """
BHD IQD JOD KWD LYD OMR TND
"""

CURRENCY_EXPONENTS: dict[str, int] = {
    **dict.fromkeys(_EXPONENT_0_CODES.split(), 0),
    **dict.fromkeys(_EXPONENT_2_CODES.split(), 2),
    **dict.fromkeys(_EXPONENT_3_CODES.split(), 3),
}


class UnknownCurrencyError(ValueError):
    """Raised for a code that is not an ISO 4217 currency this product knows."""


def currency_exponent(code: str) -> int:
    """Return the ISO 4217 minor-unit exponent of `code`; raises UnknownCurrencyError."""
    try:
        return CURRENCY_EXPONENTS[code]
    except KeyError:
        raise UnknownCurrencyError(f"{code!r} is not a known ISO 4217 currency code") from None


def _normalise_currency(code: str) -> str:
    upper = code.upper()
    currency_exponent(upper)
    return upper


CurrencyCode = Annotated[str, Field(min_length=3, max_length=3), AfterValidator(_normalise_currency)]
"""An upper-case ISO 4217 code with a known exponent (input may be lower-case, as Stripe sends it)."""

MinorUnits = Annotated[StrictInt, Field(ge=0)]
"""A non-negative amount in the currency's minor units (cents, yen, fils)."""

SignedMinorUnits = StrictInt
"""An amount in minor units that may be negative (a proration credit, a credit-note balance)."""


class Money(BaseModel):
    """An exact amount: integer minor units of one currency."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    amount: StrictInt
    currency: CurrencyCode

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(amount=self.amount + other.amount, currency=self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(amount=self.amount - other.amount, currency=self.currency)

    def to_decimal(self) -> Decimal:
        """The amount in major units, exact (for display and ERP wire formats only)."""
        return Decimal(self.amount).scaleb(-currency_exponent(self.currency))

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot combine {self.currency} with {other.currency}")

    def __str__(self) -> str:
        return f"{self.to_decimal():.{currency_exponent(self.currency)}f} {self.currency}"
