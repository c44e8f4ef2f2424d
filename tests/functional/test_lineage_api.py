"""The lineage API handler on moto: the trail for an event and a document, 404 for unknown ids, 400 for malformed."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import pytest

from billing_sync import composition
from billing_sync.domain.errors import ExceptionCategory
from billing_sync.domain.events import derive_event_id
from billing_sync.domain.journal import DocumentKind, DocumentLine, ErpDocument, JournalLine
from billing_sync.domain.lineage import LineageRecord, LineageStatus
from billing_sync.erp.ledger import DynamoLedgerErpClient, ledger_document_id
from billing_sync.handlers import lineage_api
from billing_sync.state.dynamo import DynamoLineageStore
from billing_sync_ops.lambda_runtime import LocalLambdaContext, api_gateway_event
from tests.functional.aws_fixtures import AwsResources

CONTEXT = LocalLambdaContext("lineage-api", 10)
BUCKET = "reconciliation-reports"
INVOICE = "in_1LineageTrail"
INVOICE_EVENT = "evt_1LineageInvoice"
PAYMENT_EVENT = "evt_1LineagePayment"
PARKED_EVENT = "evt_1LineageParked"
AT = datetime(2026, 10, 5, 9, 30, tzinfo=UTC)


def erp_document(external_id: str, kind: DocumentKind, total: int, event: str, **extra: Any) -> ErpDocument:
    return ErpDocument(
        external_id=external_id,
        kind=kind,
        legal_entity="US01",
        subsidiary="US01",
        customer_external_id="stripe-customer-cus_1Lineage",
        currency="USD",
        posting_date=date(2026, 10, 5),
        total=total,
        lines=(DocumentLine(item="SaaS", source_line_id="il_1Lineage01", amount=total),),
        journal=(
            JournalLine(account="1100 Accounts Receivable", currency="USD", debit=total),
            JournalLine(account="4000 Revenue", currency="USD", credit=total),
        ),
        source_event_id=derive_event_id("stripe", event),
        **extra,
    )


def lineage_record(source_event_id: str, status: LineageStatus, **extra: Any) -> LineageRecord:
    return LineageRecord(
        event_id=derive_event_id("stripe", source_event_id),
        source="stripe",
        source_event_id=source_event_id,
        event_type="invoice.issued",
        raw_ref=f"s3://raw-archive/stripe/{source_event_id}.json",
        status=status,
        first_seen=AT,
        last_seen=AT,
        **extra,
    )


@pytest.fixture
def books(aws: AwsResources, monkeypatch: pytest.MonkeyPatch) -> AwsResources:
    # GIVEN an invoice and a payment applied to it in the ledger, their POSTED lineage, one parked event,
    # and a reconciliation report for October that found the payment short
    ledger = DynamoLedgerErpClient(aws.dynamodb, "ledger")
    invoice = erp_document(f"stripe-invoice-{INVOICE}", DocumentKind.INVOICE, 10_000, INVOICE_EVENT)
    payment = erp_document(
        "stripe-payment-inpay_1Lineage",
        DocumentKind.PAYMENT,
        10_000,
        PAYMENT_EVENT,
        applies_to=(invoice.external_id,),
    )
    for document in (invoice, payment):
        ledger.create_document(document)
    store = DynamoLineageStore(aws.dynamodb, "lineage")
    store.record(
        lineage_record(
            INVOICE_EVENT,
            LineageStatus.POSTED,
            attempts=2,
            erp_document_ids=(ledger_document_id(invoice.external_id),),
        )
    )
    store.note_redrive(
        derive_event_id("stripe", INVOICE_EVENT), at=AT, by="arn:aws:iam::1:user/ops", how="category=ERP_UNAVAILABLE"
    )
    store.record(
        lineage_record(
            PAYMENT_EVENT, LineageStatus.POSTED, attempts=1, erp_document_ids=(ledger_document_id(payment.external_id),)
        )
    )
    store.record(
        lineage_record(
            PARKED_EVENT,
            LineageStatus.EXCEPTION,
            attempts=1,
            category=ExceptionCategory.VALIDATION,
            reason="lines do not add up to the total",
        )
    )
    aws.s3.create_bucket(Bucket=BUCKET)
    report = {
        "period": "2026-10",
        "entity": "US01",
        "generated_at": "2026-11-02T06:00:00+00:00",
        "differences": [
            {"external_id": payment.external_id, "classification": "amount_mismatch", "detail": "ERP 100.00 short"}
        ],
    }
    aws.s3.put_object(
        Bucket=BUCKET, Key="reconciliation/reports/2026-10/reconciliation-2026-10-US01.json", Body=json.dumps(report)
    )
    monkeypatch.setenv("LINEAGE_TABLE_NAME", "lineage")
    monkeypatch.setenv("LEDGER_TABLE_NAME", "ledger")
    monkeypatch.setenv("RECONCILIATION_BUCKET", BUCKET)
    composition.reset()
    yield aws
    composition.reset()


def get(path: str, resource: str, **parameters: str) -> tuple[int, dict[str, Any]]:
    event = api_gateway_event(
        method="GET",
        path=path,
        resource=resource,
        path_parameters=parameters,
        headers={"Accept": "application/json"},
        body=b"",
        source_ip="127.0.0.1",
    )
    response = lineage_api.lambda_handler(event, CONTEXT)
    return int(response["statusCode"]), json.loads(response["body"])


def event_lineage(event_id: str) -> tuple[int, dict[str, Any]]:
    return get(f"/events/{event_id}/lineage", "/events/{event_id}/lineage", event_id=event_id)


def document_lineage(source: str, document_id: str) -> tuple[int, dict[str, Any]]:
    return get(
        f"/documents/{source}/{document_id}",
        "/documents/{source}/{document_id}",
        source=source,
        document_id=document_id,
    )


def test_an_events_trail_runs_from_raw_event_to_erp_document_to_reconciliation(books: AwsResources) -> None:
    # WHEN finance asks for the invoice event's lineage by its canonical id
    status, trail = event_lineage(derive_event_id("stripe", INVOICE_EVENT))

    # THEN the trail holds the raw event, its lineage and the ERP invoice with its reconciliation class
    assert status == 200, trail
    assert trail["event"]["raw_ref"] == f"s3://raw-archive/stripe/{INVOICE_EVENT}.json"
    assert trail["event"]["source_event_id"] == INVOICE_EVENT
    assert trail["lineage"]["status"] == "POSTED"
    assert trail["lineage"]["attempts"] == 2
    assert len(trail["lineage"]["redrives"]) == 1
    [document] = trail["erp_documents"]
    assert document["external_id"] == f"stripe-invoice-{INVOICE}"
    assert document["erp_document_id"] == ledger_document_id(document["external_id"])
    assert (document["kind"], document["total"], document["currency"]) == ("invoice", 10_000, "USD")
    assert document["reconciliation"]["class"] == "matched"


def test_a_stripe_event_id_finds_the_same_trail_and_a_parked_event_shows_why(books: AwsResources) -> None:
    # WHEN the parked event is asked for by Stripe's own id
    status, trail = event_lineage(PARKED_EVENT)

    # THEN its lineage says where it stopped and why, and no ERP document came of it
    assert status == 200, trail
    assert trail["lineage"]["status"] == "EXCEPTION"
    assert trail["lineage"]["category"] == "VALIDATION"
    assert trail["lineage"]["reason"] == "lines do not add up to the total"
    assert trail["erp_documents"] == []


def test_a_documents_trail_lists_its_erp_documents_events_and_reconciliation(books: AwsResources) -> None:
    # WHEN finance asks for the Stripe invoice
    status, trail = document_lineage("stripe", INVOICE)

    # THEN the invoice and the payment applied to it come back, each with its event and reconciliation class
    assert status == 200, trail
    classes = {doc["external_id"]: doc["reconciliation"]["class"] for doc in trail["erp_documents"]}
    assert classes == {f"stripe-invoice-{INVOICE}": "matched", "stripe-payment-inpay_1Lineage": "amount_mismatch"}
    assert {entry["event"]["source_event_id"] for entry in trail["events"]} == {INVOICE_EVENT, PAYMENT_EVENT}
    assert {entry["lineage"]["status"] for entry in trail["events"]} == {"POSTED"}


@pytest.mark.parametrize(
    "ask",
    [
        lambda: event_lineage(derive_event_id("stripe", "evt_neverSeen")),
        lambda: event_lineage("evt_neverSeen"),
        lambda: document_lineage("stripe", "in_neverBilled"),
    ],
    ids=["canonical-id", "stripe-id", "document"],
)
def test_unknown_ids_are_404_json(books: AwsResources, ask: Any) -> None:
    # WHEN an id nothing knows is asked for
    status, body = ask()

    # THEN 404 with a JSON error
    assert status == 404
    assert body["error"] == "not_found"


@pytest.mark.parametrize(
    "ask",
    [
        lambda: event_lineage("not-an-event"),
        lambda: event_lineage("evt_bad$id"),
        lambda: document_lineage("Stripe!", INVOICE),
        lambda: document_lineage("stripe", "in_1..%2F"),
    ],
    ids=["free-text", "stripe-id-with-symbol", "source", "document-id"],
)
def test_malformed_ids_are_400_never_5xx(books: AwsResources, ask: Any) -> None:
    # WHEN an id that cannot be an event or a document is asked for
    status, body = ask()

    # THEN 400 with a JSON error saying what is wrong
    assert status == 400, body
    assert body["error"] == "malformed_id"
