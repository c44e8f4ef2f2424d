"""AWS adapters for the ingest path: raw archive (S3), billing bus (EventBridge), exception queue (SQS)."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from billing_sync.domain.errors import PublishError
from billing_sync.domain.events import FinanceEvent
from billing_sync.domain.lineage import ExceptionRecord

EVENT_SOURCE = "billing-sync"


def raw_archive_key(source: str, source_event_id: str) -> str:
    return f"raw/{source}/{source_event_id}.json"


class S3RawArchive:
    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def put(self, *, source: str, source_event_id: str, body: bytes) -> str:
        key = raw_archive_key(source, source_event_id)
        try:
            self._client.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType="application/json")
        except (BotoCoreError, ClientError) as exc:
            raise PublishError(f"could not archive {source} event {source_event_id}: {exc}") from exc
        return f"s3://{self._bucket}/{key}"


class EventBridgePublisher:
    """Puts canonical events on the billing bus; success means EventBridge accepted every entry."""

    def __init__(self, client: Any, bus_name: str) -> None:
        self._client = client
        self._bus = bus_name

    def publish(self, event: FinanceEvent) -> None:
        entry = {
            "EventBusName": self._bus,
            "Source": EVENT_SOURCE,
            "DetailType": event.event_type,
            "Detail": event.model_dump_json(),
            "Time": event.occurred_at,
        }
        try:
            response = self._client.put_events(Entries=[entry])
        except (BotoCoreError, ClientError) as exc:
            raise PublishError(f"PutEvents failed for {event.event_id}: {exc}") from exc
        if response.get("FailedEntryCount", 0):
            failed = response["Entries"][0]
            raise PublishError(
                f"EventBridge refused {event.event_id}: {failed.get('ErrorCode')} {failed.get('ErrorMessage')}"
            )


class SqsExceptionQueue:
    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def send(self, record: ExceptionRecord) -> None:
        """Raises PublishError when the queue did not take the record."""
        try:
            self._send(record)
        except (BotoCoreError, ClientError) as exc:
            raise PublishError(f"could not park {record.event_id} in the exception queue: {exc}") from exc

    def _send(self, record: ExceptionRecord) -> None:
        self._client.send_message(
            QueueUrl=self._url,
            MessageBody=record.model_dump_json(),
            MessageAttributes={
                "category": {"DataType": "String", "StringValue": record.category},
                "event_type": {"DataType": "String", "StringValue": record.event_type},
                "source": {"DataType": "String", "StringValue": record.source},
            },
        )
