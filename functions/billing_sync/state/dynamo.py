"""DynamoDB adapters for lineage (with the posting claim) and master data."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError

from billing_sync.aws_errors import error_code, item_on_condition_failure
from billing_sync.domain.errors import ExceptionCategory
from billing_sync.domain.events import CustomerUpserted
from billing_sync.domain.lineage import EventRef, LineageRecord, LineageStatus
from billing_sync.domain.ports import Claim, ClaimState

_CHECKPOINT_PREFIX = "cp_"


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _ts(moment: datetime) -> dict[str, str]:
    # One fixed format keeps string comparison in condition expressions chronological.
    return {"S": moment.astimezone(UTC).isoformat(timespec="microseconds")}


def _optional(item: dict[str, Any], name: str, value: str | None) -> None:
    if value is not None:
        item[name] = _s(value)


class DynamoLineageStore:
    """Lineage records keyed by canonical event id; the claim is a conditional update on the same item."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def claim(self, ref: EventRef, *, now: datetime, lease_until: datetime) -> Claim:
        values: dict[str, Any] = {
            ":claimed": _s(LineageStatus.CLAIMED),
            ":posted": _s(LineageStatus.POSTED),
            ":now": _ts(now),
            ":lease": _ts(lease_until),
            ":zero": {"N": "0"},
            ":one": {"N": "1"},
            ":source": _s(ref.source),
            ":sid": _s(ref.source_event_id),
            ":type": _s(ref.event_type),
            ":received": _ts(ref.received_at),
        }
        sets = [
            "#status = :claimed",
            "lease_until = :lease",
            "last_seen = :now",
            "attempts = if_not_exists(attempts, :zero) + :one",
            "first_seen = if_not_exists(first_seen, :now)",
            "#source = :source",
            "source_event_id = :sid",
            "event_type = :type",
            "cp_received = if_not_exists(cp_received, :received)",
            "cp_claimed = :now",
        ]
        if ref.normalised_at is not None:
            values[":normalised"] = _ts(ref.normalised_at)
            sets.append("cp_normalised = if_not_exists(cp_normalised, :normalised)")
        if ref.raw_ref is not None:
            values[":raw"] = _s(ref.raw_ref)
            sets.append("raw_ref = :raw")
        if ref.source_api_version is not None:
            values[":api_version"] = _s(ref.source_api_version)
            sets.append("source_api_version = :api_version")
        try:
            response = self._client.update_item(
                TableName=self._table,
                Key={"pk": _s(ref.event_id)},
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression=(
                    "attribute_not_exists(pk) OR (#status <> :posted AND #status <> :claimed) "
                    "OR (#status = :claimed AND lease_until < :now)"
                ),
                ExpressionAttributeNames={"#status": "status", "#source": "source"},
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if error_code(exc) != "ConditionalCheckFailedException":
                raise
            held = item_on_condition_failure(exc) or self._get_item(ref.event_id) or {}
            state = ClaimState.ALREADY_POSTED if _str(held, "status") == LineageStatus.POSTED else ClaimState.IN_FLIGHT
            return Claim(
                state=state,
                attempts=int(held.get("attempts", {}).get("N", "0")),
                first_seen=datetime.fromisoformat(_str(held, "first_seen") or now.isoformat()),
                erp_document_ids=tuple(v["S"] for v in held.get("erp_document_ids", {}).get("L", [])),
            )
        item = response["Attributes"]
        return Claim(
            state=ClaimState.CLAIMED,
            attempts=int(item["attempts"]["N"]),
            first_seen=datetime.fromisoformat(item["first_seen"]["S"]),
        )

    def mark_posted(self, event_id: str, *, document_ids: tuple[str, ...], now: datetime) -> None:
        self._client.update_item(
            TableName=self._table,
            Key={"pk": _s(event_id)},
            UpdateExpression=(
                "SET #status = :posted, erp_document_ids = :ids, cp_posted = :now, last_seen = :now "
                "REMOVE lease_until, category, reason"
            ),
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":posted": _s(LineageStatus.POSTED),
                ":ids": {"L": [_s(doc) for doc in document_ids]},
                ":now": _ts(now),
            },
        )

    def mark_failed(
        self, event_id: str, *, status: str, category: ExceptionCategory, reason: str, now: datetime
    ) -> None:
        self._client.update_item(
            TableName=self._table,
            Key={"pk": _s(event_id)},
            UpdateExpression="SET #status = :status, category = :category, reason = :reason, last_seen = :now "
            "REMOVE lease_until",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":status": _s(status),
                ":category": _s(category),
                ":reason": _s(reason),
                ":now": _ts(now),
            },
        )

    def record(self, record: LineageRecord) -> None:
        item: dict[str, Any] = {
            "pk": _s(record.event_id),
            "source": _s(record.source),
            "source_event_id": _s(record.source_event_id),
            "event_type": _s(record.event_type),
            "status": _s(record.status),
            "attempts": {"N": str(record.attempts)},
            "first_seen": _ts(record.first_seen),
            "last_seen": _ts(record.last_seen),
            "erp_document_ids": {"L": [_s(doc) for doc in record.erp_document_ids]},
        }
        _optional(item, "category", record.category)
        _optional(item, "reason", record.reason)
        _optional(item, "raw_ref", record.raw_ref)
        _optional(item, "source_api_version", record.source_api_version)
        for name, moment in record.checkpoints.items():
            item[_CHECKPOINT_PREFIX + name] = _ts(moment)
        self._client.put_item(TableName=self._table, Item=item)

    def get(self, event_id: str) -> LineageRecord | None:
        item = self._get_item(event_id)
        return None if item is None else lineage_record(item)

    def scan(self) -> list[LineageRecord]:
        """Every lineage record (for reports and the local runtime; not on a hot path)."""
        paginator = self._client.get_paginator("scan")
        return [
            lineage_record(item)
            for page in paginator.paginate(TableName=self._table, ConsistentRead=True)
            for item in page["Items"]
        ]

    def _get_item(self, event_id: str) -> dict[str, Any] | None:
        return self._client.get_item(TableName=self._table, Key={"pk": _s(event_id)}, ConsistentRead=True).get("Item")


