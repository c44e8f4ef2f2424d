"""Month-end revaluation of open foreign balances (domain.revaluation): what moves, what is reversed, and
what never posts twice or into a closed period."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from billing_sync.domain.bookkeeping import Bookkeeper
from billing_sync.domain.fx import MissingRateError, Rate
from billing_sync.domain.journal import DocumentKind, ErpDocument, JournalLine, entity_trial_balance
from billing_sync.domain.mapping import AccountMapping
from billing_sync.domain.revaluation import RevaluationService, period_end, revaluation_external_id
from tests.fakes.erp import InMemoryErpClient
from tests.fakes.periods import InMemoryPeriodCalendar

MAPPING = AccountMapping.model_validate_json(
    (Path(__file__).resolve().parents[2] / "functions/billing_sync/config/account_mapping.json").read_bytes()
)
AR = "1200 Accounts Receivable"
CLEARING = "1150 Payment Clearing"
CUSTOMER_CREDIT = "2200 Customer Credit Balances"
REVENUE = "4000 Subscription Revenue"
UNREALISED = "7110 Unrealised FX Gain/Loss"
CUSTOMER = "stripe-customer-cus_TZ3pBYNx4RkL2mQe"
INVOICE = "stripe-invoice-in_1QEurRevalue0001"
NOV_10, NOV_30, DEC_1, DEC_31 = date(2026, 11, 10), date(2026, 11, 30), date(2026, 12, 1), date(2026, 12, 31)


class _Rates:
    """The rate table as data (exact days only: a revaluation asks for the month end)."""

    def __init__(self, *rates: Rate) -> None:
        self._rates = {(r.base, r.quote, r.as_of): r for r in rates}

    def rate(self, base: str, quote: str, on: date) -> Rate | None:
        return self._rates.get((base, quote, on))

    def put_rates(self, rates: object) -> int:
        raise NotImplementedError


def ecb(value: str, on: date, base: str = "EUR", quote: str = "USD") -> Rate:
    return Rate(base=base, quote=quote, value=Decimal(value), source="ecb", as_of=on)


def invoice(amount: int, *, external_id: str = INVOICE, on: date = NOV_10, currency: str = "EUR") -> ErpDocument:
    return ErpDocument(
        external_id=external_id,
        kind=DocumentKind.INVOICE,
        legal_entity="US01",
        subsidiary="1",
        customer_external_id=CUSTOMER,
        currency=currency,
        posting_date=on,
        total=amount,
        journal=(
            JournalLine(account=AR, currency=currency, debit=amount),
            JournalLine(account=REVENUE, currency=currency, credit=amount),
        ),
        source_event_id="evt_1QEurRevalueInvoice",
    )


def payment(amount: int, *, on: date) -> ErpDocument:
    return ErpDocument(
        external_id="stripe-payment-inpay_1QEurRevalue0001",
        kind=DocumentKind.PAYMENT,
        legal_entity="US01",
        subsidiary="1",
        customer_external_id=CUSTOMER,
        currency="EUR",
        posting_date=on,
        total=amount,
        applies_to=(INVOICE,),
        journal=(
            JournalLine(account=CLEARING, currency="EUR", debit=amount),
            JournalLine(account=AR, currency="EUR", credit=amount),
        ),
        source_event_id="evt_1QEurRevaluePayment",
    )


class Books:
    """An ERP, a rate table and a calendar, with documents posted the way posting posts them (translated)."""

    def __init__(self, *rates: Rate) -> None:
        self.erp = InMemoryErpClient()
        self.periods = InMemoryPeriodCalendar()
        self.bookkeeper = Bookkeeper(mapping=MAPPING, erp=self.erp, rates=_Rates(*rates), periods=self.periods)
        self.service = RevaluationService(erp=self.erp, mapping=MAPPING, bookkeeper=self.bookkeeper)

    def post(self, document: ErpDocument) -> ErpDocument:
        finished = self.bookkeeper.finish(document)
        self.erp.create_document(finished)
        return finished

    def functional(self, account: str, as_of: date) -> int:
        balance = entity_trial_balance(self.erp.posted_documents(), basis="functional", as_of=as_of)
        return sum(row.debit - row.credit for row in balance.rows if row.account == account)


def test_the_period_ends_on_its_last_day() -> None:
    assert [period_end(p) for p in ("2026-11", "2026-12", "2028-02")] == [NOV_30, DEC_31, date(2028, 2, 29)]
    assert revaluation_external_id("US01", "2026-11") == "fx-revaluation-US01-2026-11"


def test_an_open_eur_receivable_is_revalued_at_the_month_end_rate_and_reversed_on_the_first() -> None:
    # GIVEN 1,000.00 EUR receivable booked on Nov 10 at 1.0850 (1,085.00 USD), still open at Nov 30 (1.1000)
    books = Books(ecb("1.0850", NOV_10), ecb("1.1000", NOV_30))
    books.post(invoice(1_000_00))

    # WHEN November is revalued for US01
    result = books.service.revalue("US01", "2026-11")

    # THEN one balance moved: 1,085.00 carried -> 1,100.00 at the month-end rate, a 15.00 USD gain
    [balance] = result.balances
    assert (balance.account, balance.currency, balance.balance) == (AR, "EUR", 1_000_00)
    assert (balance.carried, balance.revalued, balance.adjustment) == (1_085_00, 1_100_00, 15_00)
    # AND the revaluation is dated Nov 30: Dr AR 15.00 USD functional only / Cr unrealised FX 15.00
    document = books.erp.documents["fx-revaluation-US01-2026-11"]
    assert result.created and document.kind is DocumentKind.FX_REVALUATION
    assert document.posting_date == NOV_30
    assert [(j.account, j.debit, j.credit, j.functional_debit, j.functional_credit) for j in document.journal] == [
        (AR, 0, 0, 15_00, 0),
        (UNREALISED, 0, 0, 0, 15_00),
    ]
    assert {(j.functional_currency, j.rate, j.rate_source, j.rate_date) for j in document.journal} == {
        ("USD", Decimal("1.1000"), "ecb", NOV_30)
    }
    # AND its reversal is dated Dec 1 with the sides swapped
    reversal = books.erp.documents["fx-revaluation-US01-2026-11-reversal"]
    assert reversal.posting_date == DEC_1
    assert reversal.applies_to == (document.external_id,)
    assert [(j.account, j.functional_debit, j.functional_credit) for j in reversal.journal] == [
        (AR, 0, 15_00),
        (UNREALISED, 15_00, 0),
    ]


def test_the_reversal_brings_the_receivable_back_to_its_carried_amount() -> None:
    # GIVEN November revalued
    books = Books(ecb("1.0850", NOV_10), ecb("1.1000", NOV_30))
    books.post(invoice(1_000_00))
    books.service.revalue("US01", "2026-11")

    # THEN at Nov 30 the receivable stands at the month-end rate, and the gain is in unrealised FX
    assert books.functional(AR, NOV_30) == 1_100_00
    assert books.functional(UNREALISED, NOV_30) == -15_00
    # AND from Dec 1 the revaluation and its reversal net to zero
    assert books.functional(AR, DEC_1) == 1_085_00
    assert books.functional(UNREALISED, DEC_1) == 0


def test_running_the_revaluation_twice_posts_nothing_new() -> None:
    # GIVEN November revalued once
    books = Books(ecb("1.0850", NOV_10), ecb("1.1000", NOV_30))
    books.post(invoice(1_000_00))
    books.service.revalue("US01", "2026-11")
    before = dict(books.erp.documents)

    # WHEN it runs again
    again = books.service.revalue("US01", "2026-11")

    # THEN no document was added or changed, and the run says so
    assert books.erp.documents == before
    assert again.created is False
    assert again.document == before["fx-revaluation-US01-2026-11"]


def test_the_next_month_revalues_from_the_carried_amount_not_from_the_last_revaluation() -> None:
    # GIVEN November revalued at 1.1000 and reversed on Dec 1; the receivable is still open at Dec 31 (1.1200)
    books = Books(ecb("1.0850", NOV_10), ecb("1.1000", NOV_30), ecb("1.1200", DEC_31))
    books.post(invoice(1_000_00))
    books.service.revalue("US01", "2026-11")

    # WHEN December is revalued
    december = books.service.revalue("US01", "2026-12")

    # THEN the whole move since booking is December's revaluation: 1,120.00 - 1,085.00
    [balance] = december.balances
    assert (balance.carried, balance.adjustment) == (1_085_00, 35_00)
    assert books.erp.documents["fx-revaluation-US01-2026-12-reversal"].posting_date == date(2027, 1, 1)


def test_a_fully_paid_foreign_invoice_gives_no_revaluation_line_on_the_receivable() -> None:
    # GIVEN the invoice paid in full on Nov 20 at 1.0900: the receivable is relieved at its booked rate
    nov_20 = date(2026, 11, 20)
    books = Books(ecb("1.0850", NOV_10), ecb("1.0900", nov_20), ecb("1.1000", NOV_30))
    books.post(invoice(1_000_00))
    books.post(payment(1_000_00, on=nov_20))

    # WHEN November is revalued
    result = books.service.revalue("US01", "2026-11")

    # THEN the receivable has nothing to revalue; only the cash in clearing (1,090.00 -> 1,100.00) moved
    document = books.erp.documents["fx-revaluation-US01-2026-11"]
    assert AR not in {j.account for j in document.journal}
    assert [(b.account, b.carried, b.adjustment) for b in result.balances] == [(CLEARING, 1_090_00, 10_00)]


def test_nothing_open_in_a_foreign_currency_posts_nothing() -> None:
    # GIVEN only a USD invoice (the functional currency)
    books = Books()
    books.post(invoice(500_00, currency="USD"))

    # WHEN November is revalued
    result = books.service.revalue("US01", "2026-11")

    # THEN there is no balance to revalue and no document
    assert (result.balances, result.document, result.created) == ((), None, False)
    assert list(books.erp.documents) == [INVOICE]


def test_a_foreign_credit_balance_is_revalued_as_a_loss_when_the_currency_strengthens() -> None:
    # GIVEN a 200.00 EUR customer credit balance (a liability) booked at 1.0850
    books = Books(ecb("1.0850", NOV_10), ecb("1.1000", NOV_30))
    credit = invoice(200_00).model_copy(
        update={
            "external_id": "stripe-credit-memo-cn_1QEurRevalue0001",
            "kind": DocumentKind.JOURNAL,
            "journal": (
                JournalLine(account=REVENUE, currency="EUR", debit=200_00),
                JournalLine(account=CUSTOMER_CREDIT, currency="EUR", credit=200_00),
            ),
        }
    )
    books.post(credit)

    # WHEN November is revalued
    books.service.revalue("US01", "2026-11")

    # THEN the liability grows by 3.00 USD (217.00 -> 220.00): Cr customer credit / Dr unrealised FX
    document = books.erp.documents["fx-revaluation-US01-2026-11"]
    assert [(j.account, j.functional_debit, j.functional_credit) for j in document.journal] == [
        (CUSTOMER_CREDIT, 0, 3_00),
        (UNREALISED, 3_00, 0),
    ]


def test_a_missing_month_end_rate_names_the_pair_and_date_and_posts_nothing() -> None:
    # GIVEN an open EUR receivable but no EUR/USD rate for Nov 30
    books = Books(ecb("1.0850", NOV_10))
    books.post(invoice(1_000_00))

    # WHEN November is revalued
    with pytest.raises(MissingRateError, match="no EUR/USD rate on or before 2026-11-30"):
        books.service.revalue("US01", "2026-11")

    # THEN nothing was posted
    assert list(books.erp.documents) == [INVOICE]


def test_a_closed_month_end_moves_the_revaluation_to_the_first_open_day() -> None:
    # GIVEN November closed before the revaluation ran
    books = Books(ecb("1.0850", NOV_10), ecb("1.1000", NOV_30))
    books.post(invoice(1_000_00))
    books.periods.set_closed("US01", "2026-11", closed=True, at=datetime(2026, 12, 2, tzinfo=UTC), by="controller")

    # WHEN November is revalued
    books.service.revalue("US01", "2026-11")

    # THEN it posts on Dec 1 keeping its Nov 30 date, and nothing lands in November
    document = books.erp.documents["fx-revaluation-US01-2026-11"]
    assert (document.posting_date, document.document_date) == (DEC_1, NOV_30)
    assert books.erp.documents["fx-revaluation-US01-2026-11-reversal"].posting_date == DEC_1
    assert all(
        d.posting_date.month != 11 for d in books.erp.documents.values() if d.kind is DocumentKind.FX_REVALUATION
    )


def test_a_run_after_a_crash_between_the_two_documents_posts_the_missing_reversal() -> None:
    # GIVEN November's revaluation posted but its reversal lost (the run stopped between the two)
    books = Books(ecb("1.0850", NOV_10), ecb("1.1000", NOV_30))
    books.post(invoice(1_000_00))
    books.service.revalue("US01", "2026-11")
    lost = books.erp.documents.pop("fx-revaluation-US01-2026-11-reversal")

    # WHEN the revaluation runs again
    again = books.service.revalue("US01", "2026-11")

    # THEN the revaluation is left as it was and the reversal is posted as it would have been
    assert again.created is False
    assert books.erp.documents["fx-revaluation-US01-2026-11-reversal"] == lost
