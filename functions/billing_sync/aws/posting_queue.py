"""The posting queue on SQS, for events released from the waiting room.

A released event goes back in the shape the bus rule delivers (an EventBridge envelope with the
canonical event as `detail`), so the posting handler reads both alike.
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from billing_sync.domain.errors import PublishError


class SqsPostingQueue:
    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def requeue(self, event: dict[str, Any]) -> None:
        """Raises PublishError when the queue did not take the event."""
        body = {"source": "billing-sync", "detail-type": event.get("event_type"), "detail": event}
        try:
            self._client.send_message(QueueUrl=self._url, MessageBody=json.dumps(body))
        except (BotoCoreError, ClientError) as exc:
            raise PublishError(f"could not requeue {event.get('event_id')} for posting: {exc}") from exc
