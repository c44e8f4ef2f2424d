"""Composition root of the lineage API, and the trail it answers with (`billing-sync lineage show` reads the same).

A trail goes from the raw event (its archive reference) to its lineage record (status, attempts, reason,
redrives) to the ERP documents posted from it (external ids, ids, kinds, totals) and, where a reconciliation
report covers a document's entity and period, that document's reconciliation class.

Lookups: by event, the lineage record is one read; its ERP documents are found by a scan of the ERP's posted
documents that stops once every document the lineage records is found (the ledger has no index by source event).
By document, every external id the source document can have is read directly (one read each), then what is
applied to them (one index query each), then each one's event.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import cache
from typing import Any, Protocol

from billing_sync.domain.accounting import external_ids
from billing_sync.domain.events import derive_event_id
from billing_sync.domain.journal import ErpDocument
from billing_sync.domain.lineage import LineageRecord
from billing_sync.domain.ports import ErpClient

REPORTS_PREFIX = "reconciliation/reports"

_CANONICAL_EVENT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_STRIPE_EVENT_ID = re.compile(r"^evt_[A-Za-z0-9]{1,250}$")
_SOURCE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
_DOCUMENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,199}$")

# Every ERP document a source document id can be posted as, keyed by what the trail calls it.
_EXTERNAL_IDS: dict[str, Callable[[str, str], str]] = {
    "invoice": external_ids.invoice_external_id,
    "invoice_void": external_ids.void_external_id,
    "write_off": external_ids.write_off_external_id,
    "payment": external_ids.payment_external_id,
    "credit_note": external_ids.credit_note_external_id,
    "refund": external_ids.refund_external_id,
    "refund_reversal": external_ids.refund_reversal_external_id,
    "refund_credit_memo": external_ids.refund_credit_memo_external_id,
    "fee": external_ids.fee_external_id,
    "payout": external_ids.payout_external_id,
    "payout_reversal": external_ids.payout_reversal_external_id,
    "dispute": external_ids.dispute_external_id,
    "dispute_closure": external_ids.dispute_closure_external_id,
}


class MalformedIdError(ValueError):
    """An id that cannot name an event or a document (the API answers 400)."""


class LineageReader(Protocol):
    def get(self, event_id: str) -> LineageRecord | None: ...


class ReconciliationStatus(Protocol):
    def status(self, external_id: str, *, legal_entity: str, period: str) -> dict[str, Any] | None:
        """The document's class in the latest report covering its entity and period, or None without a report."""
        ...


def canonical_event_id(value: str) -> str:
    """The canonical event id for a canonical id or a Stripe `evt_…` id; raises MalformedIdError."""
    if _CANONICAL_EVENT_ID.match(value):
        return value
    if _STRIPE_EVENT_ID.match(value):
        return derive_event_id("stripe", value)
    raise MalformedIdError(f"{value[:80]!r} is neither a canonical event id (uuid) nor a Stripe event id (evt_...)")


def check_document(source: str, document_id: str) -> tuple[str, str]:
    """Raises MalformedIdError unless `source` and `document_id` can name a billing document."""
    if not _SOURCE.match(source):
        raise MalformedIdError(f"{source[:40]!r} is not a source name (lowercase letters, digits, _)")
    if not _DOCUMENT_ID.match(document_id):
        raise MalformedIdError(f"{document_id[:80]!r} is not a document id (letters, digits, _ and -)")
    return source, document_id


class S3ReconciliationStatus:
    """Reads the reconciliation reports the scheduled function writes (`<prefix>/<period>/...json`)."""

    def __init__(self, client: Any, bucket: str, prefix: str = REPORTS_PREFIX) -> None:
        self._client = client
        self._bucket = bucket
        self._prefix = prefix.strip("/")
        self._reports: dict[str, dict[str, Any] | None] = {}

    def status(self, external_id: str, *, legal_entity: str, period: str) -> dict[str, Any] | None:
        for stem in (f"reconciliation-{period}-{legal_entity}", f"reconciliation-{period}"):
            key = f"{self._prefix}/{period}/{stem}.json"
            report = self._report(key)
            if report is None or report.get("entity") not in (None, legal_entity):
                continue
            for difference in report.get("differences", ()):
                if difference.get("external_id") == external_id:
                    return {
                        "class": difference.get("classification"),
                        "detail": difference.get("detail"),
                        "report": f"s3://{self._bucket}/{key}",
                        "generated_at": report.get("generated_at"),
                    }
            return {
                "class": "matched",
                "report": f"s3://{self._bucket}/{key}",
                "generated_at": report.get("generated_at"),
            }
        return None

    def _report(self, key: str) -> dict[str, Any] | None:
        if key not in self._reports:
            from botocore.exceptions import ClientError

            try:
                body = self._client.get_object(Bucket=self._bucket, Key=key)["Body"].read()
                self._reports[key] = json.loads(body)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404", "AccessDenied"):
                    raise
                self._reports[key] = None
        return self._reports[key]


