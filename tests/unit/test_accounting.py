"""Promise 3 and the accounting defaults: canonical events become balanced ERP documents."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pydantic
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import billing_sync
from billing_sync.domain.accounting import invoice_document, payment_document
from billing_sync.domain.errors import EventValidationError, ExceptionCategory, MappingError, NothingToPostError
from billing_sync.domain.journal import DocumentKind, ErpDocument, JournalLine, UnbalancedJournalError, imbalances
from billing_sync.domain.mapping import AccountMapping
from billing_sync.sources.stripe import StripeNormaliser
from tests.builders import invoice_event, load_event

SHIPPED_MAPPING = Path(billing_sync.__file__).parent / "config" / "account_mapping.json"
RECEIVED_AT = datetime(2026, 11, 1, 1, 0, 5, tzinfo=UTC)

AR = "1200 Accounts Receivable"
DISCOUNTS = "4900 Discounts"
DEFERRED = "2400 Deferred Revenue"
SERVICES = "4100 Professional Services Revenue"
SUBSCRIPTION_REVENUE = "4000 Subscription Revenue"
SALES_TAX = "2300 Sales Tax Payable"
JP_TAX = "2310 Consumption Tax Payable"
KW_TAX = "2320 VAT Payable"
CLEARING = "1150 Payment Clearing"


def shipped_mapping(**replace_defaults: str | None) -> AccountMapping:
    """The shipped mapping; a default account given as None is removed."""
    data: dict[str, Any] = json.loads(SHIPPED_MAPPING.read_text(encoding="utf-8"))
    for role, account in replace_defaults.items():
        if account is None:
            del data["default_accounts"][role]
        else:
            data["default_accounts"][role] = account
    return AccountMapping.model_validate(data)


def canonical(payload: dict[str, Any]):
    """The canonical event for a Stripe payload (sample or builder output)."""
    event = StripeNormaliser(default_legal_entity="US01").normalise(payload, received_at=RECEIVED_AT, raw_ref="raw")
    assert event is not None
    return event


def entries(document: ErpDocument) -> Counter[tuple[str, int, int]]:
    """The journal as a multiset of (account, debit, credit), ignoring memos and order."""
    return Counter((line.account, line.debit, line.credit) for line in document.journal)


def totals(document: ErpDocument) -> tuple[int, int]:
    return sum(line.debit for line in document.journal), sum(line.credit for line in document.journal)


# ---- invoice.issued ---------------------------------------------------------------------------


def test_the_usd_invoice_posts_receivable_discount_deferred_and_point_in_time_revenue_and_tax():
    # GIVEN the USD sample: a discounted subscription line (service period ends after the invoice
    # date), a one-off onboarding line (served on the invoice date), and exclusive sales tax
    event = canonical(load_event("stripe_invoice_finalized"))

    # WHEN
    document = invoice_document(event, shipped_mapping())

    # THEN
    assert entries(document) == Counter(
        {
            (AR, 41623, 0): 1,
            (DISCOUNTS, 1470, 0): 1,
            (DEFERRED, 0, 14700): 1,
            (SERVICES, 0, 25000): 1,
            (SALES_TAX, 0, 3393): 1,
        }
    )
    assert totals(document) == (43093, 43093)
    assert imbalances(document.journal) == {}
    assert {line.currency for line in document.journal} == {"USD"}


def test_the_usd_invoice_document_is_identified_and_itemised():
    # GIVEN / WHEN
    document = invoice_document(canonical(load_event("stripe_invoice_finalized")), shipped_mapping())

    # THEN
    assert document.external_id == "stripe-invoice-in_1QvDDlNx4RkL2mQejBTD4pmw"
    assert document.kind is DocumentKind.INVOICE
    assert (document.legal_entity, document.subsidiary) == ("US01", "1")
    assert document.customer_external_id == "stripe-customer-cus_QfR7xKp2LmN9aT"
    assert (document.currency, document.total) == ("USD", 41623)
    assert document.posting_date.isoformat() == "2026-11-01"
    assert [(line.item, line.amount, line.tax) for line in document.lines] == [
        ("SUB-PLATFORM", 13230, 1174),
        ("SRV-ONBOARDING", 25000, 2219),
    ]


def test_inclusive_tax_is_credited_to_tax_and_revenue_net_of_it():
    # GIVEN the JPY sample: 29400 yen including 2673 consumption tax, for a future service period
    event = canonical(load_event("stripe_invoice_finalized_jpy"))

    # WHEN
    document = invoice_document(event, shipped_mapping())

    # THEN
    assert entries(document) == Counter({(AR, 29400, 0): 1, (DEFERRED, 0, 26727): 1, (JP_TAX, 0, 2673): 1})
    assert (document.currency, document.subsidiary) == ("JPY", "2")


def test_a_point_in_time_kwd_invoice_credits_revenue_in_fils():
    # GIVEN / WHEN
    document = invoice_document(canonical(load_event("stripe_invoice_finalized_kwd")), shipped_mapping())

    # THEN
    assert entries(document) == Counter({(AR, 12500, 0): 1, (SERVICES, 0, 12500): 1})


def test_an_invoice_whose_totals_do_not_add_up_is_a_validation_error_naming_the_difference():
    # GIVEN the sample whose total is 100 cents more than subtotal + tax
    event = canonical(load_event("stripe_invoice_finalized_bad_totals"))

    # WHEN / THEN
    with pytest.raises(EventValidationError) as caught:
        invoice_document(event, shipped_mapping())
    assert caught.value.category is ExceptionCategory.VALIDATION
    assert "in_1Qj0a3Nx4RkL2mQeiyS3CSGS does not add up" in caught.value.reason
    assert "= 130650, but total is 130750" in caught.value.reason


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        pytest.param(invoice_event(metadata={"legal_entity": "DE01"}), "legal entity 'DE01' is not known", id="entity"),
        pytest.param(invoice_event(currency="jpy"), "US01 does not transact in JPY", id="currency"),
        pytest.param(
            invoice_event(currency="usd", metadata={"legal_entity": "KW01"}), "KW01 does not transact in USD", id="kw"
        ),
    ],
)
def test_an_entity_or_currency_the_mapping_does_not_allow_is_a_validation_error(payload, reason):
    # GIVEN a coherent invoice for an unknown entity, or in a currency its entity does not transact in
    event = canonical(payload)

    # WHEN / THEN
    with pytest.raises(EventValidationError, match=reason):
        invoice_document(event, shipped_mapping())


@pytest.mark.parametrize(
    ("missing", "sample"),
    [
        ("discounts", "stripe_invoice_finalized"),
        ("deferred_revenue", "stripe_invoice_finalized"),
        ("accounts_receivable", "stripe_invoice_finalized_kwd"),
    ],
)
def test_a_mapping_without_a_needed_account_is_a_mapping_error(missing, sample):
    # GIVEN a mapping that names no account for a role the invoice needs
    mapping = shipped_mapping(**{missing: None})

    # WHEN / THEN
    with pytest.raises(MappingError, match=f"no {missing} account") as caught:
        invoice_document(canonical(load_event(sample)), mapping)
    assert caught.value.category is ExceptionCategory.MAPPING


def test_a_mapping_gap_for_a_role_the_invoice_does_not_use_is_harmless():
    # GIVEN the KWD invoice has no discount and no tax
    mapping = shipped_mapping(discounts=None, tax_payable=None)

    # WHEN / THEN
    assert invoice_document(canonical(load_event("stripe_invoice_finalized_kwd")), mapping).total == 12500


def test_a_fully_discounted_invoice_posts_a_balanced_document_without_a_receivable():
    # GIVEN a 100 % discounted invoice: Stripe finalises it with total 0
    event = canonical(invoice_event(lines=[(14700, 14700, 0)]))
    assert event.data.total == 0

    # WHEN
    document = invoice_document(event, shipped_mapping())

    # THEN the discount offsets the revenue and nothing is receivable
    assert entries(document) == Counter({(DISCOUNTS, 14700, 0): 1, (DEFERRED, 0, 14700): 1})


# ---- property: every generated invoice balances ----------------------------------------------

line_specs = st.integers(min_value=0, max_value=5_000_000).flatmap(
    lambda amount: st.tuples(
        st.just(amount), st.integers(min_value=0, max_value=amount), st.integers(min_value=0, max_value=900_000)
    )
)


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(line_specs, min_size=1, max_size=6),
    entity=st.sampled_from([("usd", "US01"), ("jpy", "JP01"), ("kwd", "KW01")]),
)
def test_a_coherent_invoice_always_balances_and_debits_receivable_with_its_total(lines, entity):
    # GIVEN a coherent invoice built from (amount, discount <= amount, exclusive tax) lines
    currency, legal_entity = entity
    total = sum(amount - discount + tax for amount, discount, tax in lines)
    assume(sum(amount + tax for amount, _, tax in lines) > 0)  # a valueless invoice has nothing to book
    event = canonical(invoice_event(currency=currency, lines=lines, metadata={"legal_entity": legal_entity}))

    # WHEN
    document = invoice_document(event, shipped_mapping())

    # THEN
    debits, credits = totals(document)
    assert imbalances(document.journal) == {}
    assert debits == credits == sum(amount + tax for amount, _, tax in lines)
    assert [line.debit for line in document.journal if line.account == AR] == ([total] if total else [])
    assert document.total == event.data.total == total
    assert sum(line.credit for line in document.journal if line.account in (SALES_TAX, JP_TAX, KW_TAX)) == sum(
        tax for *_, tax in lines
    )


# ---- payment.settled --------------------------------------------------------------------------


def test_a_settled_payment_clears_the_receivable_of_its_invoice():
    # GIVEN / WHEN
    document = payment_document(canonical(load_event("stripe_invoice_paid")), shipped_mapping(), legal_entity="US01")

    # THEN
    assert entries(document) == Counter({(CLEARING, 41623, 0): 1, (AR, 0, 41623): 1})
    assert document.external_id == "stripe-payment-in_1QvDDlNx4RkL2mQejBTD4pmw"
    assert document.applies_to == ("stripe-invoice-in_1QvDDlNx4RkL2mQejBTD4pmw",)
    assert document.kind is DocumentKind.PAYMENT


def test_both_stripe_payment_events_of_one_invoice_map_to_one_external_id():
    # GIVEN / WHEN
    mapping = shipped_mapping()
    by_invoice_paid = payment_document(canonical(load_event("stripe_invoice_paid")), mapping, legal_entity="US01")
    by_charge = payment_document(canonical(load_event("stripe_charge_succeeded")), mapping, legal_entity="US01")

    # THEN the ERP sees one payment however many events report it
    assert by_invoice_paid.external_id == by_charge.external_id
    assert by_invoice_paid.journal == by_charge.journal


# ---- journal invariants -----------------------------------------------------------------------


def test_an_erp_document_with_an_unbalanced_journal_cannot_be_constructed():
    # GIVEN a valid document whose tax credit is changed by one cent
    document = invoice_document(canonical(load_event("stripe_invoice_finalized")), shipped_mapping())
    data = document.model_dump()
    data["journal"] = [
        {**line, "credit": line["credit"] - 1} if line["account"] == SALES_TAX else line for line in data["journal"]
    ]

    # WHEN / THEN
    with pytest.raises((UnbalancedJournalError, pydantic.ValidationError), match=r"does not balance: \{'USD': 1\}"):
        ErpDocument.model_validate(data)


def test_a_journal_must_balance_in_each_currency_not_just_in_sum():
    # GIVEN 100 debited in USD and 100 credited in JPY
    journal = [
        JournalLine(account=AR, currency="USD", debit=100),
        JournalLine(account=SUBSCRIPTION_REVENUE, currency="JPY", credit=100),
    ]

    # WHEN / THEN
    assert imbalances(journal) == {"USD": 100, "JPY": -100}
    document = invoice_document(canonical(load_event("stripe_invoice_finalized")), shipped_mapping())
    with pytest.raises((UnbalancedJournalError, pydantic.ValidationError), match="does not balance"):
        ErpDocument.model_validate({**document.model_dump(), "journal": journal})


@pytest.mark.parametrize(("debit", "credit"), [(100, 100), (0, 0)], ids=["both", "neither"])
def test_a_journal_line_has_exactly_one_side(debit, credit):
    # WHEN / THEN
    with pytest.raises(pydantic.ValidationError, match="exactly one of debit or credit"):
        JournalLine(account=AR, currency="USD", debit=debit, credit=credit)


@pytest.mark.parametrize("amount", [-1, 1.5], ids=["negative", "float"])
def test_a_journal_line_amount_is_non_negative_integer_minor_units(amount):
    # WHEN / THEN
    with pytest.raises(pydantic.ValidationError, match="debit"):
        JournalLine(account=AR, currency="USD", debit=amount)


def test_an_invoice_with_no_value_has_nothing_to_post():
    # GIVEN a free-trial invoice: one line for nothing
    event = canonical(invoice_event(lines=[(0, 0, 0)]))

    # WHEN / THEN
    with pytest.raises(NothingToPostError, match="no value"):
        invoice_document(event, shipped_mapping())
