"""`billing-sync lineage show ID`: the trail from raw event to lineage to ERP documents to reconciliation status.

ID is a canonical event id (uuid), a Stripe event id (`evt_…`), or a billing document as `SOURCE/DOCUMENT_ID`
(`stripe/in_…`). Reads the stack's tables directly (lineage, ledger) and the reconciliation reports in its bucket
when the target has one, exactly as the lineage API does. Exit code 1 when nothing knows ID, 2 when ID is malformed.
"""

from __future__ import annotations

from typing import Any

from billing_sync.composition.lineage import LineageTrails, MalformedIdError, trails_for
from billing_sync_ops.ops.output import EXIT_ITEMS_FAILED, EXIT_OK, EXIT_USAGE, emit, log
from billing_sync_ops.ops.target import Target


def trails_of(target: Target) -> LineageTrails:
    bucket = target.optional_output("ReconciliationBucketName")
    return trails_for(
        dynamodb=target.client("dynamodb"),
        lineage_table=target.output("LineageTableName"),
        ledger_table=target.output("LedgerTableName"),
        s3=target.client("s3") if bucket else None,
        bucket=bucket,
    )


def lineage_show(target: Target, identifier: str, *, as_json: bool) -> int:
    trails = trails_of(target)
    try:
        if "/" in identifier:
            source, _, document_id = identifier.partition("/")
            trail = trails.for_document(source, document_id)
        else:
            trail = trails.for_event(identifier)
    except MalformedIdError as exc:
        log(str(exc))
        return EXIT_USAGE
    if trail is None:
        log(f"nothing in {target.description} knows {identifier!r}")
        return EXIT_ITEMS_FAILED
    emit(as_json, {"command": "lineage show", "target": target.description, "id": identifier, **trail}, _render)
    return EXIT_OK


def _render(payload: dict[str, Any]) -> str:
    out: list[str] = []
    events = payload.get("events") or [{"event": payload["event"], "lineage": payload["lineage"]}]
    if "document" in payload:
        out.append(f"document {payload['document']['source']}/{payload['document']['document_id']}")
    for entry in events:
        event, lineage = entry["event"], entry["lineage"]
        out.append(f"event {event['event_id']}  {event.get('source', '')} {event.get('source_event_id', '')}")
        out.append(f"  type {event.get('event_type', '?')}  raw {event.get('raw_ref') or '-'}")
        for body in event.get("raw_bodies", ()):
            out.append(f"  body sha256 {body['sha256']}  version {body['version_id'] or '-'}  {body['received_at']}")
        if lineage is None:
            out.append("  lineage: none (posted but not in lineage)")
            continue
        out.append(f"  lineage {lineage['status']}  attempts {lineage['attempts']}  last seen {lineage['last_seen']}")
        if lineage.get("reason"):
            out.append(f"  reason [{lineage.get('category') or '-'}] {lineage['reason']}")
        for redrive in lineage.get("redrives", ()):
            out.append(f"  redrive {redrive}")
    for document in payload.get("erp_documents", ()):
        recon = document.get("reconciliation") or {}
        out.append(
            f"erp {document['kind']:<18} {document['external_id']}  {document['erp_document_id'] or '-'}  "
            f"{document['total']} {document['currency']} (minor units)  {document['period']}  "
            f"reconciliation {recon.get('class', 'no report')}"
        )
    return "\n".join(out)