class LineageTrails:
    """Builds the trail for an event or a billing document. Store errors propagate (the API answers 503)."""

    def __init__(self, *, lineage: LineageReader, erp: ErpClient, reports: ReconciliationStatus | None = None):
        self._lineage = lineage
        self._erp = erp
        self._reports = reports

    def for_event(self, event_id: str) -> dict[str, Any] | None:
        """The trail of one event (canonical or `evt_…` id), or None if lineage does not know it."""
        canonical = canonical_event_id(event_id)
        record = self._lineage.get(canonical)
        if record is None:
            return None
        documents = self._documents_of_event(canonical, expected=len(record.erp_document_ids))
        return {
            "event": _event(record),
            "lineage": _lineage(record),
            "erp_documents": [self._document(doc) for doc in documents],
        }

    def for_document(self, source: str, document_id: str) -> dict[str, Any] | None:
        """The trail of one billing document: its ERP documents and the events they came from, or None."""
        check_document(source, document_id)
        found: dict[str, ErpDocument] = {}
        for build in _EXTERNAL_IDS.values():
            document = self._erp.get_document(build(source, document_id))
            if document is not None:
                found[document.external_id] = document
        for external_id in list(found):
            for applied in self._erp.applied_to(external_id):
                found.setdefault(applied.external_id, applied)
        if not found:
            return None
        events: list[dict[str, Any]] = []
        for event_id in dict.fromkeys(doc.source_event_id for doc in found.values()):
            record = self._lineage.get(event_id)
            events.append(
                {"event": _event(record), "lineage": _lineage(record)}
                if record is not None
                else {"event": {"event_id": event_id}, "lineage": None}
            )
        ordered = sorted(found.values(), key=lambda doc: (doc.posting_date, doc.external_id))
        return {
            "document": {"source": source, "document_id": document_id},
            "erp_documents": [self._document(doc) for doc in ordered],
            "events": events,
        }

    def _documents_of_event(self, event_id: str, *, expected: int) -> list[ErpDocument]:
        if expected == 0:
            return []
        found: list[ErpDocument] = []
        for document in self._erp.posted_documents():
            if document.source_event_id == event_id:
                found.append(document)
                if len(found) >= expected:
                    break
        return found

    def _document(self, document: ErpDocument) -> dict[str, Any]:
        ref = self._erp.find_document(document.external_id)
        period = document.posting_date.strftime("%Y-%m")
        reconciliation = (
            self._reports.status(document.external_id, legal_entity=document.legal_entity, period=period)
            if self._reports is not None
            else None
        )
        return {
            "external_id": document.external_id,
            "erp_document_id": ref.document_id if ref is not None else None,
            "kind": document.kind.value,
            "legal_entity": document.legal_entity,
            "posting_date": document.posting_date.isoformat(),
            "period": period,
            "currency": document.currency,
            "total": document.total,
            "lines": [
                {"item": line.item, "source_line_id": line.source_line_id, "amount": line.amount}
                for line in document.lines
            ],
            "applies_to": list(document.applies_to),
            "source_event_id": document.source_event_id,
            "reconciliation": reconciliation,
        }


def _event(record: LineageRecord) -> dict[str, Any]:
    return {
        "event_id": record.event_id,
        "source": record.source,
        "source_event_id": record.source_event_id,
        "event_type": record.event_type,
        "source_api_version": record.source_api_version,
        "raw_ref": record.raw_ref,
        "raw_bodies": [body.model_dump(mode="json") for body in record.raw_bodies],
    }


def _lineage(record: LineageRecord) -> dict[str, Any]:
    return {
        "status": record.status.value,
        "category": record.category.value if record.category is not None else None,
        "reason": record.reason,
        "attempts": record.attempts,
        "first_seen": record.first_seen.isoformat(),
        "last_seen": record.last_seen.isoformat(),
        "checkpoints": {name: moment.isoformat() for name, moment in sorted(record.checkpoints.items())},
        "redrives": list(record.redrives),
        "erp_document_ids": list(record.erp_document_ids),
    }


def trails_for(
    *, dynamodb: Any, lineage_table: str, ledger_table: str, s3: Any = None, bucket: str | None = None
) -> LineageTrails:
    """Trails over the stack's tables with the given clients (the lineage API and the operator CLI)."""
    from billing_sync.erp.ledger import DynamoLedgerErpClient
    from billing_sync.state.dynamo import DynamoLineageStore

    return LineageTrails(
        lineage=DynamoLineageStore(dynamodb, lineage_table),
        erp=DynamoLedgerErpClient(dynamodb, ledger_table),
        reports=S3ReconciliationStatus(s3, bucket) if s3 is not None and bucket else None,
    )


@cache
def lineage_trails() -> LineageTrails:
    from billing_sync.composition.aws import aws_client
    from billing_sync.settings import lineage_api_settings

    settings = lineage_api_settings()
    return trails_for(
        dynamodb=aws_client("dynamodb"),
        lineage_table=settings.lineage_table_name,
        ledger_table=settings.ledger_table_name,
        s3=aws_client("s3") if settings.reconciliation_bucket else None,
        bucket=settings.reconciliation_bucket,
    )
