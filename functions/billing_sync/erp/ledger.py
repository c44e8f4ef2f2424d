"""The embedded double-entry ledger: the default ERP, stored in DynamoDB.

Documents are keyed by external id and created with a conditional put, so posting the same
document twice returns the first one (upsert semantics, as NetSuite's `eid:` upserts behave).
Each document stores its balanced journal; the trial balance is derived from the journals.

A document never changes once created (a void or a release is another document), so the client keeps
the documents it created or read (up to `KNOWN_DOCUMENTS_BYTES`) and answers from that copy: a payment
posted by the instance that posted its invoice, as Stripe's invoice and its automatic charge usually
are, reads nothing. Only documents that exist are kept; a missing one is read again every time.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from billing_sync.aws.errors import error_code, is_transient, item_on_condition_failure, request_id
from billing_sync.domain.errors import ErpRejectedError, ErpTransientError
from billing_sync.domain.journal import (
    DocumentKind,
    DocumentLine,
    ErpCustomer,
    ErpDocument,
    ErpRef,
    JournalLine,
    TrialBalanceRow,
    imbalances,
    trial_balance,
)
from billing_sync.erp import APPLIED_TO_INDEX, BY_REFERENCE_INDEX

_DOCUMENT = "DOC#"

_CUSTOMER = "CUSTOMER#"

KNOWN_DOCUMENTS_BYTES = 16 * 1024 * 1024
"""About this much of the function's memory holds known documents, the least recently used dropped first
(an item may be up to 400 KB; most are a few KB)."""


def ledger_document_id(external_id: str) -> str:
    return "LDG-" + hashlib.sha256(external_id.encode()).hexdigest()[:16].upper()


def _translate(exc: BotoCoreError | ClientError, action: str) -> Exception:
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code, rid = error_code(exc), request_id(exc)
    else:
        status, code, rid = None, type(exc).__name__, None
    error_class = ErpTransientError if is_transient(exc) else ErpRejectedError
    return error_class(f"ledger could not {action}: {exc}", status=status, erp_code=code, request_id=rid)


class DynamoLedgerErpClient:
    """Implements ErpClient on a DynamoDB table (partition key `pk`)."""

    def __init__(self, client: Any, table_name: str, *, known_bytes: int = KNOWN_DOCUMENTS_BYTES) -> None:
        self._client = client
        self._table = table_name
        self._known: OrderedDict[str, tuple[int, dict[str, Any]]] = OrderedDict()
        self._known_budget = known_bytes
        self._known_bytes = 0
        self._known_lock = threading.Lock()

    def _remember(self, external_id: str, item: dict[str, Any]) -> None:
        size = _approximate_bytes(item)
        if size > self._known_budget:
            return
        with self._known_lock:
            if (held := self._known.pop(external_id, None)) is not None:
                self._known_bytes -= held[0]
            self._known[external_id] = (size, item)
            self._known_bytes += size
            while self._known_bytes > self._known_budget:
                self._known_bytes -= self._known.popitem(last=False)[1][0]

    def _recalled(self, external_id: str) -> dict[str, Any] | None:
        with self._known_lock:
            held = self._known.get(external_id)
            if held is None:
                return None
            self._known.move_to_end(external_id)
            return held[1]

    def create_document(self, document: ErpDocument) -> ErpRef:
        document_id = ledger_document_id(document.external_id)
        item = _document_item(document, document_id)
        try:
            self._client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(pk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                if existing := item_on_condition_failure(exc):
                    self._remember(document.external_id, existing)
                return _ref(document.external_id, existing or item, created=False)
            raise _translate(exc, f"create {document.external_id}") from exc
        except BotoCoreError as exc:
            raise _translate(exc, f"create {document.external_id}") from exc
        self._remember(document.external_id, item)
        return _ref(document.external_id, item, created=True)

    def applied_total(self, external_id: str, kind: DocumentKind) -> int:
        """Sums the documents of `kind` applied to `external_id` through the `AppliedTo` index (one query)."""
        try:
            pages = self._client.get_paginator("query").paginate(
                TableName=self._table,
                IndexName=APPLIED_TO_INDEX,
                KeyConditionExpression="applied_to = :target",
                FilterExpression="kind = :kind",
                ExpressionAttributeValues={":target": {"S": external_id}, ":kind": {"S": kind.value}},
            )
            return sum(int(item["total"]["N"]) for page in pages for item in page["Items"])
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc, f"sum the {kind.value} documents applied to {external_id}") from exc

    def applied_to(self, external_id: str) -> list[ErpDocument]:
        """Every document applied to `external_id` (payments, credit memos, voids, releases of an invoice)."""
        try:
            pages = self._client.get_paginator("query").paginate(
                TableName=self._table,
                IndexName=APPLIED_TO_INDEX,
                KeyConditionExpression="applied_to = :target",
                ExpressionAttributeValues={":target": {"S": external_id}},
            )
            keys = [item["pk"]["S"].removeprefix(_DOCUMENT) for page in pages for item in page["Items"]]
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc, f"list the documents applied to {external_id}") from exc
        return [document for key in keys if (document := self.get_document(key)) is not None]

    def list_documents(self, kind: DocumentKind) -> Iterator[ErpDocument]:
        """Every posted document of `kind` (a scan: for the scheduled jobs and reports, not the hot path)."""
        try:
            for page in self._client.get_paginator("scan").paginate(
                TableName=self._table,
                FilterExpression="begins_with(pk, :doc) AND kind = :kind",
                ExpressionAttributeValues={":doc": {"S": _DOCUMENT}, ":kind": {"S": kind.value}},
                ConsistentRead=True,
            ):
                for item in page["Items"]:
                    yield _document(item["pk"]["S"].removeprefix(_DOCUMENT), item)
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc, f"list {kind.value} documents") from exc

    def find_document(self, external_id: str) -> ErpRef | None:
        # The whole item, not a projection: a read costs the same units either way, and the copy kept
        # answers a later get_document too.
        item = self._document_item(external_id, action=f"look up {external_id}")
        return None if item is None else _ref(external_id, item, created=False)

    def find_by_reference(self, reference: str) -> ErpRef | None:
        """Through the sparse `ByReference` index (eventually consistent: a refund's saga looks again)."""
        try:
            items = self._client.query(
                TableName=self._table,
                IndexName=BY_REFERENCE_INDEX,
                KeyConditionExpression="#reference = :reference",
                ExpressionAttributeNames={"#reference": "reference"},
                ExpressionAttributeValues={":reference": {"S": reference}},
            )["Items"]
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc, f"look up {reference}") from exc
        if not items:
            return None
        return _ref(items[0]["pk"]["S"].removeprefix(_DOCUMENT), items[0], created=False)

    def get_document(self, external_id: str) -> ErpDocument | None:
        item = self._document_item(external_id, action=f"read {external_id}")
        return None if item is None else _document(external_id, item)

    def _document_item(self, external_id: str, *, action: str) -> dict[str, Any] | None:
        if (known := self._recalled(external_id)) is not None:
            return known
        try:
            item = self._get_item(external_id)
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc, action) from exc
        if item is not None:
            self._remember(external_id, item)
        return item

    def _get_item(self, external_id: str) -> dict[str, Any] | None:
        key = {"pk": {"S": _DOCUMENT + external_id}}
        return self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True).get("Item")

    def upsert_customer(self, customer: ErpCustomer) -> ErpRef:
        document_id = "CUS-" + hashlib.sha256(customer.external_id.encode()).hexdigest()[:12].upper()
        item: dict[str, Any] = {
            "pk": {"S": _CUSTOMER + customer.external_id},
            "document_id": {"S": document_id},
            "subsidiary": {"S": customer.subsidiary},
        }
        for name in ("name", "email", "currency"):
            value = getattr(customer, name)
            if value:
                item[name] = {"S": value}
        try:
            self._client.put_item(TableName=self._table, Item=item)
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc, f"upsert customer {customer.external_id}") from exc
        return ErpRef(external_id=customer.external_id, document_id=document_id, created=True)

    # ---- reading the books (reports, reconciliation, the local runtime) ----

    def journals(self) -> Iterator[tuple[str, tuple[JournalLine, ...]]]:
        """(document id, journal) for every posted document."""
        paginator = self._client.get_paginator("scan")
        for page in paginator.paginate(
            TableName=self._table,
            FilterExpression="begins_with(pk, :doc)",
            ExpressionAttributeValues={":doc": {"S": _DOCUMENT}},
            ConsistentRead=True,
        ):
            for item in page["Items"]:
                yield item["document_id"]["S"], tuple(_journal_line(v["M"]) for v in item["journal"]["L"])

    def trial_balance(self) -> tuple[int, bool, list[TrialBalanceRow]]:
        """(document count, every journal balances per currency, trial balance rows)."""
        journals = [journal for _, journal in self.journals()]
        balanced = all(not imbalances(journal) for journal in journals)
        return len(journals), balanced, trial_balance(journals)

    def posted_documents(self, legal_entity: str | None = None) -> Iterator[ErpDocument]:
        """Every posted document (of `legal_entity`), whole (a scan: for reports and month-end jobs)."""
        condition, values = "begins_with(pk, :doc)", {":doc": {"S": _DOCUMENT}}
        if legal_entity is not None:
            condition += " AND legal_entity = :entity"
            values[":entity"] = {"S": legal_entity}
        try:
            for page in self._client.get_paginator("scan").paginate(
                TableName=self._table,
                FilterExpression=condition,
                ExpressionAttributeValues=values,
                ConsistentRead=True,
            ):
                for item in page["Items"]:
                    yield _document(item["pk"]["S"].removeprefix(_DOCUMENT), item)
        except (BotoCoreError, ClientError) as exc:
            raise _translate(exc, f"list the documents of {legal_entity or 'every entity'}") from exc


