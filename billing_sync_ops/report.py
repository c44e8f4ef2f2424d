"""The run report: every accepted event's outcome, totals, the ledger's trial balance (transaction and
functional), realised FX, payouts with Stripe clearing, the refund saga's executions with the states
each entered, the revenue recognition run and the deferred revenue roll-forward."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

from billing_sync.domain.balances import roll_forward as running_roll_forward
from billing_sync.domain.balances import trial_balance_as_of
from billing_sync.domain.journal import (
    DocumentKind,
    EntityTrialBalance,
    ErpDocument,
    TrialBalanceRow,
    entity_trial_balance,
)
from billing_sync.domain.lineage import LineageRecord, LineageStatus
from billing_sync.domain.mapping import AccountMapping, AccountRole, MappingContext
from billing_sync.domain.money import Money
from billing_sync.erp.ledger import DynamoLedgerErpClient
from billing_sync.state.balances import DynamoBalancesStore
from billing_sync.state.dynamo import DynamoLineageStore
from billing_sync_ops.ops.revenue import (
    deferred_revenue_accounts,
    deferred_roll_forward,
    load_mapping,
    render_roll_forward,
)

_OUTCOME = {
    LineageStatus.POSTED: "POSTED",
    LineageStatus.IGNORED: "IGNORED",
    LineageStatus.EXCEPTION: "EXCEPTION",
    LineageStatus.PENDING: "PENDING",
    LineageStatus.CLAIMED: "PENDING",
    LineageStatus.WAITING: "WAITING",
}


def dead_lettered_event_ids(sqs: Any, queue_url: str) -> set[str]:
    """Canonical event ids of bus messages the redrive policy moved to the exception queue.

    Reads every message by hiding each one briefly, then makes them all visible again, so the queue
    is left as it was (receive counts aside).
    """
    event_ids: set[str] = set()
    handles: list[str] = []
    try:
        while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=60).get(
            "Messages", []
        ):
            for message in messages:
                handles.append(message["ReceiptHandle"])
                event_id = _bus_event_id(message["Body"])
                if event_id:
                    event_ids.add(event_id)
    finally:
        for start in range(0, len(handles), 10):
            sqs.change_message_visibility_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                    for i, handle in enumerate(handles[start : start + 10])
                ],
            )
    return event_ids


def _bus_event_id(body: str) -> str | None:
    try:
        envelope = json.loads(body)
    except ValueError:
        return None
    detail = envelope.get("detail") if isinstance(envelope, dict) and "detail-type" in envelope else None
    return detail.get("event_id") if isinstance(detail, dict) else None


def saga_executions(stepfunctions: Any, state_machine_arns: Iterable[str]) -> list[dict[str, Any]]:
    """One entry per execution of the given state machines, oldest first: its name, status, and the
    states it entered in order (the history's *StateEntered events)."""
    executions: list[dict[str, Any]] = []
    for arn in state_machine_arns:
        for page in stepfunctions.get_paginator("list_executions").paginate(stateMachineArn=arn):
            executions += page["executions"]
    executions.sort(key=lambda execution: (execution["startDate"], execution["name"]))
    return [
        {
            "name": execution["name"],
            "status": execution["status"],
            "states": entered_states(stepfunctions, execution["executionArn"]),
        }
        for execution in executions
    ]


def entered_states(stepfunctions: Any, execution_arn: str) -> list[str]:
    """The names of the states an execution entered, in order (a state entered twice appears twice)."""
    states: list[str] = []
    for page in stepfunctions.get_paginator("get_execution_history").paginate(executionArn=execution_arn):
        states += [
            event["stateEnteredEventDetails"]["name"]
            for event in page["events"]
            if event["type"].endswith("StateEntered") and "stateEnteredEventDetails" in event
        ]
    return states


def build_report(
    *,
    lineage: DynamoLineageStore,
    ledger: DynamoLedgerErpClient,
    accepted: dict[str, str],
    dead_lettered: set[str],
    refused: list[dict[str, Any]],
    refunds: list[dict[str, Any]] | None = None,
    recognition: dict[str, Any] | None = None,
    mapping: AccountMapping | None = None,
    balances: DynamoBalancesStore | None = None,
) -> dict[str, Any]:
    """With `balances` (the running balances table), the trial balances and the deferred revenue roll-forward
    are read from it (queries per entity) instead of scanning the ledger; `balances_source` says which.
    `refunds` is `saga_executions(...)` for the refund saga (empty when not given); `recognition` the
    summary of a recognition run (`ops.revenue.recognise`), None when none ran; `mapping` names the
    deferred revenue accounts of the roll-forward (default: the bundled mapping)."""
    records = {record.event_id: record for record in lineage.scan()}
    events = [_event_entry(record, dead_lettered) for record in records.values()]
    events += [
        {
            "event_id": event_id,
            "source_event_id": source_event_id,
            "type": None,
            "outcome": "EXCEPTION" if event_id in dead_lettered else "PENDING",
            "category": None,
            "erp_documents": [],
            "lineage_status": None,
        }
        for event_id, source_event_id in accepted.items()
        if event_id not in records
    ]
    events.sort(key=lambda entry: (entry["outcome"], entry["type"] or "", entry["source_event_id"]))
    outcomes = Counter(entry["outcome"] for entry in events)
    mapping = mapping or load_mapping(None)
    posted = list(ledger.posted_documents())  # realised FX and payouts list documents
    if balances is not None:
        documents, balanced, rows, functional, roll_forward_rows = running_figures(balances, mapping)
    else:
        documents, balanced, rows = ledger.trial_balance()
        functional = entity_trial_balance(
            posted,
            basis="functional",
            functional_currencies={code: entity.functional_currency for code, entity in mapping.legal_entities.items()},
        )
        roll_forward_rows = deferred_roll_forward(ledger, deferred_revenue_accounts(mapping))
    return {
        "events": events,
        "totals": {
            "received": len(events),
            "posted": outcomes["POSTED"],
            "ignored": outcomes["IGNORED"],
            "exceptions": outcomes["EXCEPTION"],
            "pending": outcomes["PENDING"],
            "waiting": outcomes["WAITING"],
        },
        "refused": refused,
        "refunds": list(refunds or []),
        "ledger": {
            "balanced": balanced,
            "documents": documents,
            "trial_balance": [row.model_dump(mode="json") for row in rows],
            "functional_trial_balance": [row.model_dump(mode="json") for row in functional.rows],
            "functional_balanced": functional.balanced,
        },
        "fx": fx_lines(posted, mapping),
        "payouts": payouts(posted, mapping),
        "recognition": _recognition_entry(recognition),
        "deferred_revenue": roll_forward_rows,
        # Where the trial balances and the roll-forward came from: the running balances or a ledger scan.
        "balances_source": "running" if balances is not None else "scan",
    }


def running_figures(
    balances: DynamoBalancesStore, mapping: AccountMapping
) -> tuple[int, bool, list[TrialBalanceRow], EntityTrialBalance, list[dict[str, Any]]]:
    """(documents, balanced, trial balance over every entity, functional trial balance, deferred revenue
    roll-forward) from the running balances: the same figures the ledger scan gives."""
    entities = sorted(mapping.legal_entities)
    by_entity = trial_balance_as_of(
        balances.trial_balance_items(entities, basis="transaction"), basis="transaction", as_of=None
    )
    totals: dict[tuple[str, str], list[int]] = {}
    for row in by_entity.rows:
        total = totals.setdefault((row.account, row.currency), [0, 0])
        total[0] += row.debit
        total[1] += row.credit
    rows = [
        TrialBalanceRow(account=account, currency=currency, debit=debit, credit=credit)
        for (account, currency), (debit, credit) in sorted(totals.items())
    ]
    functional = trial_balance_as_of(
        balances.trial_balance_items(entities, basis="functional"), basis="functional", as_of=None
    )
    documents = sum(count["documents"] for count in balances.document_counts(entities))
    roll_forward_rows = running_roll_forward(balances.roll_forward_items(entities))
    return documents, by_entity.balanced, rows, functional, roll_forward_rows  # type: ignore[return-value]


def fx_lines(documents: list[ErpDocument], mapping: AccountMapping) -> list[dict[str, Any]]:
    """Every realised FX line: the document, its transaction currency, the rates and the gain (+) or loss (-)."""
    entries = []
    for document in documents:
        realised = mapping.account(AccountRole.REALISED_FX, MappingContext(legal_entity=document.legal_entity))
        for line in document.journal:
            if line.account != realised or not line.functional_currency:
                continue
            rates = sorted(
                {f"{item.rate} ({item.rate_source})" for item in document.journal if item.account != realised}
            )
            entries.append(
                {
                    "document": document.external_id,
                    "legal_entity": document.legal_entity,
                    "posting_date": document.posting_date.isoformat(),
                    "transaction_currency": document.currency,
                    "functional_currency": line.functional_currency,
                    "gain": line.functional_credit - line.functional_debit,
                    "rates": rates,
                }
            )
    return sorted(entries, key=lambda entry: entry["document"])


def payouts(documents: list[ErpDocument], mapping: AccountMapping) -> list[dict[str, Any]]:
    """Each payout with its entity's Stripe clearing balance in the payout's currency (functional amounts)
    over the whole ledger: zero once every payout has settled what cleared."""
    entries = []
    for payout in (d for d in documents if d.kind is DocumentKind.PAYOUT):
        clearing = mapping.account(AccountRole.PAYMENT_CLEARING, MappingContext(legal_entity=payout.legal_entity))
        balance = sum(
            line.functional_net
            for document in documents
            if document.legal_entity == payout.legal_entity
            for line in document.journal
            if line.account == clearing and line.currency == payout.currency
        )
        entries.append(
            {
                "payout": payout.external_id,
                "legal_entity": payout.legal_entity,
                "currency": payout.currency,
                "amount": payout.total,
                "arrival": payout.posting_date.isoformat(),
                "clearing_account": clearing,
                "clearing_balance": balance,
            }
        )
    return entries


def _recognition_entry(summary: dict[str, Any] | None) -> dict[str, Any] | None:
    if summary is None:
        return None
    return {
        "through": summary["through"],
        "releases": len(summary["created"]),
        "already_posted": summary["already_posted"],
        "by_currency": summary["by_currency"],
        "by_month": summary["by_month"],
    }


def _event_entry(record: LineageRecord, dead_lettered: set[str]) -> dict[str, Any]:
    outcome = _OUTCOME[record.status]
    if outcome == "PENDING" and record.event_id in dead_lettered:
        outcome = "EXCEPTION"
    return {
        "event_id": record.event_id,
        "source_event_id": record.source_event_id,
        "type": record.event_type,
        "outcome": outcome,
        "category": record.category.value if record.category else None,
        "erp_documents": list(record.erp_document_ids),
        "reason": record.reason,
        "attempts": record.attempts,
        "lineage_status": record.status.value,
    }


def unsettled(report: dict[str, Any]) -> dict[str, int]:
    """Accepted events not settled: `pending` (queued, retrying, or accepted with no lineage yet),
    `claimed` (being posted when the report was taken) and `waiting` (held by name for what they need).
    """
    counts = {"pending": 0, "claimed": 0, "waiting": 0}
    for entry in report["events"]:
        if entry["outcome"] == "WAITING":
            counts["waiting"] += 1
        elif entry["outcome"] == "PENDING":
            counts["claimed" if entry.get("lineage_status") == LineageStatus.CLAIMED.value else "pending"] += 1
    return counts


def render_summary(report: dict[str, Any]) -> str:
    totals = report["totals"]
    lines = [
        "",
        "billing-sync local run",
        "======================",
        f"events received: {totals['received']}  posted: {totals['posted']}  ignored: {totals['ignored']}  "
        f"exceptions: {totals['exceptions']}  pending: {totals['pending']}  waiting: {totals['waiting']}  "
        f"(refused before storage: {len(report['refused'])})",
        "",
        f"{'outcome':<10} {'type':<32} {'source event':<30} {'ERP documents / category'}",
    ]
    for entry in report["events"]:
        detail = ", ".join(entry["erp_documents"]) or entry["category"] or ""
        lines.append(f"{entry['outcome']:<10} {entry['type'] or '?':<32} {entry['source_event_id']:<30} {detail}")
    ledger = report["ledger"]
    lines += [
        "",
        f"ledger: {ledger['documents']} documents, every journal balanced: {ledger['balanced']}",
        f"{'account':<36} {'currency':<8} {'debit':>16} {'credit':>16}",
    ]
    for row in ledger["trial_balance"]:
        debit = Money(amount=row["debit"], currency=row["currency"]).to_decimal()
        credit = Money(amount=row["credit"], currency=row["currency"]).to_decimal()
        lines.append(f"{row['account']:<36} {row['currency']:<8} {debit:>16} {credit:>16}")
    if ledger.get("functional_trial_balance"):
        lines += [
            "",
            f"functional currency, per entity (every journal balanced: {ledger['functional_balanced']}):",
            f"{'entity':<8} {'account':<36} {'currency':<8} {'debit':>16} {'credit':>16}",
        ]
        for row in ledger["functional_trial_balance"]:
            debit = Money(amount=row["debit"], currency=row["currency"]).to_decimal()
            credit = Money(amount=row["credit"], currency=row["currency"]).to_decimal()
            lines.append(f"{row['legal_entity']:<8} {row['account']:<36} {row['currency']:<8} {debit:>16} {credit:>16}")
    for entry in report.get("fx", []):
        gain = Money(amount=entry["gain"], currency=entry["functional_currency"])
        lines.append(
            f"realised FX on {entry['document']} ({entry['transaction_currency']} in {entry['legal_entity']}): "
            f"{'gain' if entry['gain'] >= 0 else 'loss'} {abs(gain.to_decimal())} {entry['functional_currency']} "
            f"at rates {', '.join(entry['rates'])}"
        )
    for entry in report.get("payouts", []):
        amount = Money(amount=entry["amount"], currency=entry["currency"]).to_decimal()
        after = Money(amount=entry["clearing_balance"], currency=entry["currency"]).to_decimal()
        lines.append(
            f"payout {entry['payout']} of {amount} {entry['currency']} ({entry['legal_entity']}, {entry['arrival']}): "
            f"{entry['clearing_account']} {entry['currency']} balance now {after}"
        )
    recognition = report.get("recognition")
    if recognition:
        released = ", ".join(
            f"{Money(amount=amount, currency=currency).to_decimal()} {currency}"
            for currency, amount in recognition["by_currency"].items()
        )
        lines += [
            "",
            f"revenue recognised through {recognition['through']}: {recognition['releases']} releases "
            f"({recognition['already_posted']} already posted): {released or 'nothing'}",
        ]
    if report.get("deferred_revenue"):
        lines += ["", "deferred revenue roll-forward:", *render_roll_forward(report["deferred_revenue"])]
    exceptions = [e for e in report["events"] if e["outcome"] in ("EXCEPTION", "PENDING", "WAITING")]
    if exceptions:
        lines += ["", "exceptions, pending and waiting events:"]
        for entry in exceptions:
            lines.append(
                f"  {entry['outcome']} {entry['category'] or '-'}: {entry['source_event_id']}: {entry.get('reason')}"
            )
    for refusal in report["refused"]:
        lines.append(f"  refused {refusal['status']} {refusal.get('error')}: {refusal.get('message')}")
    if report.get("refunds"):
        lines += ["", "refund saga executions:"]
        for execution in report["refunds"]:
            lines.append(f"  {execution['status']:<9} {execution['name']}: {' -> '.join(execution['states'])}")
    return "\n".join(lines) + "\n"
