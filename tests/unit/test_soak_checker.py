"""The soak's checker counts each kind of broken outcome it is fed: its zeros can be trusted."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from billing_sync_ops.soak_checker import (
    JournalEntry,
    LedgerDocument,
    LineageView,
    Outcome,
    books_differ,
    check,
    ledger_document,
)


def _document(external_id: str, *, kind: str = "invoice", event_id: str = "e1", credit: int = 1000) -> LedgerDocument:
    return LedgerDocument(
        external_id=external_id,
        document_id=f"LDG-{external_id}",
        kind=kind,
        source_event_id=event_id,
        currency="USD",
        total=1000,
        journal=(
            JournalEntry("1100", "USD", debit=1000, credit=0, functional_currency="USD", functional_debit=1000),
            JournalEntry("4000", "USD", debit=0, credit=credit, functional_currency="USD", functional_credit=credit),
        ),
    )


def _healthy() -> Outcome:
    return Outcome(
        generated={"e1", "e2", "e3"},
        accepted={"e1", "e2", "e3"},
        documents=[_document("stripe-invoice-in_1A", event_id="e1")],
        lineage={
            "e1": LineageView("POSTED", ("LDG-stripe-invoice-in_1A",)),
            "e2": LineageView("IGNORED"),
            "e3": LineageView("EXCEPTION", category="VALIDATION"),
        },
        exception_records={"e3"},
        creates=Counter({"stripe-invoice-in_1A": 1}),
    )


def test_a_healthy_outcome_counts_nothing() -> None:
    # GIVEN every event posted, ignored or parked, one balanced document created once
    # WHEN it is checked
    verdict = check(_healthy())
    # THEN the four counters are zero
    assert verdict.counts() == {"events": 3, "lost": 0, "double_posted": 0, "unbalanced": 0, "unexplained": 0}
    assert verdict.clean


def test_an_accepted_event_with_no_outcome_and_no_exception_is_lost_and_unexplained() -> None:
    # GIVEN an accepted event lineage only saw as PENDING, with no document and no exception record
    outcome = _healthy()
    outcome.lineage["e2"] = LineageView("PENDING", category="ERP_TRANSIENT")
    # WHEN it is checked
    verdict = check(outcome)
    # THEN it is lost and unexplained
    assert verdict.lost == ["e2"]
    assert verdict.unexplained == ["e2"]


def test_an_event_lineage_calls_posted_whose_document_is_missing_is_lost() -> None:
    # GIVEN lineage says POSTED with a document the ERP does not hold
    outcome = _healthy()
    outcome.lineage["e2"] = LineageView("POSTED", ("LDG-stripe-payment-in_1A",))
    # WHEN it is checked
    # THEN it is lost (though lineage looks terminal)
    assert check(outcome).lost == ["e2"]


def test_an_event_with_no_lineage_and_no_exception_record_is_unexplained_even_if_never_accepted() -> None:
    # GIVEN an event the ingest never accepted and nobody recorded
    outcome = _healthy()
    outcome.generated.add("e4")
    # WHEN it is checked
    verdict = check(outcome)
    # THEN it is unexplained, not lost (nothing was promised for it)
    assert (verdict.lost, verdict.unexplained) == ([], ["e4"])


def test_a_document_created_twice_under_one_external_id_is_double_posted() -> None:
    # GIVEN the ERP accepted two creates of one external id
    outcome = _healthy()
    outcome.creates["stripe-invoice-in_1A"] = 2
    # WHEN it is checked
    # THEN it is counted
    assert check(outcome).double_posted == ["stripe-invoice-in_1A created 2 times"]


def test_one_source_document_posted_as_two_documents_is_double_posted() -> None:
    # GIVEN the same Stripe invoice booked under two external ids, from two events
    outcome = _healthy()
    outcome.documents.append(_document("stripe-invoice-v2-in_1A", event_id="e9"))
    # WHEN it is checked
    verdict = check(outcome)
    # THEN it is counted once, naming both documents
    assert len(verdict.double_posted) == 1
    assert "stripe-invoice-in_1A" in verdict.double_posted[0] and "stripe-invoice-v2-in_1A" in verdict.double_posted[0]


@pytest.mark.parametrize(
    ("external_ids", "doubled"),
    [
        # payout.failed books a fee per balance transaction, the deposit and its reversal: none is a double
        (("stripe-fee-txn_1A", "stripe-fee-txn_1B", "stripe-payout-po_1A", "stripe-payout-reversal-po_1A"), []),
        # one balance transaction charged as two fees, one payout deposited under two external ids
        (
            ("stripe-fee-txn_1A", "stripe-fee-v2-txn_1A", "stripe-payout-po_1A", "stripe-payout-v2-po_1A"),
            ["txn_1A", "po_1A"],
        ),
    ],
)
def test_fees_count_once_per_balance_transaction_and_a_reversal_is_not_a_second_deposit(
    external_ids: tuple[str, ...], doubled: list[str]
) -> None:
    # GIVEN a payout event's documents (a second version, `-v2-`, from another event)
    outcome = _healthy()
    outcome.documents += [
        _document(external_id, kind=external_id.split("-")[1], event_id="e4" if "-v2-" in external_id else "e2")
        for external_id in external_ids
    ]
    # WHEN it is checked
    found = check(outcome).double_posted
    # THEN exactly the doubled objects are counted
    assert len(found) == len(doubled)
    assert all(any(obj in entry for entry in found) for obj in doubled)


def test_a_journal_whose_debits_differ_from_its_credits_is_unbalanced() -> None:
    # GIVEN a document whose journal credits 999 against a 1000 debit
    outcome = _healthy()
    outcome.documents.append(_document("stripe-invoice-in_1B", event_id="e5", credit=999))
    # WHEN it is checked
    # THEN it is counted, in transaction and functional currency
    [unbalanced] = check(outcome).unbalanced
    assert unbalanced.startswith("stripe-invoice-in_1B") and "'USD': 1" in unbalanced


def test_a_journal_balanced_in_transaction_currency_but_not_in_functional_is_unbalanced() -> None:
    # GIVEN a document balanced in EUR whose functional USD amounts differ by one cent
    outcome = _healthy()
    outcome.documents.append(
        LedgerDocument(
            external_id="stripe-invoice-in_1C",
            document_id="LDG-C",
            kind="invoice",
            source_event_id="e6",
            currency="EUR",
            total=1000,
            journal=(
                JournalEntry("1100", "EUR", 1000, 0, functional_currency="USD", functional_debit=1085),
                JournalEntry("4000", "EUR", 0, 1000, functional_currency="USD", functional_credit=1084),
            ),
        )
    )
    # WHEN it is checked
    # THEN it is counted
    assert len(check(outcome).unbalanced) == 1


def test_a_ledger_item_is_read_as_stored_without_the_domain_balance_check() -> None:
    # GIVEN a raw ledger item whose journal does not balance (the domain model would refuse to build it)
    item = {
        "pk": {"S": "DOC#stripe-invoice-in_1D"},
        "document_id": {"S": "LDG-D"},
        "kind": {"S": "invoice"},
        "source_event_id": {"S": "e7"},
        "currency": {"S": "JPY"},
        "total": {"N": "100"},
        "journal": {
            "L": [
                {
                    "M": {
                        "account": {"S": "1100"},
                        "currency": {"S": "JPY"},
                        "debit": {"N": "100"},
                        "credit": {"N": "0"},
                    }
                },
                {"M": {"account": {"S": "4000"}, "currency": {"S": "JPY"}, "debit": {"N": "0"}, "credit": {"N": "90"}}},
            ]
        },
    }
    # WHEN it is read and checked
    outcome = _healthy()
    outcome.documents.append(ledger_document(item))
    # THEN the imbalance is counted
    assert check(outcome).unbalanced == ["stripe-invoice-in_1D: transaction {'JPY': 10}, functional 0"]


def test_books_that_match_the_books_of_the_events_in_order_differ_in_nothing() -> None:
    # GIVEN a run's ledger and the ledger of the same events posted in order, holding the same documents
    documents = [_document("stripe-invoice-in_1A"), _document("stripe-payment-inpay_1A", kind="payment")]
    in_order = [_document("stripe-payment-inpay_1A", kind="payment", event_id="e7"), _document("stripe-invoice-in_1A")]
    # WHEN they are compared (which event booked a document is not part of the books)
    # THEN nothing differs
    assert books_differ(documents, in_order) == []


def test_a_document_missing_on_either_side_or_with_another_journal_is_a_difference_in_the_books() -> None:
    # GIVEN a refund booked only by the run, a reversal booked only in order, and an invoice whose journal differs
    documents = [_document("stripe-refund-re_1A", kind="refund"), _document("stripe-invoice-in_1A", credit=1000)]
    in_order = [_document("stripe-refund-reversal-re_1B", kind="refund_reversal"), _document("stripe-invoice-in_1A")]
    other_revenue = JournalEntry("4100", "USD", debit=0, credit=1000, functional_currency="USD", functional_credit=1000)
    in_order[1] = replace(in_order[1], journal=(in_order[1].journal[0], other_revenue))
    # WHEN they are compared
    found = books_differ(documents, in_order)
    # THEN each of the three is named
    assert [entry.split(":")[0] for entry in found] == [
        "stripe-invoice-in_1A",
        "stripe-refund-re_1A",
        "stripe-refund-reversal-re_1B",
    ]
    assert "not when the events came in order" in found[1] and "not here" in found[2]
