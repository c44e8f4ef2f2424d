"""The exception queue on SQS (what operators redrive) and its index in the exception store.

Three message shapes can sit in an exception queue, and `decode_exception_message` reads them all as an
ExceptionRecord: a record parked by ingest or posting; the original EventBridge envelope that the
posting queue's redrive policy moved (its category comes from lineage when known); and a Lambda
on-failure record of the partner function (its request payload is the Stripe event).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pydantic
from botocore.exceptions import BotoCoreError, ClientError

from billing_sync.domain.errors import ExceptionCategory, PublishError
from billing_sync.domain.lineage import ExceptionRecord, ExceptionStage

if TYPE_CHECKING:
    from billing_sync.aws.exception_store import DynamoExceptionStore


class SqsExceptionQueue:
    def __init__(self, client: Any, queue_url: str, store: DynamoExceptionStore | None = None) -> None:
        self._client = client
        self._url = queue_url
        self._store = store

    def send(self, record: ExceptionRecord) -> None:
        """Raises PublishError when the queue did not take the record (the store is written after)."""
        try:
            response = self._send(record)
        except (BotoCoreError, ClientError) as exc:
            raise PublishError(f"could not park {record.event_id} in the exception queue: {exc}") from exc
        if self._store is not None:
            self._store.put(record, message_id=response.get("MessageId"), queue=self._url)

    def _send(self, record: ExceptionRecord) -> dict[str, Any]:
        attributes = {
            "category": {"DataType": "String", "StringValue": record.category},
            "event_type": {"DataType": "String", "StringValue": record.event_type},
            "source": {"DataType": "String", "StringValue": record.source},
        }
        return dict(
            self._client.send_message(
                QueueUrl=self._url, MessageBody=record.model_dump_json(), MessageAttributes=attributes
            )
        )


def decode_exception_message(body: str, *, received: datetime | None = None) -> ExceptionRecord:
    """The exception record a message body stands for; an unreadable body becomes a MALFORMED record."""
    seen = received or datetime.now(UTC)
    try:
        data = json.loads(body)
    except ValueError:
        return _unreadable(body, seen, "the message body is not JSON")
    if not isinstance(data, dict):
        return _unreadable(body, seen, "the message body is not a JSON object")
    if "category" in data and "event_id" in data:
        try:
            return ExceptionRecord.model_validate(data)
        except pydantic.ValidationError as exc:
            return _unreadable(body, seen, f"an exception record that does not validate: {exc.error_count()} error(s)")
    if isinstance(data.get("detail"), dict) and "detail-type" in data:
        detail = data["detail"]
        return ExceptionRecord(
            event_id=str(detail.get("event_id", "unknown")),
            source=str(detail.get("source", "unknown")),
            source_event_id=str(detail.get("source_event_id", "unknown")),
            event_type=str(detail.get("event_type", data["detail-type"])),
            source_api_version=detail.get("source_api_version"),
            raw_ref=detail.get("raw_ref"),
            category=ExceptionCategory.INTERNAL,
            reason="moved by the posting queue's redrive policy after its receive budget was spent",
            attempts=0,
            first_seen=seen,
            last_seen=seen,
            stage=ExceptionStage.POSTING,
            event=detail,
        )
    payload = data.get("requestPayload")
    if isinstance(payload, dict) and "responseContext" in data:
        nested = payload.get("detail")
        stripe_event: dict[str, Any] = nested if isinstance(nested, dict) else payload
        event_id = str(stripe_event.get("id", "unknown"))
        condition = (data.get("requestContext") or {}).get("condition", "failed")
        return ExceptionRecord(
            event_id=event_id,
            source="stripe",
            source_event_id=event_id,
            event_type=str(stripe_event.get("type", "unknown")),
            category=ExceptionCategory.INTERNAL,
            reason=f"the partner-bus function did not take the event ({condition})",
            attempts=int((data.get("requestContext") or {}).get("approximateInvokeCount", 0) or 0),
            first_seen=seen,
            last_seen=seen,
            stage=ExceptionStage.INGEST,
        )
    return _unreadable(body, seen, "not an exception record, a bus envelope or a Lambda failure record")


def _unreadable(body: str, seen: datetime, why: str) -> ExceptionRecord:
    return ExceptionRecord(
        event_id="unreadable",
        source="unknown",
        source_event_id="unknown",
        event_type="unknown",
        category=ExceptionCategory.MALFORMED,
        reason=f"{why}: {body[:200]!r}",
        attempts=0,
        first_seen=seen,
        last_seen=seen,
        stage=ExceptionStage.POSTING,
    )
