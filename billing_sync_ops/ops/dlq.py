"""`billing-sync dlq list|show|redrive|purge`: the exception queue, read through its index.

`list` and `show` read the exception store (never draining the queue) and the queues' approximate
depth. `redrive` and `purge` select open exceptions from the store by their filters, then receive the
exception queue's messages: a selected message is resent (a posting exception's canonical event goes
back on the posting queue; an ingest exception is normalised again from the raw archive and published
on the bus) and only then deleted, its store record closed and the redrive noted in lineage. Messages
the store does not index (moved by the posting queue's redrive policy, or partner on-failure records)
are selected by their decoded record. Messages not selected are made visible again at the end; an
unreadable message is reported by its message id and never stops the run.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from billing_sync.aws.archive import raw_archive_key, raw_object
from billing_sync.aws.exception_queue import decode_exception_message
from billing_sync.aws.exception_store import DynamoExceptionStore, ExceptionStatus
from billing_sync.aws.posting_queue import SqsPostingQueue
from billing_sync.domain.errors import ExceptionCategory, MalformedEventError
from billing_sync.domain.events import derive_event_id
from billing_sync.domain.lineage import ExceptionRecord, ExceptionStage, LineageRecord
from billing_sync.state.dynamo import DynamoLineageStore
from billing_sync_ops.ops.output import EXIT_ITEMS_FAILED, EXIT_OK, EXIT_USAGE, age, emit, log, progress, since
from billing_sync_ops.ops.ratelimit import Limiter, TokenBucket, Unlimited
from billing_sync_ops.ops.target import Target

VISIBILITY_SECONDS = 60
_UNREADABLE_IDS = ("unreadable", "unknown")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.IGNORECASE)
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class ResendError(Exception):
    """The event could not be sent again; the message stays in the exception queue."""


def parse_duration(text: str) -> timedelta:
    """`90s`, `15m`, `2h`, `3d`, `1w`; raises ValueError."""
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a duration such as 90s, 15m, 2h, 3d or 1w")
    return timedelta(**{_UNITS[match.group(2).lower()]: float(match.group(1))})


@dataclass(frozen=True)
class Filters:
    categories: tuple[str, ...] = ()
    event_types: tuple[str, ...] = ()
    event_ids: tuple[str, ...] = ()
    older_than: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.categories or self.event_types or self.event_ids or self.older_than)

    def cutoff(self, now: datetime) -> datetime | None:
        return now - parse_duration(self.older_than) if self.older_than else None

    def matches(self, record: ExceptionRecord, *, now: datetime) -> bool:
        cutoff = self.cutoff(now)
        return (
            (not self.categories or record.category in self.categories)
            and (not self.event_types or record.event_type in self.event_types)
            and (not self.event_ids or bool({record.event_id, record.source_event_id} & set(self.event_ids)))
            and (cutoff is None or record.first_seen < cutoff)
        )

    def describe(self) -> str:
        parts = [f"category={c}" for c in self.categories]
        parts += [f"event-type={t}" for t in self.event_types]
        parts += [f"event-id={i}" for i in self.event_ids]
        parts += [f"older-than={self.older_than}"] if self.older_than else []
        return " ".join(parts) or "all"

    def as_dict(self) -> dict[str, Any]:
        return {
            "category": list(self.categories),
            "event_type": list(self.event_types),
            "event_id": list(self.event_ids),
            "older_than": self.older_than,
        }


@dataclass
class QueuedMessage:
    queue_url: str
    message_id: str
    receipt_handle: str
    body: str
    record: ExceptionRecord

    @property
    def readable(self) -> bool:
        return self.record.event_id not in _UNREADABLE_IDS


class QueueSweep:
    """Receives every visible message of a queue once; `release()` makes the ones kept visible again."""

    def __init__(self, sqs: Any, queue_url: str, *, visibility_seconds: int = VISIBILITY_SECONDS) -> None:
        self._sqs = sqs
        self._url = queue_url
        self._visibility = visibility_seconds
        self._kept: dict[str, str] = {}  # message id -> latest receipt handle
        self._consumed: set[str] = set()

    def messages(self) -> Iterator[QueuedMessage]:
        seen: set[str] = set()
        empty_receives = 0
        while empty_receives < 2:
            batch = self._sqs.receive_message(
                QueueUrl=self._url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=self._visibility,
                WaitTimeSeconds=1,
                AttributeNames=["SentTimestamp"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not batch:
                empty_receives += 1
                continue
            empty_receives = 0
            fresh = [message for message in batch if message["MessageId"] not in seen]
            for message in batch:
                if message["MessageId"] in self._kept:
                    # Back after its visibility ran out during a long run: only its newest handle works.
                    self._kept[message["MessageId"]] = message["ReceiptHandle"]
            if not fresh:
                return  # every message here has been seen: the queue has been walked once
            for message in fresh:
                seen.add(message["MessageId"])
                self._kept[message["MessageId"]] = message["ReceiptHandle"]
                yield QueuedMessage(
                    queue_url=self._url,
                    message_id=message["MessageId"],
                    receipt_handle=message["ReceiptHandle"],
                    body=message["Body"],
                    record=decode_exception_message(message["Body"], received=_sent_at(message)),
                )

    def delete(self, message: QueuedMessage) -> None:
        self._sqs.delete_message(QueueUrl=self._url, ReceiptHandle=self._kept.pop(message.message_id))
        self._consumed.add(message.message_id)

    @property
    def kept(self) -> int:
        return len(self._kept)

    def release(self) -> None:
        handles = list(self._kept.items())
        for start in range(0, len(handles), 10):
            entries = [
                {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for index, (_, handle) in enumerate(handles[start : start + 10])
            ]
            response = self._sqs.change_message_visibility_batch(QueueUrl=self._url, Entries=entries)
            for failure in response.get("Failed", []):
                log(f"could not make a message visible again ({failure.get('Code')}); it returns by its timeout")
        self._kept.clear()


def _sent_at(message: dict[str, Any]) -> datetime | None:
    sent = message.get("Attributes", {}).get("SentTimestamp")
    return datetime.fromtimestamp(int(sent) / 1000, UTC) if sent else None


def exception_queue_urls(target: Target) -> dict[str, str]:
    """Every exception queue the target declares (output names ending in ExceptionQueueUrl)."""
    queues = {name: url for name, url in target.outputs.items() if name.endswith("ExceptionQueueUrl") and url}
    if not queues:
        target.output("ExceptionQueueUrl")  # raises TargetNotFoundError naming it
    return dict(sorted(queues.items()))


def _store(target: Target) -> DynamoExceptionStore | None:
    table = target.optional_output("ExceptionTableName")
    if table is None:
        log(f"{target.description} has no ExceptionTableName output: reading the queue only, no index")
        return None
    return DynamoExceptionStore(target.client("dynamodb"), table)


def _lineage(target: Target) -> DynamoLineageStore:
    return DynamoLineageStore(target.client("dynamodb"), target.output("LineageTableName"))


def _utc_now() -> datetime:
    return datetime.now(UTC)


# ---- list ----


def list_exceptions(target: Target, *, as_json: bool, now: datetime | None = None) -> int:
    now = now or _utc_now()
    store = _store(target)
    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for record in store.open() if store is not None else ():
        group = groups.setdefault(
            (record.category, record.source, record.event_type),
            {
                "category": str(record.category),
                "source": record.source,
                "event_type": record.event_type,
                "count": 0,
                "oldest_first_seen": record.first_seen,
            },
        )
        group["count"] += 1
        group["oldest_first_seen"] = min(group["oldest_first_seen"], record.first_seen)
    rows = sorted(groups.values(), key=lambda row: (row["category"], row["source"], row["event_type"]))
    for row in rows:
        row["oldest_age_seconds"] = round(since(row["oldest_first_seen"], now), 3)
        row["oldest_first_seen"] = row["oldest_first_seen"].isoformat()
    sqs = target.client("sqs")
    queues: list[dict[str, Any]] = []
    for name, url in exception_queue_urls(target).items():
        attributes = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        queues.append(
            {
                "output": name,
                "url": url,
                "approximate_messages": int(attributes["ApproximateNumberOfMessages"]),
                "approximate_in_flight": int(attributes["ApproximateNumberOfMessagesNotVisible"]),
            }
        )
    open_total = sum(row["count"] for row in rows)
    in_queues = sum(queue["approximate_messages"] + queue["approximate_in_flight"] for queue in queues)
    by_category = Counter[str]()
    for row in rows:
        by_category[row["category"]] += row["count"]
    payload = {
        "command": "dlq list",
        "target": target.description,
        "indexed": store is not None,
        "open": {"total": open_total, "by_category": dict(sorted(by_category.items())), "groups": rows},
        "queues": queues,
        # Messages the index does not cover: redrive-policy moves and partner on-failure records.
        "unindexed_approximate": max(in_queues - open_total, 0) if store is not None else in_queues,
    }
    emit(as_json, payload, _render_list)
    return EXIT_OK


def _render_list(payload: dict[str, Any]) -> str:
    lines = [f"open exceptions on {payload['target']}: {payload['open']['total']}"]
    if payload["open"]["groups"]:
        lines.append(f"  {'category':<20} {'source':<8} {'event type':<24} {'count':>5}  oldest")
        lines += [
            f"  {row['category']:<20} {row['source']:<8} {row['event_type']:<24} {row['count']:>5}  "
            f"{age(row['oldest_age_seconds'])}"
            for row in payload["open"]["groups"]
        ]
    for queue in payload["queues"]:
        lines.append(
            f"queue {queue['output']}: ~{queue['approximate_messages']} messages, "
            f"~{queue['approximate_in_flight']} in flight"
        )
    lines.append(f"not indexed (redrive-policy moves, partner failures): ~{payload['unindexed_approximate']}")
    if not payload["indexed"]:
        lines.append("(no exception store on this target: counts by category are unavailable)")
    return "\n".join(lines)


# ---- show ----


def guidance(record: ExceptionRecord) -> tuple[str, list[str]]:
    """What an operator should do about a parked exception, and the commands for it."""
    redrive = f"billing-sync dlq redrive --event-id {record.event_id}"
    category = record.category
    if category == ExceptionCategory.MAPPING:
        key = record.missing_key or "(not recorded; see the reason)"
        return (
            f"the account mapping has no entry for {key}: add a rule or default for it to the mapping file, "
            "check the file, deploy it, then redrive",
            ["billing-sync mapping check FILE", redrive],
        )
    if category == ExceptionCategory.DEPENDENCY_PENDING:
        key = record.missing_key or "(not recorded; see the reason)"
        return (
            f"waited past the horizon for {key}: make sure that event reaches billing-sync (resend it from Stripe "
            "or replay it from the raw archive), then redrive",
            ["billing-sync replay --event-id SOURCE_EVENT_ID", redrive],
        )
    if category == ExceptionCategory.VALIDATION:
        return (
            "the source data is inconsistent or conflicts with what was posted; correct it at the source (a new "
            "event), or redrive after the rule that refused it has changed",
            [redrive],
        )
    if category == ExceptionCategory.MALFORMED:
        return (
            "the payload could not be read or normalised; redrive only after a fix for it is deployed",
            [redrive],
        )
    if category in (ExceptionCategory.ERP_TRANSIENT, ExceptionCategory.INTERNAL):
        return ("retries ran out or a component failed; once it is healthy again, redrive", [redrive])
    if category == ExceptionCategory.ERP_REJECTED:
        return ("the ERP refused the document; fix the cause the reason names, then redrive", [redrive])
    if category == ExceptionCategory.PERIOD_CLOSED:
        return ("the posting period is closed; reopen it or agree a posting date, then redrive", [redrive])
    return ("nothing to redrive: this category is acknowledged, not parked", [])


def show_exception(target: Target, identifier: str, *, as_json: bool) -> int:
    store = _store(target)
    lineage_store = _lineage(target)
    record: ExceptionRecord | None = None
    bookkeeping: dict[str, str] | None = None
    candidates = [identifier]
    if identifier.startswith("evt_"):
        candidates.append(derive_event_id("stripe", identifier))
    for candidate in candidates:
        found = store.get(candidate) if store is not None else None
        if found is not None:
            record, bookkeeping = found
            break
    if record is None and store is not None:
        for stored, stored_bookkeeping in store.all():
            if stored_bookkeeping.get("message_id") == identifier:
                record, bookkeeping = stored, stored_bookkeeping
                break
    event_id = record.event_id if record else next((c for c in candidates if lineage_store.get(c)), None)
    lineage = lineage_store.get(event_id) if event_id else None
    if record is None and lineage is None:
        emit(
            as_json,
            {
                "command": "dlq show",
                "id": identifier,
                "found": False,
                "error": f"no exception or lineage for {identifier}",
            },
            lambda p: p["error"],
        )
        return EXIT_ITEMS_FAILED
    advice, commands = guidance(record) if record else ("no parked exception record; see lineage", [])
    payload = {
        "command": "dlq show",
        "id": identifier,
        "found": True,
        "event_id": event_id,
        "record": record.model_dump(mode="json") if record else None,
        "store": bookkeeping,
        "lineage": _lineage_view(lineage),
        "reason": record.reason if record else (lineage.reason if lineage else None),
        "missing_key": record.missing_key if record else None,
        "guidance": advice,
        "commands": commands,
    }
    emit(as_json, payload, _render_show)
    return EXIT_OK


def _lineage_view(lineage: LineageRecord | None) -> dict[str, Any] | None:
    if lineage is None:
        return None
    return {
        "status": str(lineage.status),
        "category": lineage.category,
        "reason": lineage.reason,
        "attempts": lineage.attempts,
        "erp_document_ids": list(lineage.erp_document_ids),
        "checkpoints": {name: moment.isoformat() for name, moment in sorted(lineage.checkpoints.items())},
        "redrives": list(lineage.redrives),
    }


def _render_show(payload: dict[str, Any]) -> str:
    record = payload["record"] or {}
    lines = [f"event {payload['event_id']}"]
    if record:
        lines += [
            f"  source:    {record['source']} {record['source_event_id']} ({record['event_type']})",
            f"  category:  {record['category']}  stage: {record['stage']}  attempts: {record['attempts']}",
            f"  first/last seen: {record['first_seen']} / {record['last_seen']}",
            f"  raw:       {record.get('raw_ref')}",
        ]
        if record.get("missing_key"):
            lines.append(f"  missing:   {record['missing_key']}")
    if payload["store"]:
        lines.append("  store:     " + ", ".join(f"{k}={v}" for k, v in sorted(payload["store"].items())))
    lines.append(f"reason: {payload['reason']}")
    lineage = payload["lineage"]
    if lineage:
        lines.append(f"lineage: {lineage['status']} after {lineage['attempts']} attempt(s)")
        lines += [f"  {name:<12} {moment}" for name, moment in lineage["checkpoints"].items()]
        lines += [f"  redrive: {entry}" for entry in lineage["redrives"]]
    lines.append(f"what to do: {payload['guidance']}")
    lines += [f"  $ {command}" for command in payload["commands"]]
    return "\n".join(lines)


# ---- redrive and purge ----


@dataclass
class Resender:
    """Sends a parked event again: a canonical event to the posting queue, an ingest one from the raw archive."""

    target: Target
    default_legal_entity: str = "US01"
    clock: Callable[[], datetime] = _utc_now
    _posting: SqsPostingQueue | None = None

    def resend(self, message: QueuedMessage) -> str:
        """Returns how it was resent; raises ResendError."""
        record = message.record
        if record.stage == ExceptionStage.POSTING and record.event:
            if self._posting is None:
                self._posting = SqsPostingQueue(self.target.client("sqs"), self.target.output("PostingQueueUrl"))
            try:
                self._posting.requeue(record.event)
            except Exception as exc:
                raise ResendError(str(exc)) from exc
            return "requeued for posting"
        return self._reingest(record, message.body)

    def _reingest(self, record: ExceptionRecord, body: str) -> str:
        from billing_sync.aws.bus import EventBridgePublisher
        from billing_sync.composition.ingest import stripe_account_entities
        from billing_sync.sources.stripe import StripeNormaliser

        if record.source != "stripe":
            raise ResendError(f"no normaliser for source {record.source!r}")
        payload, raw_ref = self._raw_payload(record, body)
        try:
            event = StripeNormaliser(
                default_legal_entity=self.default_legal_entity, stripe_accounts=stripe_account_entities()
            ).normalise(payload, received_at=self.clock(), raw_ref=raw_ref)
        except MalformedEventError as exc:
            raise ResendError(f"still cannot be normalised: {exc}") from exc
        if event is None:
            raise ResendError(f"stripe type {payload.get('type')} is not used by billing-sync: nothing to publish")
        try:
            EventBridgePublisher(self.target.client("events"), self.target.output("BillingBusName")).publish(event)
        except Exception as exc:
            raise ResendError(str(exc)) from exc
        return "normalised again from the raw archive and published"

    def _raw_payload(self, record: ExceptionRecord, body: str) -> tuple[dict[str, Any], str]:
        bucket = self.target.optional_output("RawArchiveBucketName")
        refs = []
        if record.raw_ref and record.raw_ref.startswith("s3://"):
            refs.append(record.raw_ref)
        if bucket and record.source_event_id not in _UNREADABLE_IDS:
            refs.append(f"s3://{bucket}/{raw_archive_key(record.source, record.source_event_id)}")
        for ref in refs:
            located = raw_object(ref)
            if located is None:
                continue
            try:
                raw = self.target.client("s3").get_object(**located.get_object_args())["Body"].read()
                return json.loads(raw), ref
            except Exception as exc:
                log(f"cannot read {ref}: {exc}")
        if isinstance(record.event, dict) and record.stage == "ingest":
            return record.event, record.raw_ref or "exception record"
        # A partner on-failure record carries the Stripe event it could not take.
        message = json.loads(body)
        request = message.get("requestPayload") if isinstance(message, dict) else None
        if isinstance(request, dict):
            nested = request.get("detail")
            stripe_event: dict[str, Any] = nested if isinstance(nested, dict) else request
            return stripe_event, record.raw_ref or "lambda-on-failure-record"
        raise ResendError("no raw payload: not in the raw archive and not in the message")


@dataclass
class SweepResult:
    items: list[dict[str, Any]] = field(default_factory=list)
    unreadable: list[dict[str, Any]] = field(default_factory=list)
    kept: int = 0
    not_in_queue: list[str] = field(default_factory=list)


def sweep_exceptions(
    target: Target,
    filters: Filters,
    *,
    action: str,  # "redrive" or "purge"
    dry_run: bool,
    limit: int | None,
    limiter: Limiter,
    resender: Resender | None = None,
    now: datetime | None = None,
    visibility_seconds: int = VISIBILITY_SECONDS,
) -> SweepResult:
    now = now or _utc_now()
    store = _store(target)
    lineage = _lineage(target)
    caller = target.caller
    how = f"dlq {action} {filters.describe()}"
    resender = resender or Resender(target)
    selected: dict[str, ExceptionRecord] = {}
    if store is not None:
        for category in filters.categories or (None,):
            for record in store.open(
                category=ExceptionCategory(category) if category else None, older_than=filters.cutoff(now)
            ):
                if filters.matches(record, now=now):
                    selected[record.event_id] = record
    open_in_store: dict[str, bool] = {}

    def is_open(event_id: str) -> bool:
        """Open in the store but not selected: left alone. Closed or absent: judged by the message itself."""
        if store is None:
            return False
        if event_id not in open_in_store:
            found = store.get(event_id)
            open_in_store[event_id] = found is not None and found[1].get("status") == ExceptionStatus.OPEN
        return open_in_store[event_id]

    result = SweepResult()
    found: set[str] = set()
    done = 0
    with progress(f"dlq {action}{' (dry run)' if dry_run else ''}", len(selected) or None) as advance:
        for queue_url in exception_queue_urls(target).values():
            sweep = QueueSweep(target.client("sqs"), queue_url, visibility_seconds=visibility_seconds)
            try:
                for message in sweep.messages():
                    if limit is not None and done >= limit:
                        break
                    if not message.readable:
                        result.unreadable.append(
                            {"message_id": message.message_id, "queue": queue_url, "reason": message.record.reason}
                        )
                        continue
                    record = message.record
                    if record.event_id in selected:
                        record = message.record = selected[record.event_id].model_copy(
                            update={"event": record.event or selected[record.event_id].event}
                        )
                    elif is_open(record.event_id):
                        continue
                    else:
                        record = message.record = _with_lineage_category(record, lineage)
                        if not filters.matches(record, now=now):
                            continue
                    found.add(record.event_id)
                    done += 1
                    result.items.append(
                        _act(message, sweep, action, dry_run, limiter, resender, store, lineage, caller, how)
                    )
                    advance()
            finally:
                result.kept += sweep.kept
                sweep.release()
    result.not_in_queue = sorted(set(selected) - found) if limit is None else []
    return result


def _with_lineage_category(record: ExceptionRecord, lineage: DynamoLineageStore) -> ExceptionRecord:
    """An unindexed message (a redrive-policy move) takes its category from lineage when known."""
    try:
        known = lineage.get(record.event_id)
    except Exception:
        return record
    if known is not None and known.category is not None:
        return record.model_copy(update={"category": known.category, "reason": known.reason or record.reason})
    return record


def _act(
    message: QueuedMessage,
    sweep: QueueSweep,
    action: str,
    dry_run: bool,
    limiter: Limiter,
    resender: Resender,
    store: DynamoExceptionStore | None,
    lineage: DynamoLineageStore,
    caller: str,
    how: str,
) -> dict[str, Any]:
    record = message.record
    item: dict[str, Any] = {
        "event_id": record.event_id,
        "source_event_id": record.source_event_id,
        "event_type": record.event_type,
        "category": str(record.category),
        "stage": str(record.stage),
        "message_id": message.message_id,
    }
    if dry_run:
        return {**item, "result": f"would {action}"}
    done = "purged"
    try:
        if action == "redrive":
            limiter.acquire()
            done = resender.resend(message)
        sweep.delete(message)
    except Exception as exc:
        return {**item, "result": "failed", "error": str(exc)}
    item["result"] = "redriven" if action == "redrive" else "purged"
    item["how"] = done
    at = _utc_now()
    try:
        if store is not None:
            status = ExceptionStatus.REDRIVEN if action == "redrive" else ExceptionStatus.PURGED
            store.close(record.event_id, status=status, at=at, by=caller, note=how)
        lineage.note_redrive(record.event_id, at=at, by=caller, how=f"{how} ({done})")
    except Exception as exc:
        item["audit_error"] = f"{item['result']}, but the audit trail was not written: {exc}"
    return item


def run_sweep(
    target: Target,
    filters: Filters,
    *,
    action: str,
    dry_run: bool,
    limit: int | None,
    rate: float | None,
    as_json: bool,
    default_legal_entity: str = "US01",
) -> int:
    if action == "purge" and filters.empty:
        log("dlq purge needs at least one filter (--category, --event-type, --event-id, --older-than)")
        return EXIT_USAGE
    limiter: Limiter = TokenBucket(rate) if rate else Unlimited()
    result = sweep_exceptions(
        target,
        filters,
        action=action,
        dry_run=dry_run,
        limit=limit,
        limiter=limiter,
        resender=Resender(target, default_legal_entity=default_legal_entity),
    )
    outcomes = Counter(item["result"] for item in result.items)
    failed = outcomes["failed"] + sum(1 for item in result.items if "audit_error" in item)
    payload = {
        "command": f"dlq {action}",
        "target": target.description,
        "dry_run": dry_run,
        "filters": filters.as_dict(),
        "selected": len(result.items),
        "redriven" if action == "redrive" else "purged": outcomes["redriven" if action == "redrive" else "purged"],
        "failed": outcomes["failed"],
        "unreadable": result.unreadable,
        "left_in_queue": result.kept,
        "not_in_queue": result.not_in_queue,
        "items": result.items,
    }
    emit(as_json, payload, _render_sweep)
    return EXIT_ITEMS_FAILED if failed else EXIT_OK


def _render_sweep(payload: dict[str, Any]) -> str:
    verb = payload["command"].split()[-1]
    done = payload.get("redriven", payload.get("purged"))
    head = f"{payload['command']}{' (dry run)' if payload['dry_run'] else ''} on {payload['target']}"
    lines = [
        head,
        f"  selected {payload['selected']}, {verb} {done}, failed {payload['failed']}, "
        f"unreadable {len(payload['unreadable'])}, left in the queue {payload['left_in_queue']}",
    ]
    for item in payload["items"]:
        detail = item.get("error") or item.get("how") or ""
        lines.append(
            f"  {item['result']:<14} {item['category']:<18} {item['event_type']:<22} {item['event_id']}  {detail}"
        )
        if "audit_error" in item:
            lines.append(f"    ! {item['audit_error']}")
    for message in payload["unreadable"]:
        lines.append(f"  unreadable     message {message['message_id']}: {message['reason']}")
    for event_id in payload["not_in_queue"]:
        lines.append(f"  not in queue   {event_id} (open in the store; no message found: taken by another reader?)")
    return "\n".join(lines)
