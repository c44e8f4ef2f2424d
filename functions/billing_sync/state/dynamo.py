"""DynamoDB adapters for lineage (with the posting claim) and master data."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from billing_sync.aws.errors import error_code, item_on_condition_failure, store_error
from billing_sync.domain.errors import ExceptionCategory
from billing_sync.domain.lineage import ArchivedBody, EventRef, LineageRecord, LineageStatus, archived_body
from billing_sync.domain.ports import Claim, ClaimState, Version, Waiter

if TYPE_CHECKING:
    from billing_sync.domain.events import CustomerUpserted

_CHECKPOINT_PREFIX = "cp_"
_RAW_BODY_PREFIX = "raw_sha256_"  # one attribute per archived body, named by its digest: a resend adds one
_LINEAGE = "lineage store"
_WAITING_ROOM = "waiting room"
_MASTER_DATA = "master data store"


def _s(value: str) -> dict[str, str]:
    return {"S": value}


def _ts(moment: datetime) -> dict[str, str]:
    # One fixed format keeps string comparison in condition expressions chronological.
    return {"S": moment.astimezone(UTC).isoformat(timespec="microseconds")}


def _optional(item: dict[str, Any], name: str, value: str | None) -> None:
    if value is not None:
        item[name] = _s(value)


def _raw_body(raw_ref: str | None, received_at: datetime) -> tuple[str, dict[str, Any]] | None:
    """The attribute that records the archived body `raw_ref` names (written if_not_exists), or None."""
    body = archived_body(raw_ref, received_at=received_at)
    if body is None:
        return None
    value: dict[str, Any] = {"received_at": _ts(body.received_at)}
    _optional(value, "version_id", body.version_id)
    return _RAW_BODY_PREFIX + body.sha256, {"M": value}


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
        if (raw_body := _raw_body(ref.raw_ref, ref.received_at)) is not None:
            values[":raw_body"] = raw_body[1]
            sets.append(f"{raw_body[0]} = if_not_exists({raw_body[0]}, :raw_body)")
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
                raise store_error(exc, _LINEAGE, f"claim {ref.event_id}") from exc
            held = item_on_condition_failure(exc) or self._get_item(ref.event_id) or {}
            state = ClaimState.ALREADY_POSTED if _str(held, "status") == LineageStatus.POSTED else ClaimState.IN_FLIGHT
            return Claim(
                state=state,
                attempts=int(held.get("attempts", {}).get("N", "0")),
                first_seen=datetime.fromisoformat(_str(held, "first_seen") or now.isoformat()),
                erp_document_ids=tuple(v["S"] for v in held.get("erp_document_ids", {}).get("L", [])),
            )
        except BotoCoreError as exc:
            raise store_error(exc, _LINEAGE, f"claim {ref.event_id}") from exc
        item = response["Attributes"]
        return Claim(
            state=ClaimState.CLAIMED,
            attempts=int(item["attempts"]["N"]),
            first_seen=datetime.fromisoformat(item["first_seen"]["S"]),
        )

    def mark_posted(
        self, event_id: str, *, document_ids: tuple[str, ...], now: datetime, note: str | None = None
    ) -> None:
        values: dict[str, Any] = {
            ":posted": _s(LineageStatus.POSTED),
            ":ids": {"L": [_s(doc) for doc in document_ids]},
            ":now": _ts(now),
        }
        sets = "SET #status = :posted, erp_document_ids = :ids, cp_posted = :now, last_seen = :now"
        removes = "REMOVE lease_until, category"
        if note is None:
            removes += ", reason"
        else:
            sets += ", reason = :note"
            values[":note"] = _s(note)
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": _s(event_id)},
                UpdateExpression=f"{sets} {removes}",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=values,
            )
        except (BotoCoreError, ClientError) as exc:
            raise store_error(exc, _LINEAGE, f"mark {event_id} posted") from exc

    def mark_failed(
        self, event_id: str, *, status: str, category: ExceptionCategory, reason: str, now: datetime
    ) -> None:
        try:
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
        except (BotoCoreError, ClientError) as exc:
            raise store_error(exc, _LINEAGE, f"mark {event_id} {status}") from exc

    def note_redrive(self, event_id: str, *, at: datetime, by: str, how: str) -> None:
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": _s(event_id)},
                UpdateExpression=(
                    "SET redrives = list_append(if_not_exists(redrives, :empty), :entry), cp_redriven = :at"
                ),
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={
                    ":empty": {"L": []},
                    ":entry": {"L": [_s(f"{_ts(at)['S']} by {by}: {how}")]},
                    ":at": _ts(at),
                },
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return  # never accepted under this id (an unreadable message): nothing to annotate
            raise store_error(exc, _LINEAGE, f"note a redrive of {event_id}") from exc
        except BotoCoreError as exc:
            raise store_error(exc, _LINEAGE, f"note a redrive of {event_id}") from exc

    def record(
        self, record: LineageRecord, *, unless_posted: bool = False, count_attempt: bool = False
    ) -> LineageRecord | None:
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
        # An update, not a put: the trail of operator redrives on the item is kept.
        del item["pk"]
        counted = {"attempts": item.pop("attempts"), "first_seen": item.pop("first_seen")} if count_attempt else {}
        names = {f"#a{index}": name for index, name in enumerate(item)}
        values = {f":a{index}": value for index, value in enumerate(item.values())}
        cleared = [name for name in ("category", "reason", "lease_until") if name not in item]
        assignments = [f"{name} = {value}" for name, value in zip(names, values, strict=True)]
        if counted:
            values |= {":first_seen": counted["first_seen"], ":zero": {"N": "0"}, ":one": {"N": "1"}}
            assignments += [
                "attempts = if_not_exists(attempts, :zero) + :one",
                "first_seen = if_not_exists(first_seen, :first_seen)",
            ]
        raw_body = _raw_body(record.raw_ref, record.checkpoints.get("received", record.first_seen))
        if raw_body is not None:
            values[":raw_body"] = raw_body[1]
            assignments.append(f"{raw_body[0]} = if_not_exists({raw_body[0]}, :raw_body)")
        expression = "SET " + ", ".join(assignments)
        if cleared:
            expression += " REMOVE " + ", ".join(cleared)
        condition: dict[str, Any] = {}
        if unless_posted:
            names["#status_now"] = "status"
            values[":posted"] = _s(LineageStatus.POSTED)
            condition["ConditionExpression"] = "attribute_not_exists(pk) OR #status_now <> :posted"
            condition["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": _s(record.event_id)},
                UpdateExpression=expression,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                **condition,
            )
        except ClientError as exc:
            if unless_posted and error_code(exc) == "ConditionalCheckFailedException":
                # posted by another delivery of the same event
                held = item_on_condition_failure(exc)
                return lineage_record(held) if held else self.get(record.event_id)
            raise store_error(exc, _LINEAGE, f"record {record.event_id}") from exc
        except BotoCoreError as exc:
            raise store_error(exc, _LINEAGE, f"record {record.event_id}") from exc
        return None

    def note_archived(self, ref: EventRef) -> None:
        raw_body = _raw_body(ref.raw_ref, ref.received_at)
        if raw_body is None:
            return
        kept = {
            "#source": ":source",
            "source_event_id": ":sid",
            "event_type": ":type",
            "#status": ":pending",
            "attempts": ":zero",
            "first_seen": ":received",
            "last_seen": ":received",
            "cp_received": ":received",
            "raw_ref": ":raw",
            raw_body[0]: ":raw_body",
        }
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": _s(ref.event_id)},
                # Only what is missing: a record posting wrote stays as it is, and one not written yet is
                # complete enough for the claim and the lineage API.
                UpdateExpression="SET " + ", ".join(f"{name} = if_not_exists({name}, {v})" for name, v in kept.items()),
                ExpressionAttributeNames={"#status": "status", "#source": "source"},
                ExpressionAttributeValues={
                    ":source": _s(ref.source),
                    ":sid": _s(ref.source_event_id),
                    ":type": _s(ref.event_type),
                    ":pending": _s(LineageStatus.PENDING),
                    ":zero": {"N": "0"},
                    ":received": _ts(ref.received_at),
                    ":raw": _s(ref.raw_ref or ""),
                    ":raw_body": raw_body[1],
                },
            )
        except (BotoCoreError, ClientError) as exc:
            raise store_error(exc, _LINEAGE, f"note an archived body of {ref.event_id}") from exc

    def get(self, event_id: str) -> LineageRecord | None:
        item = self._get_item(event_id)
        return None if item is None else lineage_record(item)

    def scan(self) -> list[LineageRecord]:
        """Every lineage record (for reports and the local runtime; not on a hot path)."""
        paginator = self._client.get_paginator("scan")
        try:
            items = [
                item
                for page in paginator.paginate(TableName=self._table, ConsistentRead=True)
                for item in page["Items"]
            ]
        except (BotoCoreError, ClientError) as exc:
            raise store_error(exc, _LINEAGE, "scan") from exc
        return [lineage_record(item) for item in items]

    def _get_item(self, event_id: str) -> dict[str, Any] | None:
        try:
            response = self._client.get_item(TableName=self._table, Key={"pk": _s(event_id)}, ConsistentRead=True)
        except (BotoCoreError, ClientError) as exc:
            raise store_error(exc, _LINEAGE, f"read {event_id}") from exc
        return response.get("Item")


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
        redrives=tuple(v["S"] for v in item.get("redrives", {}).get("L", [])),
        raw_bodies=tuple(
            sorted(
                (
                    ArchivedBody(
                        sha256=name.removeprefix(_RAW_BODY_PREFIX),
                        version_id=_str(value["M"], "version_id"),
                        received_at=value["M"]["received_at"]["S"],
                    )
                    for name, value in item.items()
                    if name.startswith(_RAW_BODY_PREFIX)
                ),
                key=lambda body: body.received_at,
            )
        ),
        checkpoints={
            name.removeprefix(_CHECKPOINT_PREFIX): value["S"]
            for name, value in item.items()
            if name.startswith(_CHECKPOINT_PREFIX)
        },
    )


_NEWEST_VERSION_WINS = (
    "attribute_not_exists(pk) OR #version <= :version OR (attribute_not_exists(#version) AND as_of <= :as_of)"
)


def _version(version: Version) -> str:
    """Sorts as versions do: source time, then source event id."""
    return f"{version.as_of.astimezone(UTC).isoformat(timespec='microseconds')}#{version.source_event_id}"


class DynamoMasterDataStore:
    """Customers, products, prices and subscriptions from billing sources; the newest version wins."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    @staticmethod
    def _key(source: str, customer_id: str) -> dict[str, Any]:
        return {"pk": _s(f"CUSTOMER#{source}#{customer_id}")}

    def upsert_customer(
        self, *, source: str, customer: CustomerUpserted, legal_entity: str, as_of: datetime, version: str = ""
    ) -> bool:
        ordering = _version(Version(as_of=as_of, source_event_id=version))
        item: dict[str, Any] = {
            **self._key(source, customer.customer_id),
            "legal_entity": _s(legal_entity),
            "as_of": _ts(as_of),
            "version": _s(ordering),
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
                ConditionExpression=_NEWEST_VERSION_WINS,
                ExpressionAttributeNames={"#version": "version"},
                ExpressionAttributeValues={":as_of": _ts(as_of), ":version": _s(ordering)},
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise store_error(exc, _MASTER_DATA, f"upsert customer {customer.customer_id}") from exc
        except BotoCoreError as exc:
            raise store_error(exc, _MASTER_DATA, f"upsert customer {customer.customer_id}") from exc
        return True

    def customer_legal_entity(self, *, source: str, customer_id: str) -> str | None:
        try:
            response = self._client.get_item(
                TableName=self._table,
                Key=self._key(source, customer_id),
                ProjectionExpression="legal_entity",
                ConsistentRead=True,
            )
        except (BotoCoreError, ClientError) as exc:
            raise store_error(exc, _MASTER_DATA, f"read customer {customer_id}") from exc
        item = response.get("Item")
        return None if item is None else item.get("legal_entity", {}).get("S", "")

    def customer_exists(self, *, source: str, customer_id: str) -> bool:
        return self.customer_legal_entity(source=source, customer_id=customer_id) is not None

    def upsert_record(self, *, kind: str, source: str, record_id: str, data: dict[str, Any], version: Version) -> bool:
        ordering = _version(version)
        item = {
            "pk": _s(f"{kind.upper()}#{source}#{record_id}"),
            "as_of": _ts(version.as_of),
            "version": _s(ordering),
            "data": _s(json.dumps(data, sort_keys=True)),
        }
        try:
            self._client.put_item(
                TableName=self._table,
                Item=item,
                ConditionExpression=_NEWEST_VERSION_WINS,
                ExpressionAttributeNames={"#version": "version"},
                ExpressionAttributeValues={":as_of": item["as_of"], ":version": item["version"]},
            )
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return False
            raise store_error(exc, _MASTER_DATA, f"upsert {kind} {record_id}") from exc
        except BotoCoreError as exc:
            raise store_error(exc, _MASTER_DATA, f"upsert {kind} {record_id}") from exc
        return True

    def get_record(self, *, kind: str, source: str, record_id: str) -> dict[str, Any] | None:
        try:
            response = self._client.get_item(
                TableName=self._table, Key={"pk": _s(f"{kind.upper()}#{source}#{record_id}")}, ConsistentRead=True
            )
        except (BotoCoreError, ClientError) as exc:
            raise store_error(exc, _MASTER_DATA, f"read {kind} {record_id}") from exc
        item = response.get("Item")
        return None if item is None else json.loads(item["data"]["S"])


class DynamoWaitingRoom:
    """Held events keyed by what they wait for (partition `key`, sort `event_id`)."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def hold(self, waiter: Waiter) -> None:
        try:
            self._client.put_item(
                TableName=self._table,
                Item={
                    "key": _s(waiter.key),
                    "event_id": _s(waiter.event_id),
                    "event": _s(json.dumps(waiter.event, sort_keys=True)),
                    "wait_until": _ts(waiter.wait_until),
                },
            )
        except (BotoCoreError, ClientError) as exc:
            raise store_error(exc, _WAITING_ROOM, f"hold {waiter.event_id} for {waiter.key}") from exc

    def drop(self, key: str, event_id: str) -> None:
        try:
            self._client.delete_item(TableName=self._table, Key={"key": _s(key), "event_id": _s(event_id)})
        except (BotoCoreError, ClientError) as exc:
            raise store_error(exc, _WAITING_ROOM, f"drop {event_id} from {key}") from exc

    def waiting_for(self, key: str) -> list[Waiter]:
        try:
            pages = self._client.get_paginator("query").paginate(
                TableName=self._table,
                KeyConditionExpression="#key = :key",
                ExpressionAttributeNames={"#key": "key"},
                ExpressionAttributeValues={":key": _s(key)},
                ConsistentRead=True,
            )
            return [_waiter(item) for page in pages for item in page["Items"]]
        except (BotoCoreError, ClientError) as exc:
            raise store_error(exc, _WAITING_ROOM, f"read what waits for {key}") from exc

    def all_waiting(self) -> list[Waiter]:
        try:
            pages = self._client.get_paginator("scan").paginate(TableName=self._table, ConsistentRead=True)
            return [_waiter(item) for page in pages for item in page["Items"]]
        except (BotoCoreError, ClientError) as exc:
            raise store_error(exc, _WAITING_ROOM, "read every held event") from exc


def _waiter(item: dict[str, Any]) -> Waiter:
    return Waiter(
        key=item["key"]["S"],
        event_id=item["event_id"]["S"],
        event=json.loads(item["event"]["S"]),
        wait_until=datetime.fromisoformat(item["wait_until"]["S"]),
    )
