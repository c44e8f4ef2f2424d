"""The exception queue on SQS: records for operators, with message attributes to filter on."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from billing_sync.domain.errors import PublishError
from billing_sync.domain.lineage import ExceptionRecord


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
