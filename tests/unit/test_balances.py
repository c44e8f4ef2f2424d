"""Running balances (domain.balances): what realistic posted documents add, folded back, equal the scan-based
trial balance and deferred revenue roll-forward of the same documents."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date

import pytest

from billing_sync.composition.balances import deferred_revenue_accounts
from billing_sync.domain.balances import (
    BalanceDelta,
    RollForwardItem,
    TrialBalanceItem,
    chunks,
    document_deltas,
    roll_forward,
    trial_balance_as_of,
)
from billing_sync.domain.journal import DocumentKind, ErpDocument, JournalLine, entity_trial_balance
from billing_sync_ops.ops.revenue import deferred_roll_forward
from tests.functional.posting_harness import PostingHarness, canonical, mapping

DEFERRED = "2400 Deferred Revenue"
REVENUE = "4000 Subscription Revenue"
AR = "1200 Accounts Receivable"
FUNCTIONAL = {code: entity.functional_currency for code, entity in mapping().legal_entities.items()}
SAMPLES = (
    "stripe_customer_created",
    "stripe_customer_created_jpy_us",
    "stripe_invoice_finalized",
    "stripe_invoice_finalized_jpy_us",
    "stripe_invoice_payment_paid",
    "stripe_invoice_payment_paid_jpy_us",
)


def posted_ledger() -> PostingHarness:
    """Real accounting output: USD and a JPY invoice of the USD entity (translated), their payments, then a
    recognition release and a credit memo taking deferred revenue off, in two months."""
    harness = PostingHarness()
    for sample in SAMPLES:
        assert harness.service.post(canonical(sample)).status == "POSTED"
    invoice = next(harness.erp.list_documents(DocumentKind.INVOICE))
    harness.erp.create_document(
        document(invoice, DocumentKind.RECOGNITION, "-recognition-2026-12", 1000, date(2026, 12, 31))
    )
    harness.erp.create_document(document(invoice, DocumentKind.CREDIT_MEMO, "-cm-1", 250, date(2026, 12, 5)))
    return harness


def document(invoice: ErpDocument, kind: DocumentKind, suffix: str, amount: int, posted: date) -> ErpDocument:
    credit_side = REVENUE if kind is DocumentKind.RECOGNITION else AR
    return ErpDocument(
        external_id=invoice.external_id + suffix,
        kind=kind,
        legal_entity=invoice.legal_entity,
        subsidiary=invoice.subsidiary,
        customer_external_id=invoice.customer_external_id,
        currency="USD",
        posting_date=posted,
        total=amount,
        applies_to=(invoice.external_id,),
        journal=(
            JournalLine(account=DEFERRED, currency="USD", debit=amount),
            JournalLine(account=credit_side, currency="USD", credit=amount),
        ),
        source_event_id="evt_test",
    )


def fold(deltas: Iterable[BalanceDelta]) -> dict[tuple[str, str], dict[str, object]]:
    """The table after applying `deltas`: what DynamoDB's ADD and SET do, in memory."""
    table: dict[tuple[str, str], dict[str, object]] = defaultdict(dict)
    for delta in deltas:
        item = table[(delta.pk, delta.sk)]
        item.update(delta.labels)
        for name, amount in delta.amounts.items():
            item[name] = int(item.get(name, 0)) + amount  # type: ignore[call-overload]
    return table


def all_deltas(documents: Iterable[ErpDocument]) -> list[BalanceDelta]:
    accounts = deferred_revenue_accounts(mapping())
    return [
        delta
        for doc in documents
        for delta in document_deltas(doc, deferred_revenue_accounts=accounts, functional_currencies=FUNCTIONAL)
    ]


def tb_items(table: dict[tuple[str, str], dict[str, object]], basis: str) -> list[TrialBalanceItem]:
    return [
        TrialBalanceItem(
            legal_entity=str(item["legal_entity"]),
            account=str(item["account"]),
            currency=str(item["currency"]),
            period=str(item["period"]),
            debit=int(item.get("debit", 0)),  # type: ignore[call-overload]
            credit=int(item.get("credit", 0)),  # type: ignore[call-overload]
        )
        for (pk, _), item in table.items()
        if pk.startswith("TB#") and pk.endswith("#" + basis)
    ]


def rf_items(table: dict[tuple[str, str], dict[str, object]]) -> list[RollForwardItem]:
    return [
        RollForwardItem(
            legal_entity=str(item["legal_entity"]),
            currency=str(item["currency"]),
            period=str(item["period"]),
            billed=int(item.get("billed", 0)),  # type: ignore[call-overload]
            recognised=int(item.get("recognised", 0)),  # type: ignore[call-overload]
            credited=int(item.get("credited", 0)),  # type: ignore[call-overload]
            credited_by_kind={
                k.removeprefix("credited_"): int(v) for k, v in item.items() if k.startswith("credited_")
            },  # type: ignore[call-overload]
        )
        for (pk, _), item in table.items()
        if pk.startswith("DR#")
    ]


