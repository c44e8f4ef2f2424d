"""Promise 3 and the accounting defaults: canonical events become balanced ERP documents.

Every expected journal below is worked out by hand from the sample's own figures (line amounts,
discounts, taxes, service periods, dates) and DESIGN.md "Accounting defaults" / "Revenue recognition":
a line's price is amount - discount - inclusive tax; its revenue at posting is
sign(A) * floor(|A| * k / N) with N the days of [period start, period end) and k the days elapsed
through the posting date inclusive; the rest is deferred.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pydantic
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import billing_sync
from billing_sync.domain.accounting import (
    credit_note_document,
    invoice_document,
    payment_document,
    void_document,
    write_off_document,
)
from billing_sync.domain.errors import (
    DocumentConflictError,
    EventValidationError,
    ExceptionCategory,
    MalformedEventError,
    MappingError,
    NothingToPostError,
)
from billing_sync.domain.events import (
    CreditNoteIssuedEvent,
    InvoiceIssued,
    InvoiceIssuedEvent,
    InvoiceLine,
    RevenueClass,
    TaxAmount,
    derive_event_id,
)
from billing_sync.domain.journal import (
    DocumentKind,
    ErpDocument,
    ErpRef,
    JournalLine,
    UnbalancedJournalError,
    imbalances,
)
from billing_sync.domain.mapping import AccountMapping
from billing_sync.sources.stripe import StripeNormaliser
from tests.builders import invoice_event, load_event, with_event_id

SHIPPED_MAPPING = Path(billing_sync.__file__).parent / "config" / "account_mapping.json"
RECEIVED_AT = datetime(2026, 11, 1, 1, 0, 5, tzinfo=UTC)

UNDEPOSITED = "1160 Undeposited Funds"
CLEARING = "1150 Payment Clearing"
AR = "1200 Accounts Receivable"
CUSTOMER_CREDIT = "2200 Customer Credit Balances"
REFUNDS = "2250 Refunds Payable"
SALES_TAX = "2300 Sales Tax Payable"
JP_TAX = "2310 Consumption Tax Payable"
KW_TAX = "2320 VAT Payable"
DEFERRED = "2400 Deferred Revenue"
SUBSCRIPTION_REVENUE = "4000 Subscription Revenue"
SERVICES = "4100 Professional Services Revenue"
USAGE_REVENUE = "4200 Usage Revenue"
DISCOUNTS = "4900 Discounts"
CONTRA_REVENUE = "4950 Contra Revenue"
BAD_DEBT = "6500 Bad Debt Expense"

REVENUE_ACCOUNTS = (SUBSCRIPTION_REVENUE, SERVICES, USAGE_REVENUE)
TAX_ACCOUNTS = (SALES_TAX, JP_TAX, KW_TAX)

TX_STATE = "txr_1Fu8X3Nx4RkL2mQecKy4wQUe"
AUSTIN = "txr_1W68O1Nx4RkL2mQelgaYmm3M"


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


def as_finalized(sample: str) -> dict[str, Any]:
    """A later event of an invoice (voided, payment failed) replayed as its `invoice.finalized`.

    Some invoices have no finalized sample; their later events carry the whole invoice object, and
    the finalisation instant is `status_transitions.finalized_at`.
    """
    payload = with_event_id(load_event(sample), f"evt_finalized_{sample}")
    payload["type"] = "invoice.finalized"
    return payload


def invoice_of(sample: str) -> ErpDocument:
    return invoice_document(canonical(load_event(sample)), shipped_mapping())


def entries(document: ErpDocument) -> Counter[tuple[str, int, int]]:
    """The journal as a multiset of (account, debit, credit), ignoring memos and order."""
    return Counter((line.account, line.debit, line.credit) for line in document.journal)


def net_debit(document: ErpDocument, *accounts: str) -> int:
    return sum(line.debit - line.credit for line in document.journal if line.account in accounts)


def totals(document: ErpDocument) -> tuple[int, int]:
    return sum(line.debit for line in document.journal), sum(line.credit for line in document.journal)


def ref(document: ErpDocument) -> ErpRef:
    """What the ERP answers for a posted invoice: its entity, currency and customer."""
    return ErpRef(
        external_id=document.external_id,
        document_id=f"erp-{document.external_id}",
        created=True,
        legal_entity=document.legal_entity,
        customer_external_id=document.customer_external_id,
        currency=document.currency,
        total=document.total,
    )


def invoice_ref(invoice_id: str, legal_entity: str, currency: str, customer: str = "cus_x") -> ErpRef:
    return ErpRef(
        external_id=f"stripe-invoice-{invoice_id}",
        document_id="erp-1",
        created=True,
        legal_entity=legal_entity,
        customer_external_id=f"stripe-customer-{customer}",
        currency=currency,
    )


# ---- invoice.issued: every invoice.finalized sample ---------------------------------------------


def test_the_usd_renewal_defers_the_unearned_subscription_and_earns_the_onboarding_at_price():
    # GIVEN the USD sample finalised 2026-11-01 01:00 UTC: a 14700 subscription line less a 1470 coupon
    # (price 13230) served [Nov 1, Dec 1), a 25000 onboarding line at a point in time (Nov 1), and
    # 1174 + 2219 = 3393 exclusive NYC tax
    event = canonical(load_event("stripe_invoice_finalized"))
    subscription_days = (date(2026, 12, 1) - date(2026, 11, 1)).days  # 30
    subscription_earned = 13230 * 1 // subscription_days  # k = 1: Nov 1 itself -> 441

    # WHEN
    document = invoice_document(event, shipped_mapping())

    # THEN the revenue is net of the coupon: no discounts account is touched any more
    assert subscription_earned == 441
    assert entries(document) == Counter(
        {
            (AR, 41623, 0): 1,
            (SUBSCRIPTION_REVENUE, 0, subscription_earned): 1,
            (DEFERRED, 0, 13230 - subscription_earned): 1,
            (SERVICES, 0, 25000): 1,
            (SALES_TAX, 0, 3393): 1,
        }
    )
    assert totals(document) == (41623, 41623)
    assert DISCOUNTS not in {line.account for line in document.journal}


def test_the_usd_invoice_document_is_identified_and_itemised_with_its_discount_visible():
    # GIVEN / WHEN
    document = invoice_of("stripe_invoice_finalized")

    # THEN the discount stays visible on the ERP line though it is not posted
    assert document.external_id == "stripe-invoice-in_1QvDDlNx4RkL2mQejBTD4pmw"
    assert document.kind is DocumentKind.INVOICE
    assert (document.legal_entity, document.subsidiary) == ("US01", "1")
    assert document.customer_external_id == "stripe-customer-cus_QfR7xKp2LmN9aT"
    assert (document.currency, document.total) == ("USD", 41623)
    assert document.posting_date == date(2026, 11, 1)
    assert [(line.item, line.amount, line.discount, line.price, line.tax) for line in document.lines] == [
        ("SUB-PLATFORM", 13230, 1470, 13230, 1174),
        ("SRV-ONBOARDING", 25000, 0, 25000, 2219),
    ]


def test_the_jpy_invoice_credits_inclusive_consumption_tax_and_revenue_net_of_it():
    # GIVEN the JP01 sample finalised 2026-11-02 01:20 UTC: 29400 yen including 2673 consumption tax
    # (price 26727) for [Nov 1, Dec 1)
    event = canonical(load_event("stripe_invoice_finalized_jpy"))
    days = (date(2026, 12, 1) - date(2026, 11, 1)).days  # 30
    elapsed = (date(2026, 11, 2) - date(2026, 11, 1)).days + 1  # Nov 1 and Nov 2 -> 2
    earned = 26727 * elapsed // days  # 53454 // 30 = 1781

    # WHEN
    document = invoice_document(event, shipped_mapping())

    # THEN
    assert earned == 1781
    assert entries(document) == Counter(
        {
            (AR, 29400, 0): 1,
            (SUBSCRIPTION_REVENUE, 0, earned): 1,
            (DEFERRED, 0, 26727 - earned): 1,
            (JP_TAX, 0, 2673): 1,
        }
    )
    assert (document.currency, document.subsidiary, document.posting_date) == ("JPY", "2", date(2026, 11, 2))


def test_the_eur_invoice_of_a_us_entity_credits_revenue_net_of_inclusive_vat():
    # GIVEN the EUR sample for US01 (any currency: the shipped mapping restricts no entity), finalised
    # 2026-08-03: two point-in-time service lines of 12900 and 59500 including 19 % VAT of 2060 and 9500
    event = canonical(load_event("stripe_invoice_finalized_inclusive_tax"))

    # WHEN
    document = invoice_document(event, shipped_mapping())

    # THEN each line is revenue at its price on the posting day; the VAT goes to the entity's tax account
    assert entries(document) == Counter(
        {
            (AR, 72400, 0): 1,
            (SERVICES, 0, 12900 - 2060): 1,
            (SERVICES, 0, 59500 - 9500): 1,
            (SALES_TAX, 0, 2060 + 9500): 1,
        }
    )
    assert (document.currency, document.legal_entity) == ("EUR", "US01")


def test_a_jpy_invoice_without_an_entity_books_in_the_default_entity():
    # GIVEN the JPY sample of a US customer with no legal_entity metadata: two one-off lines of 48000
    # and 30000 yen served on the invoice day (2026-08-14), no tax
    event = canonical(load_event("stripe_invoice_finalized_jpy_us"))

    # WHEN
    document = invoice_document(event, shipped_mapping())

    # THEN
    assert entries(document) == Counter({(AR, 78000, 0): 1, (SERVICES, 0, 48000): 1, (SERVICES, 0, 30000): 1})
    assert (document.legal_entity, document.subsidiary, document.currency) == ("US01", "1", "JPY")


def test_a_point_in_time_kwd_invoice_credits_revenue_in_fils():
    # GIVEN the KW01 sample: one 12.500 KWD commissioning day on 2026-11-05, finalised that day, no tax
    # WHEN
    document = invoice_of("stripe_invoice_finalized_kwd")

    # THEN
    assert entries(document) == Counter({(AR, 12500, 0): 1, (SERVICES, 0, 12500): 1})
    assert (document.subsidiary, document.currency) == ("3", "KWD")


def test_the_first_lifecycle_invoice_books_both_coupons_into_the_price_and_tax_per_rate():
    # GIVEN the first Brightline invoice finalised 2026-04-01 00:00:02 UTC: 5 seats 49500 less WELCOME10
    # 4950 (price 44550) over [Apr 1, May 1); setup fee 25000 less SETUP50 12500 and WELCOME10 1250
    # (price 11250) at a point in time on Apr 1; Texas 2784 + 703 = 3487 and Austin 891 + 225 = 1116
    event = canonical(load_event("stripe_invoice_finalized_lifecycle_first"))
    seats_price = 49500 - 4950
    setup_price = 25000 - 12500 - 1250
    days = (date(2026, 5, 1) - date(2026, 4, 1)).days  # 30
    seats_earned = seats_price * 1 // days  # k = 1 (Apr 1): 44550 // 30 = 1485

    # WHEN
    document = invoice_document(event, shipped_mapping())

    # THEN
    assert (seats_price, setup_price, seats_earned) == (44550, 11250, 1485)
    assert entries(document) == Counter(
        {
            (AR, 60403, 0): 1,
            (SUBSCRIPTION_REVENUE, 0, seats_earned): 1,
            (DEFERRED, 0, seats_price - seats_earned): 1,
            (SERVICES, 0, setup_price): 1,
            (SALES_TAX, 0, 3487): 1,
            (SALES_TAX, 0, 1116): 1,
        }
    )


def test_an_upgrade_proration_debits_the_unused_time_and_credits_the_remaining_time():
    # GIVEN the upgrade invoice finalised 2026-04-16: -24750 unused (5 seats) and +39600 remaining
    # (8 seats), both over [Apr 16, May 1); Texas 2475 - 1547 = 928, Austin 792 - 495 = 297
    event = canonical(load_event("stripe_invoice_finalized_proration_upgrade"))
    days = (date(2026, 5, 1) - date(2026, 4, 16)).days  # 15
    unused_earned = -(24750 * 1 // days)  # k = 1 (Apr 16): -1650
    remaining_earned = 39600 * 1 // days  # 2640

    # WHEN
    document = invoice_document(event, shipped_mapping())

    # THEN the negative line debits revenue and deferred revenue
    assert (unused_earned, remaining_earned) == (-1650, 2640)
    assert entries(document) == Counter(
        {
            (AR, 16075, 0): 1,
            (SUBSCRIPTION_REVENUE, -unused_earned, 0): 1,
            (DEFERRED, 24750 + unused_earned, 0): 1,
            (SUBSCRIPTION_REVENUE, 0, remaining_earned): 1,
            (DEFERRED, 0, 39600 - remaining_earned): 1,
            (SALES_TAX, 0, 928): 1,
            (SALES_TAX, 0, 297): 1,
        }
    )


def test_a_negative_downgrade_invoice_credits_the_customer_balance_instead_of_receivable():
    # GIVEN the downgrade invoice finalised 2026-04-21: -26400 unused (8 seats) and +9900 remaining
    # (3 seats) over [Apr 21, May 1); Texas -1650 + 619 = -1031, Austin -528 + 198 = -330;
    # total -17861 goes to the customer balance, nothing is due
    event = canonical(load_event("stripe_invoice_finalized_proration_downgrade"))
    days = (date(2026, 5, 1) - date(2026, 4, 21)).days  # 10
    unused_earned = -(26400 * 1 // days)  # -2640
    remaining_earned = 9900 * 1 // days  # 990

    # WHEN
    document = invoice_document(event, shipped_mapping())

    # THEN
    assert (unused_earned, remaining_earned) == (-2640, 990)
    assert entries(document) == Counter(
        {
            (CUSTOMER_CREDIT, 0, 17861): 1,
            (SUBSCRIPTION_REVENUE, -unused_earned, 0): 1,
            (DEFERRED, 26400 + unused_earned, 0): 1,
            (SUBSCRIPTION_REVENUE, 0, remaining_earned): 1,
            (DEFERRED, 0, 9900 - remaining_earned): 1,
            (SALES_TAX, 1031, 0): 1,
            (SALES_TAX, 330, 0): 1,
        }
    )
    assert net_debit(document, AR) == 0
    assert document.total == -17861


def test_a_renewal_consumes_the_customer_credit_so_receivable_equals_amount_due():
    # GIVEN the May renewal finalised 2026-05-01 01:00: 3 seats 29700 over [May 1, Jun 1), Texas 1856,
    # Austin 594, total 32150; the customer's -17861 balance is applied, 14289 is due
    event = canonical(load_event("stripe_invoice_finalized_renewal_credit_balance"))
    days = (date(2026, 6, 1) - date(2026, 5, 1)).days  # 31
    earned = 29700 * 1 // days  # 958 (31 * 958 = 29698)
    applied = 32150 - 14289  # 17861

    # WHEN
    document = invoice_document(event, shipped_mapping())

    # THEN
    assert (earned, applied) == (958, 17861)
    assert entries(document) == Counter(
        {
            (AR, 32150, 0): 1,
            (CUSTOMER_CREDIT, applied, 0): 1,
            (AR, 0, applied): 1,
            (SUBSCRIPTION_REVENUE, 0, earned): 1,
            (DEFERRED, 0, 29700 - earned): 1,
            (SALES_TAX, 0, 1856): 1,
            (SALES_TAX, 0, 594): 1,
        }
    )
    assert net_debit(document, AR) == 14289


def test_an_invoice_whose_totals_do_not_add_up_is_a_validation_error_naming_the_difference():
    # GIVEN the sample whose total is 100 cents more than subtotal + tax
    event = canonical(load_event("stripe_invoice_finalized_bad_totals"))

    # WHEN / THEN
    with pytest.raises(EventValidationError) as caught:
        invoice_document(event, shipped_mapping())
    assert caught.value.category is ExceptionCategory.VALIDATION
    assert "in_1Qj0a3Nx4RkL2mQeiyS3CSGS does not add up" in caught.value.reason
    assert "= 130650, but total is 130750" in caught.value.reason


def test_an_invoice_in_an_unknown_currency_never_reaches_the_books():
    # GIVEN the invoice in currency 'zzz'
    payload = load_event("stripe_invoice_finalized_unknown_currency")

    # WHEN / THEN the normaliser refuses it as malformed
    with pytest.raises(MalformedEventError):
        canonical(payload)


# ---- entity, currency and mapping errors --------------------------------------------------------


def test_an_unknown_legal_entity_is_a_validation_error():
    # GIVEN a coherent invoice for an entity the mapping does not know
    event = canonical(invoice_event(metadata={"legal_entity": "DE01"}))

    # WHEN / THEN
    with pytest.raises(EventValidationError, match="legal entity 'DE01' is not known") as caught:
        invoice_document(event, shipped_mapping())
    assert caught.value.category is ExceptionCategory.VALIDATION


@pytest.mark.parametrize(
    ("currency", "entity"), [("jpy", "US01"), ("usd", "KW01"), ("eur", "JP01")], ids=["us-jpy", "kw-usd", "jp-eur"]
)
def test_an_entity_transacts_in_any_currency_unless_the_mapping_restricts_it(currency, entity):
    # GIVEN a coherent invoice in a currency that is not the entity's home currency
    event = canonical(invoice_event(currency=currency, metadata={"legal_entity": entity}))
    data = shipped_mapping().model_dump(mode="json")
    data["legal_entities"][entity]["currencies"] = ["KWD"] if currency != "kwd" else ["USD"]
    restricted = AccountMapping.model_validate(data)

    # WHEN / THEN the shipped mapping allows it; a restricted entity refuses it
    assert invoice_document(event, shipped_mapping()).currency == currency.upper()
    with pytest.raises(EventValidationError, match=f"{entity} is restricted from transacting in {currency.upper()}"):
        invoice_document(event, restricted)


@pytest.mark.parametrize(
    ("missing", "sample"),
    [
        ("deferred_revenue", "stripe_invoice_finalized"),
        ("revenue", "stripe_invoice_finalized_jpy"),
        ("tax_payable", "stripe_invoice_finalized_lifecycle_first"),
        ("accounts_receivable", "stripe_invoice_finalized_kwd"),
        ("customer_credit", "stripe_invoice_finalized_renewal_credit_balance"),
        ("customer_credit", "stripe_invoice_finalized_proration_downgrade"),
    ],
)
def test_a_mapping_without_a_needed_account_is_a_mapping_error_naming_the_key(missing, sample):
    # GIVEN a mapping that names no default account for a role the invoice needs
    mapping = shipped_mapping(**{missing: None})

    # WHEN / THEN
    with pytest.raises(MappingError, match=f"no {missing} account") as caught:
        invoice_document(canonical(load_event(sample)), mapping)
    assert caught.value.category is ExceptionCategory.MAPPING


def test_a_mapping_gap_for_a_role_the_invoice_does_not_use_is_harmless():
    # GIVEN the KWD invoice has no tax, and the discounts account is gone from the defaults
    mapping = shipped_mapping(discounts=None, tax_payable=None)

    # WHEN / THEN
    assert invoice_document(canonical(load_event("stripe_invoice_finalized_kwd")), mapping).total == 12500


def test_a_fully_discounted_invoice_posts_nothing_now_that_revenue_is_net_of_discounts():
    # GIVEN a 100 % discounted invoice without tax: Stripe finalises it with total 0 and the line's
    # price is 14700 - 14700 = 0
    event = canonical(invoice_event(lines=[(14700, 14700, 0)]))
    assert event.data.total == 0

    # WHEN / THEN there is no journal line to write
    with pytest.raises(NothingToPostError, match="no value"):
        invoice_document(event, shipped_mapping())


def test_an_invoice_with_no_value_has_nothing_to_post():
    # GIVEN a free-trial invoice: one line for nothing
    event = canonical(invoice_event(lines=[(0, 0, 0)]))

    # WHEN / THEN
    with pytest.raises(NothingToPostError, match="no value"):
        invoice_document(event, shipped_mapping())


# ---- payment.settled: every invoice_payment.paid sample -----------------------------------------


@pytest.mark.parametrize(
    ("sample", "invoice", "cash", "amount", "overpaid", "settled"),
    [
        # (sample, ErpRef of the invoice it pays, cash account, amount_paid, paid - requested, paid_at date)
        (
            "stripe_invoice_payment_paid",
            ("in_1QvDDlNx4RkL2mQejBTD4pmw", "US01", "USD"),
            CLEARING,
            41623,
            41623 - 41623,
            date(2026, 11, 1),
        ),
        (
            "stripe_invoice_payment_paid_first",
            ("in_1I1ho5Nx4RkL2mQeuKe9pSz2", "US01", "USD"),
            CLEARING,
            16075,
            16075 - 16075,
            date(2026, 4, 17),
        ),
        (
            "stripe_invoice_payment_paid_jpy",
            ("in_1Qm57qNx4RkL2mQeJoYg6HRn", "JP01", "JPY"),
            CLEARING,
            29400,
            29400 - 29400,
            date(2026, 11, 2),
        ),
        (
            "stripe_invoice_payment_paid_jpy_us",
            ("in_1CIgeDNx4RkL2mQeK5Rj643N", "US01", "JPY"),
            CLEARING,
            78000,
            78000 - 78000,
            date(2026, 8, 20),
        ),
        (
            "stripe_invoice_payment_paid_kwd",
            ("in_1QbO58Nx4RkL2mQefvDdNQvC", "KW01", "KWD"),
            CLEARING,
            12500,
            12500 - 12500,
            date(2026, 11, 12),
        ),
        (
            "stripe_invoice_payment_paid_out_of_band",
            ("in_1urdO4Nx4RkL2mQeJalJ2dfV", "US01", "USD"),
            UNDEPOSITED,
            60403,
            60403 - 60403,
            date(2026, 4, 8),
        ),
        (
            "stripe_invoice_payment_paid_overpaid",
            ("in_1i38poNx4RkL2mQe5gvnMH7Q", "US01", "EUR"),
            CLEARING,
            73000,
            73000 - 72400,
            date(2026, 8, 10),
        ),
        (
            "stripe_invoice_payment_paid_partial_1",
            ("in_195RYKNx4RkL2mQeXZrXWZ9C", "US01", "USD"),
            CLEARING,
            10000,
            10000 - 10000,
            date(2026, 5, 6),
        ),
        (
            "stripe_invoice_payment_paid_partial_2",
            ("in_195RYKNx4RkL2mQeXZrXWZ9C", "US01", "USD"),
            CLEARING,
            4289,
            4289 - 4289,
            date(2026, 5, 20),
        ),
    ],
    ids=lambda value: value if isinstance(value, str) and value.startswith("stripe_") else "",
)
def test_a_settled_payment_debits_cash_and_clears_the_receivable_less_any_overpayment(
    sample, invoice, cash, amount, overpaid, settled
):
    # GIVEN an invoice_payment.paid sample and the invoice it pays as the ERP knows it
    invoice_id, legal_entity, currency = invoice
    event = canonical(load_event(sample))

    # WHEN
    document = payment_document(event, shipped_mapping(), invoice=invoice_ref(invoice_id, legal_entity, currency))

    # THEN cash in = amount paid; the receivable is cleared by what was requested, the excess is customer credit
    expected = Counter({(cash, amount, 0): 1, (AR, 0, amount - overpaid): 1})
    if overpaid:
        expected[(CUSTOMER_CREDIT, 0, overpaid)] += 1
    assert entries(document) == expected
    assert (document.legal_entity, document.currency, document.posting_date) == (legal_entity, currency, settled)
    assert document.applies_to == (f"stripe-invoice-{invoice_id}",)
    assert document.kind is DocumentKind.PAYMENT


def test_an_overpayment_credits_the_customer_600_cents_of_73000():
    # GIVEN the EUR invoice of 72400 paid 73000
    event = canonical(load_event("stripe_invoice_payment_paid_overpaid"))

    # WHEN
    document = payment_document(
        event, shipped_mapping(), invoice=invoice_ref("in_1i38poNx4RkL2mQe5gvnMH7Q", "US01", "EUR")
    )

    # THEN
    assert entries(document) == Counter({(CLEARING, 73000, 0): 1, (AR, 0, 72400): 1, (CUSTOMER_CREDIT, 0, 600): 1})


def test_a_payment_books_in_the_invoice_entity_and_customer_not_the_event_default():
    # GIVEN the JPY payment (the invoice_payment carries no metadata, so its event defaults to US01)
    event = canonical(load_event("stripe_invoice_payment_paid_jpy"))
    invoice = invoice_of("stripe_invoice_finalized_jpy")

    # WHEN
    document = payment_document(event, shipped_mapping(), invoice=ref(invoice))

    # THEN
    assert event.legal_entity == "US01"
    assert (document.legal_entity, document.subsidiary) == ("JP01", "2")
    assert document.customer_external_id == invoice.customer_external_id == "stripe-customer-cus_QgT3mWq8ZsV1bK"


def test_a_payment_in_another_currency_than_its_invoice_is_a_validation_error():
    # GIVEN the USD payment applied to an invoice the ERP holds in EUR
    event = canonical(load_event("stripe_invoice_payment_paid"))

    # WHEN / THEN
    with pytest.raises(EventValidationError, match=r"is in USD but invoice .* is in EUR"):
        payment_document(event, shipped_mapping(), invoice=invoice_ref("in_1QvDDlNx4RkL2mQejBTD4pmw", "US01", "EUR"))


@pytest.mark.parametrize(
    ("missing", "sample"),
    [
        ("payment_clearing", "stripe_invoice_payment_paid"),
        ("undeposited_funds", "stripe_invoice_payment_paid_out_of_band"),
        ("customer_credit", "stripe_invoice_payment_paid_overpaid"),
    ],
)
def test_a_payment_mapping_gap_is_a_mapping_error_naming_the_key(missing, sample):
    # GIVEN
    event = canonical(load_event(sample))

    # WHEN / THEN
    with pytest.raises(MappingError, match=f"no {missing} account"):
        payment_document(
            event,
            shipped_mapping(**{missing: None}),
            invoice=invoice_ref(event.data.invoice_id, "US01", event.data.currency),
        )


# ---- credit_note.issued: every credit_note.created sample ---------------------------------------


def test_the_post_payment_credit_note_releases_the_unearned_share_and_reverses_the_rest():
    # GIVEN the May renewal posted 2026-05-01 (seat line price 29700 over [May 1, Jun 1)), and its
    # credit note of 2026-05-25 13:05 UTC: one seat 9900 + Texas 619 + Austin 198 = 10717, of which
    # 5000 refunded and 5717 to the customer balance
    invoice = invoice_of("stripe_invoice_finalized_renewal_credit_balance")
    event = canonical(load_event("stripe_credit_note_created_post_payment"))
    days = (date(2026, 6, 1) - date(2026, 5, 1)).days  # 31
    elapsed = (date(2026, 5, 25) - date(2026, 5, 1)).days + 1  # May 1..25 -> 25
    unearned = 29700 - 29700 * elapsed // days  # 29700 - 742500 // 31 = 29700 - 23951 = 5749
    from_deferred = min(9900, unearned)  # capped at what is still deferred

    # WHEN
    document = credit_note_document(event, shipped_mapping(), invoice=invoice)

    # THEN
    assert (unearned, from_deferred, 9900 - from_deferred) == (5749, 5749, 4151)
    assert entries(document) == Counter(
        {
            (DEFERRED, from_deferred, 0): 1,
            (SUBSCRIPTION_REVENUE, 9900 - from_deferred, 0): 1,
            (SALES_TAX, 619, 0): 1,
            (SALES_TAX, 198, 0): 1,
            (REFUNDS, 0, 5000): 1,
            (CUSTOMER_CREDIT, 0, 5717): 1,
        }
    )
    assert document.kind is DocumentKind.CREDIT_MEMO
    assert document.posting_date == date(2026, 5, 25)
    assert document.applies_to == (invoice.external_id,)
    assert (document.legal_entity, document.customer_external_id) == ("US01", invoice.customer_external_id)


def test_the_pre_payment_credit_note_comes_entirely_out_of_deferred_revenue_and_reduces_receivable():
    # GIVEN the June renewal (finalised 2026-06-01 01:00; seat line price 29700 over [Jun 1, Jul 1))
    # and its credit note of 2026-06-05 10:22 UTC: 3300 + Texas 206 + Austin 66 = 3572 off the open invoice
    invoice = invoice_document(canonical(as_finalized("stripe_invoice_payment_failed")), shipped_mapping())
    event = canonical(load_event("stripe_credit_note_created_pre_payment"))
    days = (date(2026, 7, 1) - date(2026, 6, 1)).days  # 30
    elapsed = (date(2026, 6, 5) - date(2026, 6, 1)).days + 1  # Jun 1..5 -> 5
    unearned = 29700 - 29700 * elapsed // days  # 29700 - 4950 = 24750
    from_deferred = min(3300, unearned)

    # WHEN
    document = credit_note_document(event, shipped_mapping(), invoice=invoice)

    # THEN nothing is taken back from revenue: 3300 is well inside the unearned 24750
    assert (unearned, from_deferred) == (24750, 3300)
    assert entries(document) == Counter(
        {(DEFERRED, 3300, 0): 1, (SALES_TAX, 206, 0): 1, (SALES_TAX, 66, 0): 1, (AR, 0, 3572): 1}
    )
    assert document.posting_date == date(2026, 6, 5)


def test_the_june_renewal_that_the_pre_payment_credit_note_credits_was_posted_as_expected():
    # GIVEN the June renewal finalised 2026-06-01 01:00 UTC: 29700 over [Jun 1, Jul 1), Texas 1856,
    # Austin 594, total 32150, the customer's 5717 credit applied, 26433 due
    event = canonical(as_finalized("stripe_invoice_payment_failed"))
    earned = 29700 * 1 // (date(2026, 7, 1) - date(2026, 6, 1)).days  # 990

    # WHEN
    document = invoice_document(event, shipped_mapping())

    # THEN
    assert earned == 990
    assert entries(document) == Counter(
        {
            (AR, 32150, 0): 1,
            (CUSTOMER_CREDIT, 5717, 0): 1,
            (AR, 0, 5717): 1,
            (SUBSCRIPTION_REVENUE, 0, earned): 1,
            (DEFERRED, 0, 29700 - earned): 1,
            (SALES_TAX, 0, 1856): 1,
            (SALES_TAX, 0, 594): 1,
        }
    )
    assert net_debit(document, AR) == 26433


@pytest.mark.parametrize(
    ("missing", "sample", "invoice_sample"),
    [
        (
            "refund_liability",
            "stripe_credit_note_created_post_payment",
            "stripe_invoice_finalized_renewal_credit_balance",
        ),
        (
            "customer_credit",
            "stripe_credit_note_created_post_payment",
            "stripe_invoice_finalized_renewal_credit_balance",
        ),
        ("tax_payable", "stripe_credit_note_created_pre_payment", None),
    ],
)
def test_a_credit_note_mapping_gap_is_a_mapping_error_naming_the_key(missing, sample, invoice_sample):
    # GIVEN the credited invoice as posted under the full mapping
    payload = load_event(invoice_sample) if invoice_sample else as_finalized("stripe_invoice_payment_failed")
    invoice = invoice_document(canonical(payload), shipped_mapping())

    # WHEN / THEN
    with pytest.raises(MappingError, match=f"no {missing} account"):
        credit_note_document(canonical(load_event(sample)), shipped_mapping(**{missing: None}), invoice=invoice)


# ---- invoice.voided and invoice.written_off -----------------------------------------------------


def test_a_voided_invoice_is_reversed_line_by_line_on_the_void_date():
    # GIVEN the one-off 150000 custom dashboard (a point in time on 2026-06-10) with Texas 9375 and
    # Austin 3000, finalised 2026-06-10 12:01 and voided 2026-06-11 09:30 UTC
    invoice = invoice_document(canonical(as_finalized("stripe_invoice_voided")), shipped_mapping())
    event = canonical(load_event("stripe_invoice_voided"))

    # WHEN
    document = void_document(event, invoice=invoice, mapping=shipped_mapping())

    # THEN the invoice was booked as earned revenue, and the void takes every line back
    assert entries(invoice) == Counter(
        {(AR, 162375, 0): 1, (SERVICES, 0, 150000): 1, (SALES_TAX, 0, 9375): 1, (SALES_TAX, 0, 3000): 1}
    )
    assert entries(document) == Counter(
        {(AR, 0, 162375): 1, (SERVICES, 150000, 0): 1, (SALES_TAX, 9375, 0): 1, (SALES_TAX, 3000, 0): 1}
    )
    assert (document.kind, document.posting_date) == (DocumentKind.INVOICE_VOID, date(2026, 6, 11))
    assert document.external_id == "stripe-invoice-void-in_1yWTWQNx4RkL2mQeWLNcZCqt"
    assert document.applies_to == (invoice.external_id,)


def test_voiding_an_invoice_for_another_total_than_was_posted_is_a_conflict():
    # GIVEN the USD renewal as posted, and the void sample of another invoice (162375, not 41623)
    invoice = invoice_of("stripe_invoice_finalized")

    # WHEN / THEN
    with pytest.raises(DocumentConflictError, match="posted for 41623 USD but is voided for 162375 USD"):
        void_document(canonical(load_event("stripe_invoice_voided")), invoice=invoice, mapping=shipped_mapping())


def test_an_uncollectible_invoice_writes_off_what_remains_open():
    # GIVEN the 64950 invoice (60000 + Texas 3750 + Austin 1200) of which 20000 was paid, marked
    # uncollectible 2026-09-30 17:45 UTC
    event = canonical(load_event("stripe_invoice_marked_uncollectible"))
    remaining = 64950 - 20000

    # WHEN
    document = write_off_document(
        event,
        shipped_mapping(),
        invoice=invoice_ref("in_1jFee7Nx4RkL2mQeSlM2syEE", "US01", "USD", "cus_ICoOwDslURDSB4"),
    )

    # THEN
    assert entries(document) == Counter({(BAD_DEBT, remaining, 0): 1, (AR, 0, remaining): 1})
    assert (document.kind, document.posting_date, document.total) == (DocumentKind.WRITE_OFF, date(2026, 9, 30), 44950)
    assert document.customer_external_id == "stripe-customer-cus_ICoOwDslURDSB4"


def test_a_write_off_without_a_bad_debt_account_is_a_mapping_error():
    # GIVEN
    event = canonical(load_event("stripe_invoice_marked_uncollectible"))

    # WHEN / THEN
    with pytest.raises(MappingError, match="no bad_debt account"):
        write_off_document(
            event, shipped_mapping(bad_debt=None), invoice=invoice_ref("in_1jFee7Nx4RkL2mQeSlM2syEE", "US01", "USD")
        )


# ---- journal invariants -----------------------------------------------------------------------


def test_an_erp_document_with_an_unbalanced_journal_cannot_be_constructed():
    # GIVEN a valid document whose tax credit is changed by one cent
    document = invoice_of("stripe_invoice_finalized")
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
    document = invoice_of("stripe_invoice_finalized")
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


# ---- property: a builder invoice (whole-period lines) always balances ----------------------------

line_specs = st.integers(min_value=0, max_value=5_000_000).flatmap(
    lambda amount: st.tuples(
        st.just(amount), st.integers(min_value=0, max_value=amount), st.integers(min_value=0, max_value=900_000)
    )
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(line_specs, min_size=1, max_size=6),
    entity=st.sampled_from([("usd", "US01"), ("jpy", "JP01"), ("kwd", "KW01")]),
)
def test_a_coherent_builder_invoice_always_balances_and_debits_receivable_with_its_total(lines, entity):
    # GIVEN a coherent Stripe-shaped invoice built from (amount, discount <= amount, exclusive tax) lines
    currency, legal_entity = entity
    total = sum(amount - discount + tax for amount, discount, tax in lines)
    assume(total > 0)  # a valueless invoice has nothing to book
    event = canonical(invoice_event(currency=currency, lines=lines, metadata={"legal_entity": legal_entity}))

    # WHEN
    document = invoice_document(event, shipped_mapping())

    # THEN revenue + deferred are the prices (net of discounts), tax is the taxes, receivable the total
    debits, credits = totals(document)
    assert imbalances(document.journal) == {}
    assert debits == credits == total
    assert net_debit(document, AR) == total
    assert -net_debit(document, *REVENUE_ACCOUNTS, DEFERRED) == sum(amount - discount for amount, discount, _ in lines)
    assert -net_debit(document, *TAX_ACCOUNTS) == sum(tax for *_, tax in lines)
    assert DISCOUNTS not in {line.account for line in document.journal}


# ---- property: any coherent canonical invoice ----------------------------------------------------

TAX_RATES = (("txr_vat19_incl", True), ("txr_jct10_incl", True), ("txr_state_excl", False), ("txr_city_excl", False))
PERIOD_STARTS = (
    datetime(2028, 2, 29, 0, 0, tzinfo=UTC),
    datetime(2028, 2, 28, 23, 59, 59, tzinfo=UTC),
    datetime(2028, 1, 31, 12, 0, tzinfo=UTC),
    datetime(2027, 12, 31, 18, 30, tzinfo=UTC),
    datetime(2028, 3, 1, 0, 0, tzinfo=UTC),
    datetime(2028, 4, 30, 6, 0, tzinfo=UTC),
    datetime(2026, 6, 15, 12, 0, tzinfo=UTC),
)


def _expected_earned(price: int, start: datetime, end: datetime, posting: date) -> int:
    """DESIGN "Revenue recognition", written out independently of domain.recognition."""
    first, last = start.astimezone(UTC).date(), end.astimezone(UTC).date()
    days = (last - first).days
    if days <= 0:
        return price if posting >= first else 0
    elapsed = min(max((posting - first).days + 1, 0), days)
    magnitude = abs(price) * elapsed // days
    return magnitude if price >= 0 else -magnitude


@st.composite
def canonical_lines(draw, index: int) -> InvoiceLine:
    negative = draw(st.booleans()) and index > 0  # a proration credit beside at least one charge
    gross = draw(st.integers(min_value=0, max_value=3_000_000))
    line_coupon = 0 if negative else draw(st.integers(min_value=0, max_value=gross))
    invoice_coupon_share = 0 if negative else draw(st.integers(min_value=0, max_value=gross - line_coupon))
    net = gross - line_coupon - invoice_coupon_share
    taxes = []
    for rate, inclusive in draw(st.lists(st.sampled_from(TAX_RATES), max_size=3, unique=True)):
        permille = draw(st.integers(min_value=0, max_value=250))
        taxes.append(TaxAmount(tax_rate=rate, amount=net * permille // 1000, inclusive=inclusive))
    if sum(tax.amount for tax in taxes if tax.inclusive) > net:
        taxes = [tax for tax in taxes if not tax.inclusive]
    sign = -1 if negative else 1
    start = draw(st.sampled_from(PERIOD_STARTS)) + timedelta(hours=draw(st.integers(min_value=-30, max_value=30)))
    length = draw(
        st.one_of(st.just(timedelta(0)), st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=400)))
    )
    return InvoiceLine(
        line_id=f"il_{index}",
        revenue_class=draw(st.sampled_from(list(RevenueClass))),
        proration=negative,
        amount=sign * gross,
        discount=sign * (line_coupon + invoice_coupon_share),
        taxes=tuple(TaxAmount(tax_rate=t.tax_rate, amount=sign * t.amount, inclusive=t.inclusive) for t in taxes),
        period_start=start,
        period_end=start + length,
    )


@st.composite
def canonical_invoices(draw) -> InvoiceIssuedEvent:
    count = draw(st.integers(min_value=1, max_value=5))
    lines = [draw(canonical_lines(index)) for index in range(count)]
    currency, legal_entity = draw(st.sampled_from([("USD", "US01"), ("JPY", "JP01"), ("KWD", "KW01"), ("JPY", "US01")]))
    issued_at = lines[0].period_start + timedelta(
        days=draw(st.integers(min_value=-40, max_value=420)), minutes=draw(st.integers(min_value=0, max_value=1439))
    )
    all_taxes = [tax for line in lines for tax in line.taxes]
    per_rate: dict[tuple[str, bool], int] = {}
    for tax in all_taxes:
        per_rate[(tax.tax_rate, tax.inclusive)] = per_rate.get((tax.tax_rate, tax.inclusive), 0) + tax.amount
    subtotal = sum(line.amount for line in lines)
    discount_total = sum(line.discount for line in lines)
    total = subtotal - discount_total + sum(tax.amount for tax in all_taxes if not tax.inclusive)
    starting_balance = -draw(st.integers(min_value=0, max_value=2_000_000))  # negative: credit held
    applied = min(-starting_balance, max(total, 0))
    amount_due = max(total, 0) - applied
    ending_balance = starting_balance + applied + min(total, 0)
    paid = draw(st.integers(min_value=0, max_value=amount_due))
    return InvoiceIssuedEvent(
        event_id=derive_event_id("stripe", "evt_generated"),
        source="stripe",
        source_event_id="evt_generated",
        source_event_type="invoice.finalized",
        occurred_at=issued_at,
        received_at=issued_at,
        normalised_at=issued_at,
        legal_entity=legal_entity,
        correlation_id="evt_generated",
        data=InvoiceIssued(
            invoice_id="in_generated",
            customer_id="cus_generated",
            currency=currency,
            issued_at=issued_at,
            lines=tuple(lines),
            subtotal=subtotal,
            discount_total=discount_total,
            taxes=tuple(
                TaxAmount(tax_rate=rate, amount=amount, inclusive=inc) for (rate, inc), amount in per_rate.items()
            ),
            total=total,
            starting_balance=starting_balance,
            ending_balance=ending_balance,
            amount_due=amount_due,
            amount_paid=paid,
            amount_remaining=amount_due - paid,
        ),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=canonical_invoices())
def test_any_coherent_invoice_balances_and_splits_into_receivable_credit_revenue_deferred_and_tax(event):
    # GIVEN a coherent canonical invoice: signed lines (negative prorations), line and invoice coupons,
    # inclusive and exclusive tax at several rates, a customer credit balance, periods across month
    # ends and 2028-02-29, in USD, JPY or KWD
    invoice = event.data
    # the document date is the entity's calendar day (JP01 keeps Tokyo time, the others UTC)
    zone = ZoneInfo(shipped_mapping().legal_entities[event.legal_entity].time_zone)
    posting = invoice.issued_at.astimezone(zone).date()
    if not (any(line.price for line in invoice.lines) or any(tax.amount for tax in invoice.taxes) or invoice.total):
        with pytest.raises(NothingToPostError):  # nothing at all to book
            invoice_document(event, shipped_mapping())
        return

    # WHEN
    document = invoice_document(event, shipped_mapping())

    # THEN the journal balances per currency, in the invoice's currency
    assert imbalances(document.journal) == {}
    assert {line.currency for line in document.journal} == {invoice.currency}
    # AND the receivable is what is due; the customer credit consumed (or added) is the rest of the total
    assert net_debit(document, AR) == invoice.amount_due
    assert net_debit(document, CUSTOMER_CREDIT) == invoice.total - invoice.amount_due
    # AND revenue + deferred + tax credits - customer credit debits = total - (total - amount due) = AR
    credited = -net_debit(document, *REVENUE_ACCOUNTS, DEFERRED, *TAX_ACCOUNTS)
    assert credited == invoice.total
    assert credited - net_debit(document, CUSTOMER_CREDIT) == net_debit(document, AR)
    # AND revenue is the prices' shares earned through the posting date (by day), tax is per rate
    earned = sum(_expected_earned(line.price, line.period_start, line.period_end, posting) for line in invoice.lines)
    assert -net_debit(document, *REVENUE_ACCOUNTS) == earned
    assert -net_debit(document, DEFERRED) == sum(line.price for line in invoice.lines) - earned
    assert -net_debit(document, *TAX_ACCOUNTS) == sum(tax.amount for tax in invoice.taxes)
    assert DISCOUNTS not in {line.account for line in document.journal}


def test_the_posting_date_is_the_utc_date_of_finalisation_even_when_given_with_an_offset():
    # GIVEN the USD renewal finalised 2026-11-01 01:00 UTC, expressed as 2026-10-31 20:00 at UTC-05:00
    event = canonical(load_event("stripe_invoice_finalized"))
    eastern = event.data.issued_at.astimezone(timezone(timedelta(hours=-5)))
    shifted = event.model_copy(update={"data": event.data.model_copy(update={"issued_at": eastern})})
    assert eastern.date() == date(2026, 10, 31)

    # WHEN
    document = invoice_document(shifted, shipped_mapping())

    # THEN it posts on the UTC day, with the first day of the 30-day seat line earned (13230 * 1 // 30)
    assert document.posting_date == date(2026, 11, 1)
    assert entries(document) == entries(invoice_document(event, shipped_mapping()))
    assert entries(document)[(SUBSCRIPTION_REVENUE, 0, 13230 * 1 // 30)] == 1


def test_a_credit_note_line_not_on_the_invoice_is_contra_revenue():
    # GIVEN the post-payment credit note turned into a custom line (no invoice line) of 9900
    invoice = invoice_of("stripe_invoice_finalized_renewal_credit_balance")
    event: CreditNoteIssuedEvent = canonical(load_event("stripe_credit_note_created_post_payment"))
    custom = event.data.lines[0].model_copy(update={"invoice_line_id": None})
    event = event.model_copy(update={"data": event.data.model_copy(update={"lines": (custom,)})})

    # WHEN
    document = credit_note_document(event, shipped_mapping(), invoice=invoice)

    # THEN
    assert entries(document) == Counter(
        {
            (CONTRA_REVENUE, 9900, 0): 1,
            (SALES_TAX, 619, 0): 1,
            (SALES_TAX, 198, 0): 1,
            (REFUNDS, 0, 5000): 1,
            (CUSTOMER_CREDIT, 0, 5717): 1,
        }
    )


def test_a_late_evening_utc_invoice_in_the_japanese_entity_is_a_document_of_the_next_day():
    # GIVEN a yen invoice effective 2026-11-30 16:30 UTC (2026-12-01 01:30 in Tokyo) for the JP01 entity
    payload = load_event("stripe_invoice_finalized_jpy")
    invoice = payload["data"]["object"]
    moment = int(datetime(2026, 11, 30, 16, 30, tzinfo=UTC).timestamp())
    invoice["effective_at"] = invoice["status_transitions"]["finalized_at"] = moment

    # WHEN
    document = invoice_document(canonical(payload), shipped_mapping())

    # THEN it is a December document in the entity's books
    assert document.posting_date == date(2026, 12, 1)


def test_the_document_date_is_the_effective_date_of_a_backdated_invoice():
    # GIVEN an invoice finalised on Nov 1 but backdated (effective) to Oct 31
    payload = load_event("stripe_invoice_finalized")
    payload["data"]["object"]["effective_at"] = int(datetime(2026, 10, 31, 12, tzinfo=UTC).timestamp())

    # WHEN / THEN
    assert invoice_document(canonical(payload), shipped_mapping()).posting_date == date(2026, 10, 31)


def test_an_unknown_time_zone_in_the_mapping_is_refused_at_load():
    data = json.loads(SHIPPED_MAPPING.read_text(encoding="utf-8"))
    data["legal_entities"]["JP01"]["time_zone"] = "Asia/Atlantis"
    with pytest.raises(pydantic.ValidationError, match="not an IANA time zone"):
        AccountMapping.model_validate(data)
