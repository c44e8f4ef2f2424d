"""The exception queue on SQS (what operators redrive) and its index in the exception store.

Every message shape that can sit in an exception queue is read by `decode_exception_message` as an
ExceptionRecord: a record parked by ingest or posting; the original EventBridge envelope that the
posting queue's redrive policy moved (its category comes from lineage when known); a Lambda on-failure
record of the partner function (its request payload is the Stripe event); a partner-bus event the rule
could not deliver (its detail is the Stripe event); and a scheduled sweep that was not delivered.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pydantic
from botocore.exceptions import BotoCoreError, ClientError

from billing_sync.domain.errors import ExceptionCategory, PublishError
from billing_sync.domain.identity import derive_event_id
from billing_sync.domain.lineage import ExceptionRecord, ExceptionStage

STRIPE_PARTNER_SOURCE = "aws.partner/stripe.com"

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
    if isinstance(data.get("detail"), dict) and str(data.get("source", "")).startswith(STRIPE_PARTNER_SOURCE):
        return _stripe_event_record(
            data["detail"], seen, reason="the partner rule could not deliver the event to its function", attempts=0
        )
    if data.get("source") == "aws.events" and data.get("detail-type") == "Scheduled Event":
        schedule = str(data.get("id", "unknown"))
        return ExceptionRecord(
            event_id=f"schedule-{schedule}",
            source="aws.events",
            source_event_id=schedule,
            event_type="Scheduled Event",
            category=ExceptionCategory.INTERNAL,
            reason="a scheduled run was not delivered to its function; the next run does its work (purge it)",
            attempts=0,
            first_seen=seen,
            last_seen=seen,
            stage=ExceptionStage.POSTING,
        )
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
        context = data.get("requestContext") or {}
        return _stripe_event_record(
            stripe_event,
            seen,
            reason=f"the partner-bus function did not take the event ({context.get('condition', 'failed')})",
            attempts=int(context.get("approximateInvokeCount", 0) or 0),
        )
    return _unreadable(body, seen, "not an exception record, a bus envelope or a Lambda failure record")


def _stripe_event_record(
    stripe_event: dict[str, Any], seen: datetime, *, reason: str, attempts: int
) -> ExceptionRecord:
    """An ingest exception carrying the Stripe event itself, so a redrive can normalise it again."""
    source_event_id = str(stripe_event.get("id", "unknown"))
    return ExceptionRecord(
        event_id=derive_event_id("stripe", source_event_id),
        source="stripe",
        source_event_id=source_event_id,
        event_type=str(stripe_event.get("type", "unknown")),
        category=ExceptionCategory.INTERNAL,
        reason=reason,
        attempts=attempts,
        first_seen=seen,
        last_seen=seen,
        stage=ExceptionStage.INGEST,
        event=stripe_event,
    )


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
