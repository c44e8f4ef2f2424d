"""Foreign-currency documents in US01's books (functional currency USD): translated at the table's rate,
settled at Stripe's rate with realised FX, derived documents at the invoice's rate, and waiting for a rate
the table lacks until it is loaded."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from billing_sync.domain.errors import ExceptionCategory
from billing_sync.domain.fx import Rate
from billing_sync.domain.journal import DocumentKind, ErpDocument, JournalLine
from billing_sync.domain.lineage import LineageStatus
from billing_sync.domain.ports import BalanceTransaction
from billing_sync.domain.posting import PostingStatus
from billing_sync.domain.refunds import RefundSaga
from billing_sync_ops.samples import invoice_payment_event
from tests.builders import LineSpec, invoice_event, load_event, with_event_id
from tests.fakes.rates import InMemoryRateTable
from tests.functional.posting_harness import WaitingHarness, canonical, mapping

RECEIVABLE = "1200 Accounts Receivable"
PAYMENT_CLEARING = "1150 Payment Clearing"
REALISED_FX = "7100 Realised FX Gain/Loss"
REFUNDS_PAYABLE = "2250 Refunds Payable"
INVOICE_DAY = date(2026, 11, 1)  # a Sunday: the invoice sample's effective date
FRIDAY = date(2026, 10, 30)  # the ECB publication a Sunday document is translated at
CHARGE = "ch_3QfxEurNx4RkL2mQe0Pq7Ls1"


def ecb(day: date, usd: str) -> Rate:
    return Rate("EUR", "USD", Decimal(usd), "ecb", day)


def eur_invoice(lines: Iterable[LineSpec], invoice_id: str) -> dict[str, Any]:
    """The Acme invoice sample re-issued in EUR with these lines (US01 books in USD)."""
    return invoice_event(currency="eur", lines=list(lines), invoice_id=invoice_id, event_id=f"evt_{invoice_id}")


def paid_by_charge(invoice: dict[str, Any], charge_id: str) -> dict[str, Any]:
    """Its `invoice_payment.paid`, paid in full by a card charge (what links Stripe's balance transaction)."""
    payment = invoice_payment_event(invoice)
    payment["data"]["object"]["payment"] = {"type": "charge", "charge": charge_id}
    return payment


@dataclass
class StripeBalance:
    """The SourceReader seam: the balance transactions Stripe's API answers for charges."""

    by_charge: dict[str, BalanceTransaction]

    def balance_transaction(self, balance_transaction_id: str) -> BalanceTransaction | None:
        return next((t for t in self.by_charge.values() if t.id == balance_transaction_id), None)

    def charge_balance_transaction(self, charge_id: str) -> BalanceTransaction | None:
        return self.by_charge.get(charge_id)

    def payout_balance_transactions(self, payout_id: str) -> list[BalanceTransaction] | None:
        return None

    def invoice_lines(self, invoice_id: str) -> list[dict[str, Any]] | None:
        return None


def functional_balance(document: ErpDocument) -> int:
    return sum(line.functional_debit - line.functional_credit for line in document.journal)


def transaction_balance(document: ErpDocument) -> int:
    return sum(line.debit - line.credit for line in document.journal)


def functional_net(lines: Iterable[JournalLine], account: str) -> int:
    return sum(line.functional_debit - line.functional_credit for line in lines if line.account == account)


@pytest.fixture
def harness() -> WaitingHarness:
    # GIVEN US01's rate table holds the ECB's Friday EUR/USD rate, and the Acme customer is synchronised
    harness = WaitingHarness(rates=InMemoryRateTable([ecb(FRIDAY, "1.0850")]))
    assert harness.post("stripe_customer_created")[0].status is PostingStatus.POSTED
    return harness


def test_a_eur_invoice_is_booked_in_usd_at_the_table_rate_with_its_rounding(harness: WaitingHarness) -> None:
    # GIVEN a 1,000.00 EUR invoice of three lines that each round at 1.0850 (36,166.305 -> 36,166 cents)
    invoice = eur_invoice([(33333, 0, 0), (33333, 0, 0), (33334, 0, 0)], "in_1QfxRndNx4RkL2mQe7Tq2Wc9")
    # WHEN it posts on Sunday 1 November
    result = harness.post(invoice)[0]
    # THEN it is booked, every line at Friday's ECB rate, the receivable at 1,085.00 USD
    assert result.status is PostingStatus.POSTED
    document = harness.erp.documents["stripe-invoice-in_1QfxRndNx4RkL2mQe7Tq2Wc9"]
    assert document.currency == "EUR" and document.functional_currency == "USD"
    translated = [line for line in document.journal if line.debit or line.credit]
    assert {(line.rate, line.rate_source, line.rate_date) for line in translated} == {
        (Decimal("1.0850"), "ecb", FRIDAY)
    }
    assert functional_net(document.journal, RECEIVABLE) == 108500
    for line in translated:
        exact = (Decimal(line.debit - line.credit) * Decimal("1.0850")).quantize(Decimal(1), "ROUND_HALF_UP")
        assert line.functional_debit - line.functional_credit == int(exact)
    # AND the cent the rounding of the revenue lines leaves over is one USD-only line on the rounding account
    rounding = [line for line in document.journal if not (line.debit or line.credit)]
    assert [(line.account, line.functional_debit, line.functional_credit) for line in rounding] == [
        ("7190 FX Rounding", 0, 1)
    ]
    assert transaction_balance(document) == 0 and functional_balance(document) == 0


def test_a_eur_payment_at_stripes_rate_books_realised_fx_to_the_cent(harness: WaitingHarness) -> None:
    # GIVEN a 1,000.00 EUR invoice booked at 1.0850: a receivable of 1,085.00 USD
    invoice = eur_invoice([(100000, 0, 0)], "in_1QfxPayNx4RkL2mQe3Rv8Hd2")
    assert harness.post(invoice)[0].status is PostingStatus.POSTED
    # AND Stripe converted the charge that paid it at 1.1000: 1,100.00 USD landed in the balance
    harness.reader = StripeBalance(
        {
            CHARGE: BalanceTransaction(
                id="txn_3QfxEurNx4RkL2mQe1Xk0Bv4",
                type="charge",
                amount=110000,
                fee=3220,
                net=106780,
                currency="USD",
                created=datetime(2026, 11, 1, 1, 0, 2, tzinfo=UTC),
                source=CHARGE,
                exchange_rate=Decimal("1.1000"),
            )
        }
    )
    # WHEN the payment of 1,000.00 EUR posts
    result = harness.post(paid_by_charge(invoice, CHARGE))[0]
    # THEN clearing takes the 1,100.00 USD Stripe holds, the receivable leaves at its 1,085.00, and the
    # 15.00 difference is a realised FX gain
    assert result.status is PostingStatus.POSTED
    payment = harness.erp.documents[_payment_id(harness)]
    assert [
        (line.account, line.debit, line.credit, line.functional_debit, line.functional_credit)
        for line in payment.journal
    ] == [
        (PAYMENT_CLEARING, 100000, 0, 110000, 0),
        (RECEIVABLE, 0, 100000, 0, 108500),
        (REALISED_FX, 0, 0, 0, 1500),
    ]
    clearing, receivable, _ = payment.journal
    assert (clearing.rate, clearing.rate_source) == (Decimal("1.1000"), "stripe:txn_3QfxEurNx4RkL2mQe1Xk0Bv4")
    assert (receivable.rate, receivable.rate_date) == (Decimal("1.0850"), FRIDAY)
    # AND the journal balances in EUR and in USD, and the receivable is closed in both
    assert transaction_balance(payment) == 0 and functional_balance(payment) == 0
    booked = [line for document in harness.erp.documents.values() for line in document.journal]
    assert functional_net(booked, RECEIVABLE) == 0
    assert sum(line.debit - line.credit for line in booked if line.account == RECEIVABLE) == 0


def test_without_the_stripe_api_a_eur_payment_uses_the_table_rate_of_its_day(harness: WaitingHarness) -> None:
    # GIVEN the 1,000.00 EUR invoice booked at Friday's 1.0850, and Monday's rate of 1.0720 in the table
    invoice = eur_invoice([(100000, 0, 0)], "in_1QfxTblNx4RkL2mQe5Kp4Ya7")
    assert harness.post(invoice)[0].status is PostingStatus.POSTED
    harness.rates.put_rates([ecb(date(2026, 11, 2), "1.0720")])
    payment = paid_by_charge(invoice, CHARGE)
    payment["data"]["object"]["status_transitions"]["paid_at"] += 86400  # paid Monday 2 November
    payment["data"]["object"]["created"] += 86400
    # WHEN it posts with no Stripe API to read the charge's balance transaction from
    result = harness.post(payment)[0]
    # THEN clearing is 1,072.00 USD at Monday's table rate and the 13.00 shortfall is a realised FX loss
    assert result.status is PostingStatus.POSTED
    document = harness.erp.documents[_payment_id(harness)]
    assert functional_net(document.journal, PAYMENT_CLEARING) == 107200
    assert functional_net(document.journal, RECEIVABLE) == -108500
    assert functional_net(document.journal, REALISED_FX) == 1300
    assert {line.rate_date for line in document.journal if line.account == PAYMENT_CLEARING} == {date(2026, 11, 2)}


def test_a_missing_rate_waits_by_name_and_posts_after_the_rate_is_loaded_and_the_sweep_runs() -> None:
    # GIVEN an empty rate table
    harness = WaitingHarness(rates=InMemoryRateTable())
    harness.post("stripe_customer_created")
    invoice = eur_invoice([(100000, 0, 0)], "in_1QfxWaitNx4RkL2mQe8Gh3Zb6")
    # WHEN the EUR invoice arrives
    waiting = harness.post(invoice)[0]
    # THEN it waits for the EUR/USD rate of its day, by name, and nothing is booked
    assert waiting.status is PostingStatus.WAITING
    assert waiting.category is ExceptionCategory.DEPENDENCY_PENDING
    assert waiting.waiting_for == f"rate:EUR:USD:{INVOICE_DAY.isoformat()}"
    record = harness.lineage.get(waiting.event_id)
    assert record is not None and record.status is LineageStatus.WAITING
    assert "stripe-invoice-in_1QfxWaitNx4RkL2mQe8Gh3Zb6" not in harness.erp.documents
    # WHEN the operator loads Friday's rates and the 15-minute sweep runs
    harness.rates.put_rates([ecb(FRIDAY, "1.0850")])
    harness.clock.advance(timedelta(minutes=15))
    swept = harness.service.sweep()
    # THEN the invoice posts at that rate and nothing waits any more
    assert [(r.event_id, r.status) for r in swept] == [(waiting.event_id, PostingStatus.POSTED)]
    document = harness.erp.documents["stripe-invoice-in_1QfxWaitNx4RkL2mQe8Gh3Zb6"]
    assert functional_net(document.journal, RECEIVABLE) == 108500
    assert harness.room.all_waiting() == []


def test_a_void_of_a_eur_invoice_reverses_it_at_the_invoice_rate_not_the_void_days() -> None:
    # GIVEN the EUR inclusive-tax sample invoice booked on 3 August at 1.0850, and 1.1200 on the void day
    harness = WaitingHarness(
        rates=InMemoryRateTable([ecb(date(2026, 8, 3), "1.0850"), ecb(date(2026, 8, 20), "1.1200")])
    )
    assert [r.status for r in harness.post("stripe_customer_created_eu", "stripe_invoice_finalized_inclusive_tax")] == [
        PostingStatus.POSTED
    ] * 2
    invoice = harness.erp.documents["stripe-invoice-in_1i38poNx4RkL2mQe5gvnMH7Q"]
    # WHEN it is voided on 20 August
    void = _voided("stripe_invoice_finalized_inclusive_tax", at=datetime(2026, 8, 20, 9, 0, tzinfo=UTC))
    result = harness.post(void)[0]
    # THEN the void is translated at the invoice's 1.0850, so the invoice nets to zero in USD as well as EUR
    assert result.status is PostingStatus.POSTED
    (reversal,) = (d for d in harness.erp.documents.values() if d.applies_to == (invoice.external_id,))
    assert {line.rate for line in reversal.journal} == {Decimal("1.0850")}
    both = [*invoice.journal, *reversal.journal]
    for account in {line.account for line in both}:
        assert functional_net(both, account) == 0, account
        assert sum(line.debit - line.credit for line in both if line.account == account) == 0, account


def test_a_credit_note_on_a_eur_invoice_is_translated_at_the_invoice_rate() -> None:
    # GIVEN the EUR inclusive-tax invoice booked at 1.0850, and 1.1200 on the day of the credit note
    harness = WaitingHarness(
        rates=InMemoryRateTable([ecb(date(2026, 8, 3), "1.0850"), ecb(date(2026, 8, 20), "1.1200")])
    )
    harness.post("stripe_customer_created_eu", "stripe_invoice_finalized_inclusive_tax")
    invoice = harness.erp.documents["stripe-invoice-in_1i38poNx4RkL2mQe5gvnMH7Q"]
    # WHEN a credit note of part of it is issued on 20 August
    note = _credit_note_on("stripe_invoice_finalized_inclusive_tax", at=datetime(2026, 8, 20, 9, 0, tzinfo=UTC))
    result = harness.post(note)[0]
    # THEN the credit memo carries the invoice's rate on every line and balances in EUR and in USD
    assert result.status is PostingStatus.POSTED, harness.lineage.get(result.event_id)
    (memo,) = (d for d in harness.erp.documents.values() if d.applies_to == (invoice.external_id,))
    assert {line.rate for line in memo.journal} == {Decimal("1.0850")}
    assert {line.rate_date for line in memo.journal} == {date(2026, 8, 3)}
    assert transaction_balance(memo) == 0 and functional_balance(memo) == 0


def test_the_refund_saga_waits_for_a_missing_rate_then_books_a_eur_refund_in_usd(
    harness: WaitingHarness,
) -> None:
    # GIVEN the 1,000.00 EUR invoice and its payment by charge, both booked at Friday's 1.0850
    invoice = eur_invoice([(100000, 0, 0)], "in_1QfxRefNx4RkL2mQe2Jd5Tn8")
    assert [r.status for r in harness.post(invoice, paid_by_charge(invoice, CHARGE))] == [PostingStatus.POSTED] * 2
    steps = RefundSaga(
        erp=harness.erp,
        master_data=harness.master_data,
        lineage=harness.lineage,
        exceptions=harness.exceptions,
        mapping=mapping(),
        clock=harness.clock,
        bookkeeper=harness.bookkeeper,
    )
    # AND a refund of 400.00 EUR of that charge on Wednesday 4 November, a day the table has no rate for
    refund = canonical(_refund_of(CHARGE, 40000, at=datetime(2026, 11, 4, 10, 0, tzinfo=UTC)))
    execution: dict[str, Any] = {"event": refund.model_dump(mode="json"), "name": "fx-refund-1"}
    # WHEN the saga loads what it needs
    waiting = steps.run("load", execution)
    # THEN it is not ready and names the missing rate (the state machine waits and looks again), booking nothing
    assert waiting == {"ready": False, "waiting_for": "rate:EUR:USD:2026-11-04"}
    assert not [d for d in harness.erp.documents.values() if d.kind in (DocumentKind.REFUND, DocumentKind.CREDIT_MEMO)]
    # WHEN Wednesday's rate is loaded and the saga looks again, then books
    harness.rates.put_rates([ecb(date(2026, 11, 4), "1.0900")])
    execution["deps"] = steps.run("load", execution)
    assert execution["deps"]["ready"] is True
    execution["credit_memo_result"] = steps.run("credit_memo", execution)
    steps.run("refund", execution)
    # THEN the cash leaves at Wednesday's rate, the refund liability at the 1.0850 the credit memo booked it
    # at, and the 2.00 USD between them is a realised FX loss; both documents balance in EUR and in USD
    (booked,) = (d for d in harness.erp.documents.values() if d.kind is DocumentKind.REFUND)
    memo = harness.erp.documents[execution["credit_memo_result"]["credit_memo"]]
    assert functional_net(booked.journal, PAYMENT_CLEARING) == -43600  # 400.00 EUR at 1.0900
    assert functional_net(booked.journal, REFUNDS_PAYABLE) == 43400 == -functional_net(memo.journal, REFUNDS_PAYABLE)
    assert functional_net(booked.journal, REALISED_FX) == 200
    for document in (booked, memo):
        assert transaction_balance(document) == 0 and functional_balance(document) == 0


# ---- builders of events on another invoice ----------------------------------------------------------


def _refund_of(charge_id: str, amount: int, *, at: datetime) -> dict[str, Any]:
    """`refund.created` of part of a EUR charge, with no credit note."""
    event = with_event_id(load_event("stripe_refund_created_full"), f"evt_refund_{charge_id[-10:]}")
    moment = int(at.timestamp())
    event["data"]["object"].update(
        id=f"re_fx_{charge_id[-10:]}",
        amount=amount,
        currency="eur",
        charge=charge_id,
        payment_intent=None,
        customer="cus_QfR7xKp2LmN9aT",
        created=moment,
    )
    event["created"] = moment
    return event


def _payment_id(harness: WaitingHarness) -> str:
    (payment,) = (ext for ext in harness.erp.documents if ext.startswith("stripe-payment-"))
    return payment


def _voided(invoice_sample: str, *, at: datetime) -> dict[str, Any]:
    """`invoice.voided` of an invoice sample, at `at`."""
    invoice = copy.deepcopy(load_event(invoice_sample)["data"]["object"])
    event = with_event_id(load_event("stripe_invoice_voided"), f"evt_void_{invoice['id']}")
    moment = int(at.timestamp())
    invoice.update(status="voided", amount_remaining=0)
    invoice["status_transitions"] = {**invoice.get("status_transitions", {}), "voided_at": moment}
    event["data"]["object"] = invoice
    event["created"] = moment
    return event


def _credit_note_on(invoice_sample: str, *, at: datetime) -> dict[str, Any]:
    """A pre-payment `credit_note.created` crediting the first line of an invoice sample by a third."""
    invoice = load_event(invoice_sample)["data"]["object"]
    event = with_event_id(load_event("stripe_credit_note_created_pre_payment"), f"evt_cn_{invoice['id']}")
    note = event["data"]["object"]
    line = invoice["lines"]["data"][0]
    amount = line["amount"] // 3
    moment = int(at.timestamp())
    note.update(
        id=f"cn_fx_{invoice['id'][-8:]}",
        invoice=invoice["id"],
        customer=invoice["customer"],
        currency=invoice["currency"],
        created=moment,
        effective_at=moment,
        amount=amount,
        subtotal=amount,
        subtotal_excluding_tax=amount,
        total=amount,
        total_excluding_tax=amount,
        pre_payment_amount=amount,
        post_payment_amount=0,
        discount_amount=0,
        discount_amounts=[],
        total_taxes=[],
        tax_amounts=[],
        credit_amount=0,
        out_of_band_amount=0,
        refunds=[],
        refund=None,
    )
    credit_line = copy.deepcopy(note["lines"]["data"][0])
    credit_line.update(
        amount=amount,
        invoice_line_item=line["id"],
        type="invoice_line_item",
        discount_amount=0,
        discount_amounts=[],
        taxes=[],
        tax_amounts=[],
        pretax_credit_amounts=[],
    )
    note["lines"]["data"] = [credit_line]
    event["created"] = moment
    return event
