"""The Brightline lifecycle (events/README.md) booked document by document: the ledger ends where Stripe does.

Every figure is the sample's own (see test_accounting.py for each document's journal worked out by day).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from billing_sync.domain.accounting import (
    credit_note_document,
    invoice_document,
    payment_document,
    void_document,
    write_off_document,
)
from billing_sync.domain.events import PaymentSettled, PaymentSettledEvent, derive_event_id
from billing_sync.domain.journal import ErpDocument, imbalances
from tests.builders import load_event
from tests.unit.test_accounting import (
    AR,
    BAD_DEBT,
    CLEARING,
    CUSTOMER_CREDIT,
    DEFERRED,
    REFUNDS,
    SALES_TAX,
    SERVICES,
    UNDEPOSITED,
    as_finalized,
    canonical,
    entries,
    ref,
    shipped_mapping,
)


def balances(documents: list[ErpDocument]) -> dict[str, int]:
    """Net debit per account over `documents`."""
    net: dict[str, int] = defaultdict(int)
    for document in documents:
        for line in document.journal:
            net[line.account] += line.debit - line.credit
    return dict(net)


def settled(invoice: ErpDocument, amount: int, on: datetime) -> PaymentSettledEvent:
    """The 20000 partial payment of invoice 0007, which has no sample of its own."""
    return PaymentSettledEvent(
        event_id=derive_event_id("stripe", "evt_partial_0007"),
        source="stripe",
        source_event_id="evt_partial_0007",
        source_event_type="invoice_payment.paid",
        occurred_at=on,
        received_at=on,
        normalised_at=on,
        legal_entity="US01",
        correlation_id="evt_partial_0007",
        data=PaymentSettled(
            payment_id="inpay_partial_0007",
            invoice_id=invoice.external_id.removeprefix("stripe-invoice-"),
            currency="USD",
            amount=amount,
            settled_at=on,
        ),
    )


def test_the_brightline_lifecycle_leaves_the_ledger_where_stripe_leaves_the_customer():
    # GIVEN every document of the lifecycle, in order
    mapping = shipped_mapping()
    first = invoice_document(canonical(load_event("stripe_invoice_finalized_lifecycle_first")), mapping)
    upgrade = invoice_document(canonical(load_event("stripe_invoice_finalized_proration_upgrade")), mapping)
    downgrade = invoice_document(canonical(load_event("stripe_invoice_finalized_proration_downgrade")), mapping)
    may = invoice_document(canonical(load_event("stripe_invoice_finalized_renewal_credit_balance")), mapping)
    june = invoice_document(canonical(as_finalized("stripe_invoice_payment_failed")), mapping)
    dashboard = invoice_document(canonical(as_finalized("stripe_invoice_voided")), mapping)
    migration = invoice_document(canonical(as_finalized("stripe_invoice_marked_uncollectible")), mapping)

    def paid(sample: str, invoice: ErpDocument) -> ErpDocument:
        return payment_document(canonical(load_event(sample)), mapping, invoice=ref(invoice))

    documents = [
        first,
        paid("stripe_invoice_payment_paid_out_of_band", first),
        upgrade,
        paid("stripe_invoice_payment_paid_first", upgrade),
        downgrade,
        may,
        paid("stripe_invoice_payment_paid_partial_1", may),
        paid("stripe_invoice_payment_paid_partial_2", may),
        credit_note_document(canonical(load_event("stripe_credit_note_created_post_payment")), mapping, invoice=may),
        june,
        credit_note_document(canonical(load_event("stripe_credit_note_created_pre_payment")), mapping, invoice=june),
        dashboard,
        void_document(canonical(load_event("stripe_invoice_voided")), invoice=dashboard, mapping=mapping),
        migration,
        payment_document(settled(migration, 20000, datetime(2026, 7, 20, tzinfo=UTC)), mapping, invoice=ref(migration)),
        write_off_document(
            canonical(load_event("stripe_invoice_marked_uncollectible")), mapping, invoice=ref(migration)
        ),
    ]

    # WHEN
    ledger = balances(documents)

    # THEN every document balanced, and the receivable is the June invoice's 26433 less the 3572 credit note
    assert all(imbalances(document.journal) == {} for document in documents)
    assert sum(ledger.values()) == 0
    assert ledger[AR] == 26433 - 3572 == 22861
    # AND the customer balance ends at 0 as in Stripe: -17861 (downgrade) + 17861 (May) - 5717 (note) + 5717 (June)
    assert ledger[CUSTOMER_CREDIT] == 0
    # AND cash: 60403 outside Stripe; 16075 + 10000 + 4289 + 20000 through it; 5000 still to refund
    assert ledger[UNDEPOSITED] == 60403
    assert ledger[CLEARING] == 16075 + 10000 + 4289 + 20000
    assert ledger[REFUNDS] == -5000
    assert ledger[BAD_DEBT] == 64950 - 20000
    # AND deferred revenue is each subscription line's price less what was earned on its posting day
    # (first 44550 - 1485; upgrade -(24750 - 1650) + (39600 - 2640); downgrade -(26400 - 2640) + (9900 - 990);
    # May 29700 - 958, less 5749 released by the credit note; June 29700 - 990, less 3300 released)
    assert -ledger[DEFERRED] == (
        (44550 - 1485)
        - (24750 - 1650)
        + (39600 - 2640)
        - (26400 - 2640)
        + (9900 - 990)
        + (29700 - 958 - 5749)
        + (29700 - 990 - 3300)
    )


def test_the_uncollectible_invoice_posted_as_a_point_in_time_service():
    # GIVEN invoice 0007 finalised 2026-07-02 15:02: data migration 60000 at a point in time on Jul 2,
    # Texas 3750, Austin 1200
    event = canonical(as_finalized("stripe_invoice_marked_uncollectible"))

    # WHEN
    document = invoice_document(event, shipped_mapping())

    # THEN
    assert entries(document) == Counter(
        {(AR, 64950, 0): 1, (SERVICES, 0, 60000): 1, (SALES_TAX, 0, 3750): 1, (SALES_TAX, 0, 1200): 1}
    )
    assert document.posting_date == date(2026, 7, 2)


@pytest.mark.xfail(
    strict=True,
    reason="credit_note_document caps each note at the invoice line's unearned share on its own, so two notes "
    "on one line release more deferred revenue than the line ever deferred (it cannot see earlier notes)",
)
def test_two_credit_notes_on_one_line_never_release_more_than_was_deferred():
    # GIVEN the May renewal's seat line (29700 over [May 1, Jun 1)): on May 25, 29700 - 29700 * 25 // 31
    # = 5749 is still deferred; two credit notes of one seat (9900) each are issued that day
    mapping = shipped_mapping()
    may = invoice_document(canonical(load_event("stripe_invoice_finalized_renewal_credit_balance")), mapping)
    first_note = canonical(load_event("stripe_credit_note_created_post_payment"))
    second_note = first_note.model_copy(
        update={"data": first_note.data.model_copy(update={"credit_note_id": "cn_second", "number": "second"})}
    )

    # WHEN
    released = sum(
        line.debit - line.credit
        for note in (first_note, second_note)
        for line in credit_note_document(note, mapping, invoice=may).journal
        if line.account == DEFERRED
    )

    # THEN
    assert released <= 29700 - 29700 * 25 // 31


def test_the_credit_day_is_the_utc_date_even_when_given_with_an_offset():
    # GIVEN the post-payment credit note of 2026-05-25 13:05 UTC expressed at UTC+12:00 (May 26 01:05)
    may = invoice_document(canonical(load_event("stripe_invoice_finalized_renewal_credit_balance")), shipped_mapping())
    note = canonical(load_event("stripe_credit_note_created_post_payment"))
    ahead = note.data.issued_at.astimezone(timezone(timedelta(hours=12)))
    note = note.model_copy(update={"data": note.data.model_copy(update={"issued_at": ahead})})
    assert ahead.date() == date(2026, 5, 26)

    # WHEN
    document = credit_note_document(note, shipped_mapping(), invoice=may)

    # THEN still May 25: 5749 out of deferred revenue (29700 - 29700 * 25 // 31)
    assert document.posting_date == date(2026, 5, 25)
    assert entries(document)[(DEFERRED, 29700 - 29700 * 25 // 31, 0)] == 1