def _str(item: dict[str, Any], name: str) -> str | None:
    value = item.get(name)
    return value["S"] if value else None


def lineage_record(item: dict[str, Any]) -> LineageRecord:
    return LineageRecord(
        event_id=item["pk"]["S"],
        source=item["source"]["S"],
        source_event_id=item["source_event_id"]["S"],
        event_type=item["event_type"]["S"],
        status=LineageStatus(item["status"]["S"]),
        category=_str(item, "category"),
        reason=_str(item, "reason"),
        attempts=int(item.get("attempts", {}).get("N", "0")),
        first_seen=item["first_seen"]["S"],
        last_seen=item["last_seen"]["S"],
        raw_ref=_str(item, "raw_ref"),
        source_api_version=_str(item, "source_api_version"),
        erp_document_ids=tuple(v["S"] for v in item.get("erp_document_ids", {}).get("L", [])),
        checkpoints={
            name.removeprefix(_CHECKPOINT_PREFIX): value["S"]
            for name, value in item.items()
            if name.startswith(_CHECKPOINT_PREFIX)
        },
    )


class DynamoMasterDataStore:
    """Customers synchronised from billing sources; last writer by source time wins."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    @staticmethod
    def _key(source: str, customer_id: str) -> dict[str, Any]:
        return {"pk": _s(f"CUSTOMER#{source}#{customer_id}")}

    def upsert_customer(self, *, source: str, customer: CustomerUpserted, legal_entity: str, as_of: datetime) -> bool:
        item: dict[str, Any] = {
            **self._key(source, customer.customer_id),
            "legal_entity": _s(legal_entity),
            "as_of": _ts(as_of),
            "tax_exempt": _s(customer.tax_exempt),
        }
        _optional(item, "name", customer.name)
        _optional(item, "email", customer.email)
        _optional(item, "currency", customer.default_currency)
        _optional(item, "country", customer.country)
        try:
            self._client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression="attribute_not_exists(pk) OR as_of <= :as_of",
                ExpressionAttributeValues={":as_of": _ts(as_of)},
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def customer_exists(self, *, source: str, customer_id: str) -> bool:
        response = self._client.get_item(
            TableName=self._table, Key=self._key(source, customer_id), ProjectionExpression="pk", ConsistentRead=True
        )
        return "Item" in response
