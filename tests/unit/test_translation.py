"""Translation into the functional currency: rates across exponents, residual lines, and which rate each
document kind is translated at (domain.fx and domain.bookkeeping)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from billing_sync.domain.bookkeeping import Bookkeeper
from billing_sync.domain.fx import MissingRateError, Rate, translate
from billing_sync.domain.journal import (
    DocumentKind,
    ErpDocument,
    JournalLine,
    functional_imbalance,
    imbalances,
)
from billing_sync.domain.mapping import AccountMapping
from billing_sync.domain.ports import BalanceTransaction
from tests.fakes.erp import InMemoryErpClient

MAPPING = AccountMapping.model_validate_json(
    (Path(__file__).resolve().parents[2] / "functions/billing_sync/config/account_mapping.json").read_bytes()
)
AR = "1200 Accounts Receivable"
CLEARING = "1150 Payment Clearing"
REVENUE = "4000 Subscription Revenue"
TAX = "2300 Sales Tax Payable"
ROUNDING = "7190 FX Rounding"
REALISED = "7100 Realised FX Gain/Loss"
NOV_30 = date(2026, 11, 30)


class _Rates:
    """Rates as data; counts lookups so a domestic document can be shown to need none."""

    def __init__(self, *rates: Rate) -> None:
        self._rates = {(r.base, r.quote, r.as_of): r for r in rates}
        self.lookups = 0

    def rate(self, base: str, quote: str, on: date) -> Rate | None:
        self.lookups += 1
        return self._rates.get((base, quote, on))

    def put_rates(self, rates: object) -> int:
        raise NotImplementedError


def ecb(base: str, quote: str, value: str, on: date = NOV_30) -> Rate:
    return Rate(base=base, quote=quote, value=Decimal(value), source="ecb", as_of=on)


def line(account: str, currency: str, *, debit: int = 0, credit: int = 0) -> JournalLine:
    return JournalLine(account=account, currency=currency, debit=debit, credit=credit)


def document(
    external_id: str,
    kind: DocumentKind,
    currency: str,
    journal: list[JournalLine],
    *,
    applies_to: tuple[str, ...] = (),
    on: date = NOV_30,
) -> ErpDocument:
    return ErpDocument(
        external_id=external_id,
        kind=kind,
        legal_entity="US01",
        subsidiary="1",
        customer_external_id="stripe-customer-cus_TZ3pBYNx4RkL2mQe",
        currency=currency,
        posting_date=on,
        total=sum(item.debit for item in journal if item.account in (AR, CLEARING)),
        applies_to=applies_to,
        journal=tuple(journal),
        source_event_id="evt_translation",
    )


# ---- rates across exponents -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "minor_units", "expected"),
    [
        pytest.param(ecb("EUR", "USD", "1.0850"), 100_000, 108_500, id="EUR-USD"),
        pytest.param(ecb("EUR", "USD", "1.0850"), 3_333, 3_616, id="EUR-USD-half-up"),  # 36.16305 -> 36.16
        pytest.param(ecb("EUR", "USD", "1.05"), 10, 11, id="EUR-USD-exact-half-away"),  # 10.5 -> 11
        pytest.param(ecb("EUR", "USD", "1.05"), -10, -11, id="negative-half-away-from-zero"),
        pytest.param(ecb("JPY", "USD", "0.006653"), 12_000, 7_984, id="JPY-USD"),  # 79.836 USD
        pytest.param(ecb("USD", "JPY", "150.31"), 1_999, 3_005, id="USD-JPY"),  # 19.99 USD = 3004.69 JPY
        pytest.param(ecb("USD", "KWD", "0.30712"), 100_00, 30_712, id="USD-KWD"),  # 100.00 USD = 30.712 KWD
    ],
)
def test_a_rate_converts_minor_units_across_exponents(rate: Rate, minor_units: int, expected: int) -> None:
    assert rate.convert(minor_units) == expected


# ---- lines and journals ----------------------------------------------------------------------------


def test_a_line_with_functional_amounts_names_its_functional_currency() -> None:
    with pytest.raises(ValidationError, match="no functional currency"):
        JournalLine(account=AR, currency="EUR", debit=100, functional_debit=108)


def test_a_line_may_carry_only_a_functional_amount_but_not_nothing() -> None:
    only_functional = JournalLine(account=ROUNDING, currency="EUR", functional_currency="USD", functional_credit=1)
    assert only_functional.functional_net == -1
    with pytest.raises(ValidationError, match="carries no amount"):
        JournalLine(account=ROUNDING, currency="EUR", functional_currency="USD")


def test_a_journal_that_does_not_balance_in_functional_currency_is_refused() -> None:
    lines = [
        JournalLine(account=AR, currency="EUR", debit=100, functional_currency="USD", functional_debit=109),
        JournalLine(account=REVENUE, currency="EUR", credit=100, functional_currency="USD", functional_credit=108),
    ]
    with pytest.raises(ValidationError, match="does not balance in functional currency: 1"):
        document("stripe-invoice-in_unbalanced", DocumentKind.INVOICE, "EUR", lines)


def test_translation_puts_the_rounding_difference_on_the_residual_account() -> None:
    # GIVEN a EUR invoice of 100.01 (50.01 revenue, 50.00 tax) whose lines each round at 1.0855
    invoice = document(
        "stripe-invoice-in_1QEurRounding",
        DocumentKind.INVOICE,
        "EUR",
        [line(AR, "EUR", debit=100_01), line(REVENUE, "EUR", credit=50_01), line(TAX, "EUR", credit=50_00)],
    )
    # WHEN it is translated into USD
    translated = translate(
        invoice, functional_currency="USD", rate=ecb("EUR", "USD", "1.0855"), residual_account=ROUNDING
    )
    # THEN each line is its own rounded conversion: 108.56 | 54.29 (54.285855) | 54.28 (54.275, half-up)
    # and the 0.01 they leave over is a functional-only debit on the rounding account
    assert [(item.account, item.net, item.functional_net) for item in translated.journal] == [
        (AR, 100_01, 108_56),
        (REVENUE, -50_01, -54_29),
        (TAX, -50_00, -54_28),
        (ROUNDING, 0, 1),
    ]
    assert functional_imbalance(translated.journal) == 0 and imbalances(translated.journal) == {}
    assert {(item.functional_currency, item.rate, item.rate_source, item.rate_date) for item in translated.journal} == {
        ("USD", Decimal("1.0855"), "ecb", NOV_30)
    }


def test_a_translated_document_is_not_translated_again() -> None:
    invoice = document(
        "stripe-invoice-in_1QEurTwice",
        DocumentKind.INVOICE,
        "EUR",
        [line(AR, "EUR", debit=10), line(REVENUE, "EUR", credit=10)],
    )
    once = translate(invoice, functional_currency="USD", rate=ecb("EUR", "USD", "1.0855"), residual_account=ROUNDING)
    again = translate(once, functional_currency="USD", rate=ecb("EUR", "USD", "2"), residual_account=ROUNDING)
    assert again == once


# ---- which rate each document is translated at -------------------------------------------------------


def test_a_document_in_the_functional_currency_is_translated_at_identity_without_reads() -> None:
    # GIVEN a USD invoice in the USD entity, and a rate table and ERP that count what they are asked
    erp = InMemoryErpClient()
    rates = _Rates()
    invoice = document(
        "stripe-invoice-in_1QUsd",
        DocumentKind.INVOICE,
        "USD",
        [line(AR, "USD", debit=2500), line(REVENUE, "USD", credit=2500)],
    )
    # WHEN it is finished for posting
    finished = Bookkeeper(mapping=MAPPING, erp=erp, rates=rates).finish(invoice)
    # THEN every line carries its own amount in functional currency at rate 1, and nothing was read
    assert [(item.functional_net, item.rate, item.rate_source) for item in finished.journal] == [
        (2500, Decimal(1), "identity"),
        (-2500, Decimal(1), "identity"),
    ]
    assert rates.lookups == 0


def test_a_foreign_invoice_without_a_rate_waits_for_it_by_name() -> None:
    invoice = document(
        "stripe-invoice-in_1QEurNoRate",
        DocumentKind.INVOICE,
        "EUR",
        [line(AR, "EUR", debit=100), line(REVENUE, "EUR", credit=100)],
    )
    with pytest.raises(MissingRateError) as raised:
        Bookkeeper(mapping=MAPPING, erp=InMemoryErpClient(), rates=_Rates()).finish(invoice)
    assert raised.value.key == "rate:EUR:USD:2026-11-30"


def test_a_payment_converted_by_stripe_books_realised_fx_against_the_receivable_carried_at_the_invoice_rate() -> None:
    # GIVEN a 1,000.00 EUR invoice booked at 1.0850 (1,085.00 USD receivable)
    erp = InMemoryErpClient()
    keeper = Bookkeeper(mapping=MAPPING, erp=erp, rates=_Rates(ecb("EUR", "USD", "1.0850")))
    invoice = document(
        "stripe-invoice-in_1QEurFx",
        DocumentKind.INVOICE,
        "EUR",
        [line(AR, "EUR", debit=1000_00), line(REVENUE, "EUR", credit=1000_00)],
    )
    erp.create_document(keeper.finish(invoice))
    # WHEN its payment settles through Stripe, converted at 1.1000 into 1,100.00 USD
    payment = document(
        "stripe-payment-inpay_1QEurFx",
        DocumentKind.PAYMENT,
        "EUR",
        [line(CLEARING, "EUR", debit=1000_00), line(AR, "EUR", credit=1000_00)],
        applies_to=(invoice.external_id,),
        on=date(2026, 12, 3),
    )
    settlement = BalanceTransaction(
        id="txn_1QEurFxSettle",
        type="charge",
        amount=1100_00,
        fee=32_20,
        net=1067_80,
        currency="USD",
        created=datetime(2026, 12, 3, 9, 30, tzinfo=UTC),
        source="ch_3QEurFx",
        exchange_rate=Decimal("1.1"),
    )
    finished = keeper.finish(payment, settlement=settlement)
    # THEN clearing is the cash Stripe converted, receivable leaves at 1,085.00 and 15.00 is a realised gain
    assert [(item.account, item.functional_net, item.rate_source) for item in finished.journal] == [
        (CLEARING, 1100_00, "stripe:txn_1QEurFxSettle"),
        (AR, -1085_00, "carried:stripe-invoice-in_1QEurFx"),
        (REALISED, -15_00, "stripe:txn_1QEurFxSettle"),
    ]
    # AND the receivable nets to zero in both currencies
    erp.create_document(finished)
    receivable = [item for d in erp.documents.values() for item in d.journal if item.account == AR]
    assert sum(item.net for item in receivable) == 0 and sum(item.functional_net for item in receivable) == 0


def test_a_void_of_a_foreign_invoice_reverses_it_at_the_invoice_rate() -> None:
    # GIVEN a EUR invoice booked at 1.0855 with a rounding line, and December's rate is another
    erp = InMemoryErpClient()
    rates = _Rates(ecb("EUR", "USD", "1.0855"), ecb("EUR", "USD", "1.2000", date(2026, 12, 2)))
    keeper = Bookkeeper(mapping=MAPPING, erp=erp, rates=rates)
    invoice = keeper.finish(
        document(
            "stripe-invoice-in_1QEurVoid",
            DocumentKind.INVOICE,
            "EUR",
            [line(AR, "EUR", debit=100_01), line(REVENUE, "EUR", credit=50_01), line(TAX, "EUR", credit=50_00)],
        )
    )
    erp.create_document(invoice)
    # WHEN it is voided in December (the void swaps every line of the invoice as posted)
    void = document(
        "stripe-invoice-in_1QEurVoid-void",
        DocumentKind.INVOICE_VOID,
        "EUR",
        [item.reversed() for item in invoice.journal],
        applies_to=(invoice.external_id,),
        on=date(2026, 12, 2),
    )
    erp.create_document(keeper.finish(void))
    # THEN every account is back to zero in both currencies, December's rate unused
    by_account: dict[str, tuple[int, int]] = {}
    for d in erp.documents.values():
        for item in d.journal:
            net, functional = by_account.get(item.account, (0, 0))
            by_account[item.account] = (net + item.net, functional + item.functional_net)
    assert set(by_account.values()) == {(0, 0)}


def test_a_credit_memo_is_translated_at_the_rate_of_the_invoice_it_credits() -> None:
    erp = InMemoryErpClient()
    rates = _Rates(ecb("EUR", "USD", "1.0850"), ecb("EUR", "USD", "1.2000", date(2026, 12, 10)))
    keeper = Bookkeeper(mapping=MAPPING, erp=erp, rates=rates)
    invoice = document(
        "stripe-invoice-in_1QEurCredit",
        DocumentKind.INVOICE,
        "EUR",
        [line(AR, "EUR", debit=200_00), line(REVENUE, "EUR", credit=200_00)],
    )
    erp.create_document(keeper.finish(invoice))
    memo = document(
        "stripe-credit-note-cn_1QEurCredit",
        DocumentKind.CREDIT_MEMO,
        "EUR",
        [line(REVENUE, "EUR", debit=50_00), line(AR, "EUR", credit=50_00)],
        applies_to=(invoice.external_id,),
        on=date(2026, 12, 10),
    )
    finished = keeper.finish(memo)
    assert [(item.functional_net, item.rate, item.rate_source) for item in finished.journal] == [
        (54_25, Decimal("1.0850"), "carried:stripe-invoice-in_1QEurCredit"),
        (-54_25, Decimal("1.0850"), "carried:stripe-invoice-in_1QEurCredit"),
    ]
