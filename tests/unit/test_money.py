"""Promise 3: money is integer minor units of an ISO 4217 currency with its real exponent; never floats."""

from __future__ import annotations

from decimal import Decimal

import pydantic
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from billing_sync.domain.money import CURRENCY_EXPONENTS, Money, UnknownCurrencyError, currency_exponent

currencies = st.sampled_from(sorted(CURRENCY_EXPONENTS))
amounts = st.integers(min_value=-(10**15), max_value=10**15)


@st.composite
def same_currency_money(draw: st.DrawFn, count: int = 3) -> list[Money]:
    currency = draw(currencies)
    return [Money(amount=draw(amounts), currency=currency) for _ in range(count)]


@pytest.mark.parametrize(("code", "exponent"), [("JPY", 0), ("USD", 2), ("KWD", 3), ("EUR", 2), ("BHD", 3)])
def test_currency_exponent_is_the_iso_4217_minor_unit(code, exponent):
    # WHEN / THEN
    assert currency_exponent(code) == exponent


@pytest.mark.parametrize(
    ("money", "text", "major"),
    [
        (Money(amount=2673, currency="JPY"), "2673 JPY", Decimal("2673")),
        (Money(amount=41623, currency="USD"), "416.23 USD", Decimal("416.23")),
        (Money(amount=12500, currency="KWD"), "12.500 KWD", Decimal("12.500")),
    ],
)
def test_minor_units_are_scaled_by_the_real_exponent(money, text, major):
    # WHEN / THEN
    assert money.to_decimal() == major
    assert str(money) == text


@pytest.mark.parametrize("code", ["ZZZ", "XXX", "US$"])
def test_an_unknown_currency_code_is_refused(code):
    # WHEN / THEN
    with pytest.raises(UnknownCurrencyError, match=code.replace("$", r"\$")):
        currency_exponent(code)
    with pytest.raises(pydantic.ValidationError, match="not a known ISO 4217 currency code"):
        Money(amount=100, currency=code)


@pytest.mark.parametrize("code", ["usd", "Usd", "jpy", "kwd"])
def test_a_lower_case_code_is_accepted_and_upper_cased(code):
    # WHEN
    money = Money(amount=100, currency=code)

    # THEN
    assert money.currency == code.upper()


@pytest.mark.parametrize("amount", [1.5, 10.0, 0.0, "100", Decimal("10")])
def test_a_non_integer_amount_is_refused(amount):
    # WHEN / THEN StrictInt refuses floats, even integral ones, and numeric strings
    with pytest.raises(pydantic.ValidationError, match="amount"):
        Money(amount=amount, currency="USD")


def test_money_is_immutable_and_forbids_extra_fields():
    # GIVEN
    money = Money(amount=100, currency="USD")

    # WHEN / THEN
    with pytest.raises(pydantic.ValidationError):
        money.amount = 200  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError, match="extra"):
        Money(amount=100, currency="USD", exponent=2)


@given(same_currency_money())
def test_addition_is_associative_and_exact(values):
    # GIVEN three amounts in one currency
    a, b, c = values

    # WHEN / THEN
    assert (a + b) + c == a + (b + c)
    assert (a + b + c).amount == a.amount + b.amount + c.amount
    assert (a + b).currency == a.currency


@given(same_currency_money())
def test_subtraction_undoes_addition(values):
    # GIVEN
    a, b, c = values

    # WHEN / THEN
    assert (a + b) - b == a
    assert (a - b) - c == a - (b + c)


@given(currencies, currencies, amounts, amounts)
def test_combining_different_currencies_raises(first, second, x, y):
    # GIVEN two amounts in different currencies
    assume(first != second)
    a, b = Money(amount=x, currency=first), Money(amount=y, currency=second)

    # WHEN / THEN
    with pytest.raises(ValueError, match=f"cannot combine {first} with {second}"):
        a + b
    with pytest.raises(ValueError, match=f"cannot combine {first} with {second}"):
        a - b


@given(currencies, amounts)
def test_to_decimal_is_exact(currency, amount):
    # GIVEN
    money = Money(amount=amount, currency=currency)
    exponent = currency_exponent(currency)

    # WHEN
    major = money.to_decimal()

    # THEN scaling back gives the minor units exactly, with the currency's number of places
    assert major.scaleb(exponent) == amount
    assert major * (10**exponent) == Decimal(amount)
    assert -major.as_tuple().exponent == exponent
