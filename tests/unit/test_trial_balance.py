"""The trial balance per legal entity (domain.journal.entity_trial_balance): as of a day, in transaction or
functional currency, and whether each entity's debits equal its credits in each currency."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from billing_sync.domain.journal import DocumentKind, ErpDocument, JournalLine, entity_trial_balance, trial_balance

AR = "1200 Accounts Receivable"
REVENUE = "4000 Subscription Revenue"
TAX = "2300 Sales Tax Payable"
UNREALISED = "7110 Unrealised FX Gain/Loss"
NOV_10, NOV_30, DEC_1 = date(2026, 11, 10), date(2026, 11, 30), date(2026, 12, 1)


def line(account: str, currency: str, debit: int = 0, credit: int = 0, **functional: object) -> JournalLine:
    return JournalLine(account=account, currency=currency, debit=debit, credit=credit, **functional)  # type: ignore[arg-type]


def translated(account: str, debit: int = 0, credit: int = 0, *, usd: int) -> JournalLine:
    """A EUR line booked at 1.0850 into USD (`usd` debit-positive)."""
    return JournalLine(
        account=account,
        currency="EUR",
        debit=debit,
        credit=credit,
        functional_currency="USD",
        functional_debit=max(usd, 0),
        functional_credit=max(-usd, 0),
        rate=Decimal("1.0850"),
        rate_source="ecb",
        rate_date=NOV_10,
    )


def document(external_id: str, journal: list[JournalLine], *, entity: str = "US01", on: date = NOV_10) -> ErpDocument:
    return ErpDocument(
        external_id=external_id,
        kind=DocumentKind.INVOICE,
        legal_entity=entity,
        subsidiary={"US01": "1", "JP01": "2"}[entity],
        customer_external_id="stripe-customer-cus_TZ3pBYNx4RkL2mQe",
        currency=journal[0].currency,
        posting_date=on,
        total=sum(j.debit for j in journal if j.account == AR),
        journal=tuple(journal),
        source_event_id=f"evt_{external_id}",
    )


US_INVOICE = document(
    "stripe-invoice-in_1QUsd0001",
    [line(AR, "USD", debit=108_00), line(REVENUE, "USD", credit=100_00), line(TAX, "USD", credit=8_00)],
)
JP_INVOICE = document(
    "stripe-invoice-in_1QJpy0001", [line(AR, "JPY", debit=12_000), line(REVENUE, "JPY", credit=12_000)], entity="JP01"
)
EUR_INVOICE = document(
    "stripe-invoice-in_1QEur0001",
    [translated(AR, debit=1_000_00, usd=1_085_00), translated(REVENUE, credit=1_000_00, usd=-1_085_00)],
)
REVALUATION = ErpDocument(
    external_id="fx-revaluation-US01-2026-11",
    kind=DocumentKind.FX_REVALUATION,
    legal_entity="US01",
    subsidiary="1",
    customer_external_id="",
    currency="USD",
    posting_date=NOV_30,
    total=15_00,
    journal=(
        line(AR, "EUR", functional_currency="USD", functional_debit=15_00, rate=Decimal("1.1"), rate_date=NOV_30),
        line(
            UNREALISED, "EUR", functional_currency="USD", functional_credit=15_00, rate=Decimal("1.1"), rate_date=NOV_30
        ),
    ),
    source_event_id="fx-revaluation-US01-2026-11",
)


def rows(balance) -> list[tuple[str, str, str, int, int]]:  # type: ignore[no-untyped-def]
    return [(r.legal_entity, r.account, r.currency, r.debit, r.credit) for r in balance.rows]


def test_rows_are_per_entity_account_and_currency() -> None:
    # GIVEN a USD invoice in US01 and a JPY invoice in JP01
    # WHEN the trial balance is taken
    balance = entity_trial_balance([US_INVOICE, JP_INVOICE])

    # THEN each entity has its own rows and its own check, both balanced
    assert rows(balance) == [
        ("JP01", AR, "JPY", 12_000, 0),
        ("JP01", REVENUE, "JPY", 0, 12_000),
        ("US01", AR, "USD", 108_00, 0),
        ("US01", TAX, "USD", 0, 8_00),
        ("US01", REVENUE, "USD", 0, 100_00),
    ]
    assert [(c.legal_entity, c.currency, c.debit, c.credit) for c in balance.checks] == [
        ("JP01", "JPY", 12_000, 12_000),
        ("US01", "USD", 108_00, 108_00),
    ]
    assert balance.balanced and balance.documents == 2
    # AND one entity can be asked for alone
    assert {r.legal_entity for r in entity_trial_balance([US_INVOICE, JP_INVOICE], legal_entity="JP01").rows} == {
        "JP01"
    }


def test_as_of_counts_only_documents_posted_on_or_before_that_day() -> None:
    # GIVEN an invoice posted Nov 10 and another posted Dec 1
    december = document(
        "stripe-invoice-in_1QUsd0002", [line(AR, "USD", debit=50_00), line(REVENUE, "USD", credit=50_00)], on=DEC_1
    )

    # WHEN the trial balance is taken as of Nov 30, then as of Dec 1
    november = entity_trial_balance([US_INVOICE, december], as_of=NOV_30)
    through_december = entity_trial_balance([US_INVOICE, december], as_of=DEC_1)

    # THEN November has only the first invoice; December both
    assert (november.documents, november.as_of) == (1, NOV_30)
    assert [r.debit for r in november.rows if r.account == AR] == [108_00]
    assert through_december.documents == 2
    assert [r.debit for r in through_december.rows if r.account == AR] == [158_00]


def test_transaction_and_functional_bases_add_up_different_amounts() -> None:
    # GIVEN a EUR invoice booked at 1.0850 and a revaluation that carries only functional amounts
    documents = [EUR_INVOICE, REVALUATION]

    # WHEN the trial balance is taken in each basis
    transaction = entity_trial_balance(documents, basis="transaction")
    functional = entity_trial_balance(documents, basis="functional")

    # THEN in transaction currency the invoice is in EUR and the functional-only lines add nothing
    assert rows(transaction) == [("US01", AR, "EUR", 1_000_00, 0), ("US01", REVENUE, "EUR", 0, 1_000_00)]
    # AND in functional currency everything is USD and the revaluation counts
    assert rows(functional) == [
        ("US01", AR, "USD", 1_100_00, 0),
        ("US01", REVENUE, "USD", 0, 1_085_00),
        ("US01", UNREALISED, "USD", 0, 15_00),
    ]
    assert functional.currency_basis == "functional" and functional.balanced and transaction.balanced


def test_an_untranslated_line_counts_in_functional_only_in_its_entitys_own_currency() -> None:
    # GIVEN an untranslated USD invoice in US01 (functional USD) and an untranslated JPY invoice in JP01
    # WHEN the functional trial balance is taken knowing only US01's functional currency
    balance = entity_trial_balance([US_INVOICE, JP_INVOICE], basis="functional", functional_currencies={"US01": "USD"})

    # THEN the USD invoice counts at its own amounts and the JPY one cannot be counted
    assert {r.legal_entity for r in balance.rows} == {"US01"}
    assert sum(r.debit for r in balance.rows) == 108_00


def test_a_ledger_whose_debits_and_credits_differ_is_not_balanced() -> None:
    # GIVEN a stored document that does not balance (as a damaged ledger item would read back)
    damaged = ErpDocument.model_construct(
        **{**US_INVOICE.model_dump(), "journal": (line(AR, "USD", debit=108_00), line(REVENUE, "USD", credit=100_00))}
    )

    # WHEN the trial balance is taken
    balance = entity_trial_balance([damaged, JP_INVOICE])

    # THEN the US01 USD check fails and the whole balance says so; JP01 still balances
    assert not balance.balanced
    assert {(c.legal_entity, c.balanced) for c in balance.checks} == {("US01", False), ("JP01", True)}


def test_the_flat_trial_balance_is_unchanged_for_its_callers() -> None:
    # GIVEN the run report's flat trial balance over journals
    flat = trial_balance([US_INVOICE.journal, JP_INVOICE.journal])

    # THEN rows are still per account and currency, without an entity
    assert [(r.account, r.currency, r.debit, r.credit) for r in flat] == [
        (AR, "JPY", 12_000, 0),
        (AR, "USD", 108_00, 0),
        (TAX, "USD", 0, 8_00),
        (REVENUE, "JPY", 0, 12_000),
        (REVENUE, "USD", 0, 100_00),
    ]
