"""The billing bus on EventBridge: canonical events for the posting pipeline."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from billing_sync.domain.errors import PublishError

if TYPE_CHECKING:
    from billing_sync.domain.events import FinanceEvent

EVENT_SOURCE = "billing-sync"


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