def _approximate_bytes(item: dict[str, Any]) -> int:
    """An item's weight in memory: its lines' JSON and a fixed share per journal line and attribute."""
    lines = item.get("document_lines", {}).get("S", "")
    return 2048 + 2 * len(lines) + 512 * len(item.get("journal", {}).get("L", []))


def _document_item(document: ErpDocument, document_id: str) -> dict[str, Any]:
    item: dict[str, Any] = {
        "pk": {"S": _DOCUMENT + document.external_id},
        "document_id": {"S": document_id},
        "kind": {"S": document.kind},
        "legal_entity": {"S": document.legal_entity},
        "subsidiary": {"S": document.subsidiary},
        "customer": {"S": document.customer_external_id},
        "currency": {"S": document.currency},
        "posting_date": {"S": document.posting_date.isoformat()},
        "total": {"N": str(document.total)},
        "applies_to": {"L": [{"S": ext} for ext in document.applies_to]},
        "journal": {"L": [_journal_line_item(line) for line in document.journal]},
        "document_lines": {"S": json.dumps([line.model_dump(mode="json") for line in document.lines])},
        "source_event_id": {"S": document.source_event_id},
        "created_at": {"S": datetime.now(UTC).isoformat()},
    }
    if document.memo:
        item["memo"] = {"S": document.memo}
    if document.applies_to:
        item["applied_to"] = {"S": document.applies_to[0]}
    if document.reference:
        item["reference"] = {"S": document.reference}
    if document.document_date:
        item["document_date"] = {"S": document.document_date.isoformat()}
    return item


