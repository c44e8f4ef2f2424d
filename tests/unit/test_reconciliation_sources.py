"""The extract builders on the sample events: Stripe's list API (an in-memory reader), the ERP (the in-memory
ERP holding what posting books for those events) and lineage, through the engine."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import billing_sync
from billing_sync.domain.accounting.invoices import invoice_document
from billing_sync.domain.accounting.payments import payment_document
from billing_sync.domain.events import FinanceEvent
from billing_sync.domain.journal import ErpDocument
from billing_sync.domain.lineage import LineageRecord, LineageStatus
from billing_sync.domain.mapping import AccountMapping
from billing_sync.domain.ports import BalanceTransaction
from billing_sync.erp.ledger import ledger_document_id
from billing_sync.reconciliation.engine import Reconciliation, reconcile
from billing_sync.reconciliation.extracts import Extracts, write_extracts
from billing_sync.reconciliation.sources import build_extracts, list_window, period_bounds
from billing_sync.sources.stripe import StripeNormaliser
from tests.fakes.erp import InMemoryErpClient

EVENTS = Path(__file__).resolve().parents[2] / "events"
MAPPING = AccountMapping.model_validate_json(
    (Path(billing_sync.__file__).parent / "config" / "account_mapping.json").read_bytes()
)
INVOICE = "in_1QvDDlNx4RkL2mQejBTD4pmw"  # Acme's November invoice, 416.23 USD, paid
UNDELIVERED = "in_1QzUndNx4RkL2mQeNvrD3lvR"  # in Stripe's list API, never delivered as an event
COLLECTION_OF = {"invoice": "invoices", "invoice_payment": "invoice_payments", "credit_note": "credit_notes"}
COLLECTION_OF |= {"refund": "refunds", "balance_transaction": "balance_transactions"}


class ListApi:
    """Stripe's list API over a set of objects, in memory (the double serves the same over HTTP)."""

    def __init__(self, objects: list[dict[str, Any]]) -> None:
        self.objects = objects

    def list_created(self, collection: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        low, high = start.timestamp(), end.timestamp()
        return [
            copy.deepcopy(found)
            for found in self.objects
            if COLLECTION_OF[found["object"]] == collection and low <= found["created"] < high
        ]

    def balance_transaction(self, balance_transaction_id: str) -> BalanceTransaction | None:
        return None

    def charge_balance_transaction(self, charge_id: str) -> BalanceTransaction | None:
        return None

    def payout_balance_transactions(self, payout_id: str) -> list[BalanceTransaction] | None:
        return None

    def invoice_lines(self, invoice_id: str) -> list[dict[str, Any]] | None:
        return None


def sample(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))


def listed(object_id: str) -> dict[str, Any]:
    documents = json.loads((EVENTS / "stripe_api" / "billing_documents.json").read_text(encoding="utf-8"))
    return next(found for found in documents if found["id"] == object_id)


def normalise(payload: dict[str, Any]) -> FinanceEvent:
    event = StripeNormaliser(default_legal_entity="US01").normalise(
        payload, received_at=datetime(2026, 11, 14, tzinfo=UTC), raw_ref=f"s3://raw/stripe/{payload['id']}.json"
    )
    assert event is not None
    return event


def posted(event: FinanceEvent, documents: tuple[ErpDocument, ...]) -> LineageRecord:
    seen = datetime(2026, 11, 14, 12, tzinfo=UTC)
    return LineageRecord(
        event_id=event.event_id,
        source=event.source,
        source_event_id=event.source_event_id,
        event_type=event.event_type,
        raw_ref=event.raw_ref,
        status=LineageStatus.POSTED,
        first_seen=seen,
        last_seen=seen,
        erp_document_ids=tuple(ledger_document_id(document.external_id) for document in documents),
    )


class World:
    """Acme's November invoice and its payment, delivered and posted; the list API as Stripe holds them."""

    def __init__(self) -> None:
        invoice_payload, payment_payload = sample("stripe_invoice_finalized"), sample("stripe_invoice_payment_paid")
        invoice_event, payment_event = normalise(invoice_payload), normalise(payment_payload)
        self.erp = InMemoryErpClient()
        invoice = invoice_document(invoice_event, MAPPING)  # type: ignore[arg-type]
        invoice_ref = self.erp.create_document(invoice)
        payment = payment_document(payment_event, MAPPING, invoice=invoice_ref)  # type: ignore[arg-type]
        self.erp.create_document(payment)
        self.raw = {invoice_event.event_id: invoice_payload, payment_event.event_id: payment_payload}
        self.lineage = [posted(invoice_event, (invoice,)), posted(payment_event, (payment,))]
        self.invoice_event_id, self.payment_event_id = invoice_event.event_id, payment_event.event_id
        self.objects = [
            sample("stripe_invoice_paid")["data"]["object"],  # the invoice as Stripe holds it once paid
            payment_payload["data"]["object"],
            listed(UNDELIVERED),
        ]

    def extracts(self) -> Extracts:
        return build_extracts(
            reader=ListApi(self.objects),
            erp=self.erp,
            lineage=self.lineage,
            raw_event=lambda record: self.raw.get(record.event_id),
            mapping=MAPPING,
            periods=["2026-11"],
            default_legal_entity="US01",
        )

    def reconcile(self, root: Path) -> Reconciliation:
        write_extracts(root, self.extracts())
        return reconcile(root, "2026-11", include_matched=True)


@pytest.fixture
def world() -> Iterator[World]:
    yield World()