@pytest.mark.parametrize("basis", ["transaction", "functional"])
@pytest.mark.parametrize("as_of", [None, "2026-08", "2026-11", "2026-12"])
def test_running_trial_balance_equals_the_scanned_one(basis: str, as_of: str | None) -> None:
    # GIVEN real posted documents in three months, one of them translated from JPY
    documents = list(posted_ledger().erp.posted_documents())
    assert {doc.posting_date.strftime("%Y-%m") for doc in documents} == {"2026-08", "2026-11", "2026-12"}
    # WHEN their deltas are folded into balances and read as of a month end
    running = trial_balance_as_of(tb_items(fold(all_deltas(documents)), basis), basis=basis, as_of=as_of)  # type: ignore[arg-type]
    # THEN rows and checks equal the scan of the ledger through the last day of that month
    month_end = {None: None, "2026-08": date(2026, 8, 31), "2026-11": date(2026, 11, 30), "2026-12": date(2026, 12, 31)}
    scanned = entity_trial_balance(documents, basis=basis, as_of=month_end[as_of], functional_currencies=FUNCTIONAL)  # type: ignore[arg-type]
    assert running.rows == scanned.rows
    assert running.checks == scanned.checks
    assert running.balanced


def test_the_functional_basis_adds_translated_amounts_in_the_entity_currency() -> None:
    # GIVEN the JPY invoice of the USD entity
    documents = list(posted_ledger().erp.posted_documents())
    jpy = next(doc for doc in documents if doc.currency == "JPY" and doc.kind is DocumentKind.INVOICE)
    # WHEN its deltas are computed
    deltas = all_deltas([jpy])
    # THEN the transaction rows are in JPY and the functional rows in USD, each balanced
    receivable = jpy.journal[0]
    by_key = {(d.pk, d.sk): d.amounts for d in deltas}
    assert by_key[("TB#US01#transaction", f"2026-08#JPY#{receivable.account}")]["debit"] == receivable.debit
    assert by_key[("TB#US01#functional", f"2026-08#USD#{receivable.account}")]["debit"] == receivable.functional_debit
    assert receivable.functional_debit not in (0, receivable.debit)


def test_running_roll_forward_equals_the_scanned_one() -> None:
    # GIVEN invoices that defer revenue, a recognition release and a credit memo
    harness = posted_ledger()
    documents = list(harness.erp.posted_documents())
    # WHEN folded and read without a period
    rows = roll_forward(rf_items(fold(all_deltas(documents))))
    # THEN they equal ops.revenue's scan-based roll-forward, to the minor unit
    scanned = deferred_roll_forward(harness.erp, deferred_revenue_accounts(mapping()))  # type: ignore[arg-type]
    assert rows == scanned
    usd = next(row for row in rows if row["currency"] == "USD")
    assert usd["recognised"] == 1000 and usd["credited"] == 250 and usd["credited_by_kind"] == {"credit_memo": 250}


def test_a_period_roll_forward_opens_with_every_earlier_month() -> None:
    # GIVEN the same documents
    documents = list(posted_ledger().erp.posted_documents())
    items = rf_items(fold(all_deltas(documents)))
    # WHEN read for December
    december = {row["currency"]: row for row in roll_forward(items, period="2026-12")}
    november = {row["currency"]: row for row in roll_forward(items, period="2026-11")}
    # THEN December opens at November's closing and moves by the release and the credit memo only
    usd = december["USD"]
    assert usd["opening"] == november["USD"]["closing"]
    assert (usd["billed"], usd["recognised"], usd["credited"]) == (0, 1000, 250)
    assert usd["closing"] == usd["opening"] - 1250  # type: ignore[operator]


def test_document_counts_and_unapplied_payments() -> None:
    # GIVEN a payment applied to an invoice and one applied to nothing
    documents = list(posted_ledger().erp.posted_documents())
    payment = next(doc for doc in documents if doc.kind is DocumentKind.PAYMENT and doc.currency == "USD")
    loose = payment.model_copy(update={"external_id": "stripe-payment-loose", "applies_to": ()})
    # WHEN both add to the balances
    table = fold(all_deltas([payment, loose]))
    # THEN one count item holds both and only the loose one is unapplied
    item = table[("DOCS#US01", "2026-11#payment#USD")]
    assert (item["documents"], item["total"], item["unapplied"]) == (2, 2 * payment.total, payment.total)


def test_each_key_appears_once_per_document_and_chunks_are_deterministic() -> None:
    # GIVEN a document whose journal hits the same account on several lines
    documents = list(posted_ledger().erp.posted_documents())
    invoice = next(doc for doc in documents if doc.kind is DocumentKind.INVOICE and doc.currency == "USD")
    doubled = invoice.model_copy(
        update={"journal": invoice.journal + tuple(line.reversed() for line in invoice.journal) + invoice.journal}
    )
    # WHEN its deltas are computed twice
    first, second = all_deltas([doubled]), all_deltas([doubled])
    # THEN lines are aggregated per key (the journal netted once), in the same order, split the same way
    keys = [(d.pk, d.sk) for d in first]
    assert len(keys) == len(set(keys)) and keys == sorted(keys)
    assert first == second
    assert [len(part) for part in chunks(tuple(first), 3)] == [3] * (len(first) // 3) + (
        [len(first) % 3] if len(first) % 3 else []
    )
