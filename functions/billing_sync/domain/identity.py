"""The canonical event id, on its own so the ingest path can name an event without loading the event models."""

from __future__ import annotations

import uuid

_EVENT_ID_NAMESPACE = uuid.UUID("6f1c3f0e-5b7a-4d55-9a55-3c1f5e0b9a10")


def derive_event_id(source: str, source_event_id: str) -> str:
    """The canonical event id: stable for one source event, distinct across sources."""
    return str(uuid.uuid5(_EVENT_ID_NAMESPACE, f"{source}:{source_event_id}"))