def test_billing_side_carries_list_api_amounts_and_lines_marked_with_the_events_received(world: World) -> None:
    # GIVEN an invoice and its payment delivered as events and posted, and an invoice Stripe alone holds
    # WHEN the extracts are built
    extracts = world.extracts()

    # THEN each billing document carries Stripe's figures, in the period of its entity's calendar
    billing = {row.document_id: row for row in extracts.billing_documents}
    invoice = billing[INVOICE]
    assert (invoice.kind, invoice.legal_entity, invoice.period, invoice.currency) == (
        "invoice",
        "US01",
        "2026-11",
        "USD",
    )
    assert (invoice.total, invoice.amount_remaining, invoice.status) == (41623, 0, "paid")
    assert invoice.in_list_api and invoice.in_events and invoice.event_ids == (world.invoice_event_id,)
    payment = billing["inpay_1Z9ZRgNx4RkL2mQexR4OYiGf"]
    assert (payment.kind, payment.total, payment.status, payment.in_events) == ("payment", 41623, "succeeded", True)
    never = billing[UNDELIVERED]
    assert (never.in_list_api, never.in_events, never.event_ids, never.status) == (True, False, (), "open")
    # AND the invoice's lines are what posting books (amount less discounts), line for line
    billing_lines = {row.line_id: row.amount for row in extracts.billing_document_lines if row.document_id == INVOICE}
    erp_lines = {
        row.line_id: row.amount for row in extracts.erp_document_lines if row.external_id == invoice.external_id
    }
    assert billing_lines == erp_lines and len(billing_lines) == 2
    # AND the ERP invoice is paid: its receivable nets to zero with the payment applied
    erp = {row.external_id: row for row in extracts.erp_documents}
    assert (erp[invoice.external_id].status, erp[invoice.external_id].amount_remaining) == ("paid", 0)
    assert erp[invoice.external_id].erp_document_id == ledger_document_id(invoice.external_id)


def test_an_invoice_only_in_the_list_api_is_missing_in_erp(world: World, tmp_path: Path) -> None:
    # GIVEN the world above  WHEN November is reconciled
    result = world.reconcile(tmp_path)

    # THEN the delivered documents match and the one never delivered is missing in the ERP, explained
    assert result.counts["matched"] == 2
    assert result.counts["missing_in_erp"] == 1 and result.difference_count == 1
    (missing,) = result.documents["missing_in_erp"]
    assert (missing.document_id, missing.billing_amount, missing.erp_amount) == (UNDELIVERED, 41623, None)
    assert missing.in_events is False and missing.in_list_api is True
    assert missing.detail == "no ERP document; never delivered as an event"


def test_a_document_posted_without_lineage_is_found(world: World, tmp_path: Path) -> None:
    # GIVEN the payment's lineage record is lost (the ERP holds a document no POSTED lineage records)
    world.lineage = [record for record in world.lineage if record.event_id != world.payment_event_id]

    # WHEN November is reconciled
    result = world.reconcile(tmp_path)

    # THEN the payment is posted_not_in_lineage, traced to its source event
    (orphan,) = result.documents["posted_not_in_lineage"]
    assert orphan.document_id == "inpay_1Z9ZRgNx4RkL2mQexR4OYiGf"
    assert orphan.detail == f"no lineage for event {world.payment_event_id}"
    assert result.counts["matched"] == 1


def test_stripe_paid_but_erp_open_is_a_status_mismatch(world: World, tmp_path: Path) -> None:
    # GIVEN Stripe says the invoice is paid but the ERP never received the payment, nor Stripe's list its object
    payment = "stripe-payment-inpay_1Z9ZRgNx4RkL2mQexR4OYiGf"
    del world.erp.documents[payment]
    world.objects = [found for found in world.objects if found["object"] != "invoice_payment"]

    # WHEN November is reconciled
    result = world.reconcile(tmp_path)

    # THEN the invoice is a status mismatch (paid in billing, open in the ERP with all of it remaining)
    (mismatch,) = result.documents["status_mismatch"]
    assert (mismatch.document_id, mismatch.billing_status, mismatch.erp_status) == (INVOICE, "paid", "open")


def test_a_document_takes_the_period_of_its_entitys_calendar() -> None:
    # GIVEN a JP01 invoice finalised at 20:00 UTC on 31 October: 1 November in Tokyo
    found = copy.deepcopy(sample("stripe_invoice_finalized_jpy")["data"]["object"])
    found["effective_at"] = None
    found["status_transitions"]["finalized_at"] = int(datetime(2026, 10, 31, 20, tzinfo=UTC).timestamp())
    found["created"] = found["status_transitions"]["finalized_at"] - 3600

    # WHEN the billing side is built for November
    extracts = build_extracts(
        reader=ListApi([found]),
        erp=InMemoryErpClient(),
        lineage=[],
        raw_event=lambda record: None,
        mapping=MAPPING,
        periods=["2026-11"],
        default_legal_entity="US01",
    )

    # THEN it belongs to JP01's November, though Stripe created it in October (UTC)
    (row,) = extracts.billing_documents
    assert (row.legal_entity, row.period, row.currency, row.in_events) == ("JP01", "2026-11", "JPY", False)


def test_the_list_window_spans_the_periods_with_a_margin() -> None:
    assert period_bounds("2026-12") == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    start, end = list_window(["2026-04", "2026-11"])
    assert start < datetime(2026, 4, 1, tzinfo=UTC) and end > datetime(2026, 12, 1, tzinfo=UTC)