def _ref(external_id: str, item: dict[str, Any], *, created: bool) -> ErpRef:
    def text(name: str) -> str | None:
        return item.get(name, {}).get("S")

    return ErpRef(
        external_id=external_id,
        document_id=item["document_id"]["S"],
        created=created,
        legal_entity=text("legal_entity"),
        customer_external_id=text("customer"),
        currency=text("currency"),
        total=int(item["total"]["N"]) if "total" in item else None,
        source_event_id=text("source_event_id"),
    )


def _document(external_id: str, item: dict[str, Any]) -> ErpDocument:
    return ErpDocument(
        external_id=external_id,
        kind=DocumentKind(item["kind"]["S"]),
        legal_entity=item["legal_entity"]["S"],
        subsidiary=item["subsidiary"]["S"],
        customer_external_id=item["customer"]["S"],
        currency=item["currency"]["S"],
        posting_date=date.fromisoformat(item["posting_date"]["S"]),
        total=int(item["total"]["N"]),
        lines=tuple(DocumentLine.model_validate(line) for line in json.loads(item["document_lines"]["S"])),
        applies_to=tuple(value["S"] for value in item.get("applies_to", {}).get("L", [])),
        journal=tuple(_journal_line(value["M"]) for value in item["journal"]["L"]),
        source_event_id=item["source_event_id"]["S"],
        memo=item.get("memo", {}).get("S"),
        reference=item.get("reference", {}).get("S"),
        document_date=date.fromisoformat(item["document_date"]["S"]) if "document_date" in item else None,
    )


def _journal_line_item(line: JournalLine) -> dict[str, Any]:
    item = {
        "account": {"S": line.account},
        "currency": {"S": line.currency},
        "debit": {"N": str(line.debit)},
        "credit": {"N": str(line.credit)},
    }
    if line.memo:
        item["memo"] = {"S": line.memo}
    if line.functional_currency:
        item["functional_currency"] = {"S": line.functional_currency}
        item["functional_debit"] = {"N": str(line.functional_debit)}
        item["functional_credit"] = {"N": str(line.functional_credit)}
    if line.rate is not None:
        item["rate"] = {"S": str(line.rate)}
    if line.rate_source:
        item["rate_source"] = {"S": line.rate_source}
    if line.rate_date:
        item["rate_date"] = {"S": line.rate_date.isoformat()}
    return {"M": item}


def _journal_line(item: dict[str, Any]) -> JournalLine:
    rate_date = item.get("rate_date", {}).get("S")
    return JournalLine(
        account=item["account"]["S"],
        currency=item["currency"]["S"],
        debit=int(item["debit"]["N"]),
        credit=int(item["credit"]["N"]),
        memo=item.get("memo", {}).get("S"),
        functional_currency=item.get("functional_currency", {}).get("S"),
        functional_debit=int(item.get("functional_debit", {}).get("N", "0")),
        functional_credit=int(item.get("functional_credit", {}).get("N", "0")),
        rate=Decimal(item["rate"]["S"]) if "rate" in item else None,
        rate_source=item.get("rate_source", {}).get("S"),
        rate_date=date.fromisoformat(rate_date) if rate_date else None,
    )
