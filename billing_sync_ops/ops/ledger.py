"""`billing-sync ledger trial-balance`: debits and credits per legal entity, account and currency.

Read from the running balances (one query per entity, kept per month from the ledger's stream) when the
target has them and the as-of day is a month end (or not given); otherwise, for a day within a month, off
the embedded ledger's posted documents (one scan). `--as-of DAY` counts only documents posted on or
before DAY; `--currency functional` adds up the lines' functional amounts in each entity's functional
currency (a line carrying only a functional amount, such as a revaluation, counts there and not in
transaction currency). Amounts are integer minor units in JSON. Exit code 1 when some entity's debits and
credits differ in some currency.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from billing_sync.composition.balances import balances_store_for
from billing_sync.domain.balances import trial_balance_as_of
from billing_sync.domain.journal import CurrencyBasis, EntityTrialBalance, entity_trial_balance
from billing_sync.domain.money import Money
from billing_sync_ops.ops.output import EXIT_ITEMS_FAILED, EXIT_OK, EXIT_USAGE, emit, log
from billing_sync_ops.ops.revenue import ledger_of, load_mapping
from billing_sync_ops.ops.target import Target


def trial_balance_payload(balance: EntityTrialBalance, *, legal_entity: str | None) -> dict[str, Any]:
    """What `ledger trial-balance --json` prints (without the command and target)."""
    return {
        "as_of": balance.as_of.isoformat() if balance.as_of else None,
        "currency_basis": balance.currency_basis,
        "legal_entity": legal_entity,
        "rows": [row.model_dump(mode="json") for row in balance.rows],
        "checks": [{**check.model_dump(mode="json"), "balanced": check.balanced} for check in balance.checks],
        "balanced": balance.balanced,
        "documents": balance.documents,
    }


def run_trial_balance(
    target: Target,
    *,
    legal_entity: str | None,
    as_of: date | None,
    basis: CurrencyBasis,
    mapping_file: Path | None,
    as_json: bool,
) -> int:
    try:
        mapping = load_mapping(mapping_file)
    except ValueError as exc:
        log(str(exc))
        return EXIT_USAGE
    if legal_entity is not None and legal_entity not in mapping.legal_entities:
        log(f"unknown legal entity {legal_entity!r}: the mapping knows {', '.join(sorted(mapping.legal_entities))}")
        return EXIT_USAGE
    functional = {code: entity.functional_currency for code, entity in mapping.legal_entities.items()}
    balances_table = target.optional_output("BalancesTableName")
    if balances_table and (as_of is None or (as_of + timedelta(days=1)).day == 1):
        store = balances_store_for(target.client("dynamodb"), balances_table, mapping)
        entities = [legal_entity] if legal_entity else sorted(mapping.legal_entities)
        through = f"{as_of.year:04d}-{as_of.month:02d}" if as_of else None
        balance = trial_balance_as_of(
            store.trial_balance_items(entities, basis=basis, through=through), basis=basis, as_of=through
        ).model_copy(
            update={
                "as_of": as_of,
                "documents": sum(count["documents"] for count in store.document_counts(entities, through=through)),
            }
        )
        source = "running balances"
    else:
        balance = entity_trial_balance(
            ledger_of(target).posted_documents(legal_entity),
            basis=basis,
            as_of=as_of,
            legal_entity=legal_entity,
            functional_currencies=functional,
        )
        source = "ledger"
    payload = {
        "command": "ledger trial-balance",
        "target": target.description,
        "source": source,
        **trial_balance_payload(balance, legal_entity=legal_entity),
    }
    emit(as_json, payload, _render)
    if not balance.balanced:
        log("the trial balance does not balance: see the checks marked UNBALANCED")
        return EXIT_ITEMS_FAILED
    return EXIT_OK


def figure(amount: int, currency: str) -> str:
    """`1,085.00`: minor units at the currency's exponent (the raw integer if the currency is unknown)."""
    try:
        return f"{Money(amount=amount, currency=currency).to_decimal():,}"
    except Exception:
        return str(amount)


def _render(payload: dict[str, Any]) -> str:
    as_of = payload["as_of"] or "today"
    lines = [
        f"trial balance of {payload['target']} as of {as_of} ({payload['currency_basis']} currency), "
        f"{payload['documents']} documents",
    ]
    if not payload["rows"]:
        lines.append("  no journal lines")
        return "\n".join(lines)
    lines.append(f"{'entity':<8} {'account':<36} {'currency':<8} {'debit':>16} {'credit':>16}")
    for row in payload["rows"]:
        lines.append(
            f"{row['legal_entity']:<8} {row['account']:<36} {row['currency']:<8} "
            f"{figure(row['debit'], row['currency']):>16} {figure(row['credit'], row['currency']):>16}"
        )
    lines.append("")
    for check in payload["checks"]:
        state = "balanced" if check["balanced"] else "UNBALANCED"
        lines.append(
            f"{check['legal_entity']:<8} {'total':<36} {check['currency']:<8} "
            f"{figure(check['debit'], check['currency']):>16} {figure(check['credit'], check['currency']):>16}  {state}"
        )
    return "\n".join(lines)
