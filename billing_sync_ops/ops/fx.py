"""`billing-sync fx revalue --period YYYY-MM`: month-end revaluation of open foreign balances (ASC 830).

For each legal entity (or `--entity`), the open foreign-currency balances on monetary accounts at the
period's last day are revalued at the rate table's month-end rate; the difference posts as an
FX_REVALUATION document `fx-revaluation-<entity>-<period>` with its reversal on the first day of the next
period (domain.revaluation). A second run posts nothing. An entity without a month-end rate fails alone
(nothing posted for it) and the command exits 1 naming the pair and day; load the rate and run it again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from billing_sync.domain.bookkeeping import Bookkeeper
from billing_sync.domain.errors import BillingSyncError
from billing_sync.domain.journal import ErpDocument
from billing_sync.domain.mapping import AccountMapping
from billing_sync.domain.ports import ErpClient, PeriodCalendar, RateTable
from billing_sync.domain.revaluation import (
    REVERSAL_SUFFIX,
    Revaluation,
    RevaluationService,
    period_end,
    revaluation_external_id,
)
from billing_sync.state.periods import DynamoPeriodCalendar
from billing_sync.state.rates import DynamoRateTable
from billing_sync_ops.ops.ledger import figure
from billing_sync_ops.ops.output import EXIT_ITEMS_FAILED, EXIT_OK, EXIT_USAGE, emit, log, progress
from billing_sync_ops.ops.revenue import ledger_of, load_mapping
from billing_sync_ops.ops.target import Target


def revalue(
    erp: ErpClient,
    mapping: AccountMapping,
    period: str,
    *,
    rates: RateTable,
    periods: PeriodCalendar | None,
    legal_entities: list[str],
    advance: Any = None,
) -> list[dict[str, Any]]:
    """Revalues each entity on its own; returns one summary per entity (a failed one names its error)."""
    bookkeeper = Bookkeeper(mapping=mapping, erp=erp, rates=rates, periods=periods)
    service = RevaluationService(erp=erp, mapping=mapping, bookkeeper=bookkeeper)
    summaries = []
    for index, entity in enumerate(legal_entities, start=1):
        try:
            summaries.append(_summary(service.revalue(entity, period)))
        except BillingSyncError as exc:
            summaries.append(_failed(entity, period, exc))
        if advance is not None:
            advance(index, len(legal_entities))
    return summaries


def run_revalue(
    target: Target, period: str, *, legal_entity: str | None, mapping_file: Path | None, as_json: bool
) -> int:
    try:
        mapping = load_mapping(mapping_file)
    except ValueError as exc:
        log(str(exc))
        return EXIT_USAGE
    if legal_entity is not None and legal_entity not in mapping.legal_entities:
        log(f"unknown legal entity {legal_entity!r}: the mapping knows {', '.join(sorted(mapping.legal_entities))}")
        return EXIT_USAGE
    entities = [legal_entity] if legal_entity else sorted(mapping.legal_entities)
    dynamodb, master_data = target.client("dynamodb"), target.output("MasterDataTableName")
    with progress(f"revaluing open foreign balances at the end of {period}", len(entities)) as advance:
        results = revalue(
            ledger_of(target),
            mapping,
            period,
            rates=DynamoRateTable(dynamodb, master_data),
            periods=DynamoPeriodCalendar(dynamodb, master_data, cache_seconds=0),
            legal_entities=entities,
            advance=advance,
        )
    failed = [result for result in results if result["status"] == "failed"]
    payload = {
        "command": "fx revalue",
        "target": target.description,
        "period": period,
        "month_end": period_end(period).isoformat(),
        "entities": results,
        "failed": len(failed),
    }
    emit(as_json, payload, _render)
    for result in failed:
        log(f"{result['legal_entity']}: {result['error']}; nothing was posted for it (fix and run again)")
    return EXIT_ITEMS_FAILED if failed else EXIT_OK


def _summary(result: Revaluation) -> dict[str, Any]:
    status = "posted" if result.created else "already_posted"
    if result.document is None:
        status = "nothing_to_revalue"
    return {
        "legal_entity": result.legal_entity,
        "status": status,
        "functional_currency": result.functional_currency,
        "external_id": result.document.external_id if result.document else None,
        "posting_date": _date(result.document),
        "reversal_external_id": result.reversal.external_id if result.reversal else None,
        "reversal_posting_date": _date(result.reversal),
        "adjustment": result.document.total if result.document else 0,
        "balances": [
            {
                "account": balance.account,
                "currency": balance.currency,
                "balance": balance.balance,
                "carried": balance.carried,
                "revalued": balance.revalued,
                "adjustment": balance.adjustment,
                "rate": str(balance.rate.value),
                "rate_source": balance.rate.source,
                "rate_date": balance.rate.as_of.isoformat(),
            }
            for balance in result.balances
        ],
        "error": None,
    }


def _failed(legal_entity: str, period: str, exc: BillingSyncError) -> dict[str, Any]:
    external_id = revaluation_external_id(legal_entity, period)
    return {
        "legal_entity": legal_entity,
        "status": "failed",
        "external_id": external_id,
        "reversal_external_id": external_id + REVERSAL_SUFFIX,
        "category": exc.category.value,
        "error": f"{type(exc).__name__}: {exc}",
        "balances": [],
    }


def _date(document: ErpDocument | None) -> str | None:
    return document.posting_date.isoformat() if document is not None else None


def _render(payload: dict[str, Any]) -> str:
    lines = [f"revaluation of open foreign balances at {payload['month_end']} on {payload['target']}"]
    for result in payload["entities"]:
        entity, status = result["legal_entity"], result["status"]
        if status == "failed":
            lines.append(f"  {entity:<6} FAILED  {result['error']}")
            continue
        if status == "nothing_to_revalue":
            lines.append(f"  {entity:<6} nothing to revalue")
            continue
        currency = result["functional_currency"]
        lines.append(
            f"  {entity:<6} {status.replace('_', ' ')}: {result['external_id']} on {result['posting_date']}, "
            f"reversed by {result['reversal_external_id']} on {result['reversal_posting_date']}; "
            f"net {figure(result['adjustment'], currency)} {currency}"
        )
        for balance in result["balances"]:
            lines.append(
                f"    {balance['account']:<32} {figure(balance['balance'], balance['currency']):>14} "
                f"{balance['currency']} at {balance['rate']}: {figure(balance['carried'], currency)} -> "
                f"{figure(balance['revalued'], currency)} ({figure(balance['adjustment'], currency)} {currency})"
            )
    return "\n".join(lines)
