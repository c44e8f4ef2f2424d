"""The exception store on DynamoDB: every parked event, queryable by category and age without draining a queue.

Items are keyed by event id. An open exception carries `open_category`, the partition key of the sparse
`OpenByCategory` index (sort key `first_seen`), so `list` queries the open ones per category, oldest
first; redriving or purging an exception removes it from the index and keeps the item as history.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from billing_sync.aws.errors import store_error
from billing_sync.domain.errors import ExceptionCategory
from billing_sync.domain.lineage import ExceptionRecord

OPEN_BY_CATEGORY_INDEX = "OpenByCategory"
_STORE = "exception store"


class ExceptionStatus(StrEnum):
    OPEN = "OPEN"
    REDRIVEN = "REDRIVEN"
    PURGED = "PURGED"


def _ts(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class DynamoExceptionStore:
    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def put(self, record: ExceptionRecord, *, message_id: str | None = None, queue: str | None = None) -> None:
        """Stores (or refreshes) the open exception of `record.event_id`; raises a store error."""
        item: dict[str, Any] = {
            "pk": {"S": record.event_id},
            "status": {"S": ExceptionStatus.OPEN},
            "open_category": {"S": record.category},
            "category": {"S": record.category},
            "first_seen": {"S": _ts(record.first_seen)},
            "last_seen": {"S": _ts(record.last_seen)},
            "event_type": {"S": record.event_type},
            "source": {"S": record.source},
            "attempts": {"N": str(record.attempts)},
            "record": {"S": record.model_dump_json()},
        }
        if message_id:
            item["message_id"] = {"S": message_id}
        if queue:
            item["queue"] = {"S": queue}
        try:
            self._client.put_item(TableName=self._table, Item=item)
        except (BotoCoreError, ClientError) as exc:
            raise store_error(exc, _STORE, f"store the exception of {record.event_id}") from exc

    def get(self, event_id: str) -> tuple[ExceptionRecord, dict[str, str]] | None:
        """The record and its bookkeeping (status, message id, queue, last redrive), or None."""
        try:
            item = self._client.get_item(TableName=self._table, Key={"pk": {"S": event_id}}, ConsistentRead=True).get(
                "Item"
            )
        except (BotoCoreError, ClientError) as exc:
            raise store_error(exc, _STORE, f"read the exception of {event_id}") from exc
        if item is None:
            return None
        return _record(item), _bookkeeping(item)

    def find_by_message_id(self, message_id: str) -> ExceptionRecord | None:
        for record, bookkeeping in self.all():
            if bookkeeping.get("message_id") == message_id:
                return record
        return None

    def open(
        self, *, category: ExceptionCategory | None = None, older_than: datetime | None = None
    ) -> Iterator[ExceptionRecord]:
        """Open exceptions, oldest first per category, through the index (never a scan)."""
        categories = [category] if category else list(ExceptionCategory)
        for wanted in categories:
            condition = "open_category = :category"
            values: dict[str, Any] = {":category": {"S": wanted}}
            if older_than is not None:
                condition += " AND first_seen < :before"
                values[":before"] = {"S": _ts(older_than)}
            try:
                pages = self._client.get_paginator("query").paginate(
                    TableName=self._table,
                    IndexName=OPEN_BY_CATEGORY_INDEX,
                    KeyConditionExpression=condition,
                    ExpressionAttributeValues=values,
                )
                for page in pages:
                    for item in page["Items"]:
                        yield _record(item)
            except (BotoCoreError, ClientError) as exc:
                raise store_error(exc, _STORE, f"list open {wanted} exceptions") from exc

    def all(self) -> Iterator[tuple[ExceptionRecord, dict[str, str]]]:
        """Every exception ever stored, open or not (history; a scan, for `show` by message id only)."""
        try:
            for page in self._client.get_paginator("scan").paginate(TableName=self._table):
                for item in page["Items"]:
                    yield _record(item), _bookkeeping(item)
        except (BotoCoreError, ClientError) as exc:
            raise store_error(exc, _STORE, "read the exception history") from exc

    def close(self, event_id: str, *, status: ExceptionStatus, at: datetime, by: str, note: str) -> None:
        """Takes the exception out of the open index, saying when, by whom and why."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key={"pk": {"S": event_id}},
                UpdateExpression="SET #status = :status, closed_at = :at, closed_by = :by, closed_note = :note "
                "REMOVE open_category",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":status": {"S": status},
                    ":at": {"S": _ts(at)},
                    ":by": {"S": by},
                    ":note": {"S": note},
                },
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
                return
            raise store_error(exc, _STORE, f"close the exception of {event_id}") from exc
        except BotoCoreError as exc:
            raise store_error(exc, _STORE, f"close the exception of {event_id}") from exc


def _record(item: dict[str, Any]) -> ExceptionRecord:
    return ExceptionRecord.model_validate(json.loads(item["record"]["S"]))


def _bookkeeping(item: dict[str, Any]) -> dict[str, str]:
    names = ("status", "message_id", "queue", "closed_at", "closed_by", "closed_note")
    return {name: item[name]["S"] for name in names if name in item}
