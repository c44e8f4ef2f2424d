"""`billing-sync replay`: normalise archived raw events again and publish them on the billing bus.

Non-destructive: posting claims by event id, so a posted event stays posted. Each event's lineage is
still read and reported, and an event lineage says is POSTED is not published unless `--force`.
Objects are `raw/<source>/<source_event_id>.json` in the raw archive bucket; a time range selects by
the object's LastModified (when the webhook was received).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from billing_sync.aws.archive import raw_archive_key
from billing_sync.aws.bus import EventBridgePublisher
from billing_sync.composition.ingest import stripe_account_entities
from billing_sync.domain.errors import MalformedEventError
from billing_sync.domain.events import derive_event_id
from billing_sync.domain.lineage import LineageStatus
from billing_sync.sources.stripe import StripeNormaliser
from billing_sync.state.dynamo import DynamoLineageStore
from billing_sync_ops.ops.output import EXIT_ITEMS_FAILED, EXIT_OK, emit, progress
from billing_sync_ops.ops.ratelimit import Limiter, TokenBucket, Unlimited
from billing_sync_ops.ops.target import Target

SOURCES = ("stripe",)


@dataclass(frozen=True)
class ArchivedObject:
    key: str
    source_event_id: str
    last_modified: datetime | None


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant; a naive one is taken as UTC. Raises ValueError."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _objects_between(s3: Any, bucket: str, source: str, start: datetime, end: datetime) -> Iterator[ArchivedObject]:
    prefix = f"raw/{source}/"
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            if start <= item["LastModified"] <= end and item["Key"].endswith(".json"):
                source_event_id = item["Key"].removeprefix(prefix).removesuffix(".json")
                yield ArchivedObject(item["Key"], source_event_id, item["LastModified"])


def replay(
    target: Target,
    *,
    source: str,
    event_ids: tuple[str, ...] = (),
    start: datetime | None = None,
    end: datetime | None = None,
    dry_run: bool = False,
    force: bool = False,
    rate: float | None = None,
    default_legal_entity: str = "US01",
    as_json: bool = False,
    limiter: Limiter | None = None,
) -> int:
    s3 = target.client("s3")
    bucket = target.output("RawArchiveBucketName")
    lineage = DynamoLineageStore(target.client("dynamodb"), target.output("LineageTableName"))
    publisher = EventBridgePublisher(target.client("events"), target.output("BillingBusName"))
    normaliser = StripeNormaliser(default_legal_entity=default_legal_entity, stripe_accounts=stripe_account_entities())
    limiter = limiter or (TokenBucket(rate) if rate else Unlimited())
    if event_ids:
        objects = [ArchivedObject(raw_archive_key(source, event_id), event_id, None) for event_id in event_ids]
    else:
        assert start is not None and end is not None
        objects = sorted(_objects_between(s3, bucket, source, start, end), key=lambda o: (o.last_modified, o.key))
    items = []
    with progress(f"replay{' (dry run)' if dry_run else ''}", len(objects)) as advance:
        for archived in objects:
            items.append(
                _replay_one(s3, bucket, archived, source, lineage, normaliser, publisher, limiter, dry_run, force)
            )
            advance()
    outcomes = Counter(item["result"] for item in items)
    payload = {
        "command": "replay",
        "target": target.description,
        "dry_run": dry_run,
        "source": source,
        "from": start.isoformat() if start else None,
        "to": end.isoformat() if end else None,
        "event_ids": list(event_ids),
        "archived": len(objects),
        "published": outcomes["published"],
        "skipped_posted": outcomes["skipped (posted)"],
        "failed": outcomes["failed"],
        "items": items,
    }
    emit(as_json, payload, _render)
    return EXIT_ITEMS_FAILED if outcomes["failed"] else EXIT_OK


def _replay_one(
    s3: Any,
    bucket: str,
    archived: ArchivedObject,
    source: str,
    lineage: DynamoLineageStore,
    normaliser: StripeNormaliser,
    publisher: EventBridgePublisher,
    limiter: Limiter,
    dry_run: bool,
    force: bool,
) -> dict[str, Any]:
    event_id = derive_event_id(source, archived.source_event_id)
    item: dict[str, Any] = {
        "key": archived.key,
        "source_event_id": archived.source_event_id,
        "event_id": event_id,
        "event_type": None,
        "lineage_status": None,
    }
    try:
        known = lineage.get(event_id)
        item["lineage_status"] = str(known.status) if known else None
        response = s3.get_object(Bucket=bucket, Key=archived.key)
        payload = json.loads(response["Body"].read())
        received_at = archived.last_modified or response.get("LastModified") or datetime.now(UTC)
        event = normaliser.normalise(payload, received_at=received_at, raw_ref=f"s3://{bucket}/{archived.key}")
    except MalformedEventError as exc:
        return {**item, "result": "failed", "error": f"cannot be normalised: {exc}"}
    except Exception as exc:
        return {**item, "result": "failed", "error": str(exc)}
    if event is None:
        return {**item, "result": "ignored (unsupported type)"}
    item["event_type"] = event.event_type
    if item["lineage_status"] == LineageStatus.POSTED and not force:
        return {**item, "result": "skipped (posted)"}
    if dry_run:
        return {**item, "result": "would publish"}
    try:
        limiter.acquire()
        publisher.publish(event)
    except Exception as exc:
        return {**item, "result": "failed", "error": str(exc)}
    return {**item, "result": "published"}


def _render(payload: dict[str, Any]) -> str:
    scope = (
        f"event ids {', '.join(payload['event_ids'])}"
        if payload["event_ids"]
        else f"{payload['from']} .. {payload['to']}"
    )
    lines = [
        f"replay{' (dry run)' if payload['dry_run'] else ''} of {payload['source']} {scope} on {payload['target']}",
        f"  archived {payload['archived']}, published {payload['published']}, "
        f"skipped (posted) {payload['skipped_posted']}, failed {payload['failed']}",
    ]
    for item in payload["items"]:
        lines.append(
            f"  {item['result']:<26} {item['source_event_id']:<32} {item['event_type'] or '':<22} "
            f"lineage={item['lineage_status']}  {item.get('error', '')}".rstrip()
        )
    return "\n".join(lines)
