"""Composition root of the KPI function: reads its inputs through the stores and computes the KPIs.

Where each input comes from (hourly, on an EventBridge Scheduler schedule):
- completeness: posted invoices from the running balances (count and total per currency this month) plus
  the invoices parked in the exception store (their canonical event's total) = billed;
- posting latency: lineage records posted within the window (`received` -> `posted` checkpoints); this is
  a scan of the lineage table once an hour, filtered in memory (a time-bucket index would make it a query);
- unapplied cash: customer credit balances (trial balance) and payments applied to nothing (balances);
- deferred revenue variance and reconciliation differences: only when the invoking event carries a
  reconciliation result (`{"reconciliation": {...}}` from the reconcile job); otherwise not emitted;
- exceptions: the exception store's open-by-category index (a query per category, never a scan).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from billing_sync.aws.exception_store import DynamoExceptionStore
from billing_sync.composition.aws import aws_client, utc_now
from billing_sync.composition.balances import account_mapping, balances_store_for
from billing_sync.domain import kpis
from billing_sync.domain.balances import period_of, roll_forward, trial_balance_as_of
from billing_sync.domain.lineage import LineageStatus
from billing_sync.domain.mapping import AccountRole
from billing_sync.settings import kpi_settings
from billing_sync.state.balances import DynamoBalancesStore
from billing_sync.state.dynamo import DynamoLineageStore

ALL_ENTITIES = "ALL"  # the legal_entity dimension of KPIs that are not per entity (exceptions, latency)


class KpiReader:
    """Gathers the KPI inputs; every method reads, none writes."""

    def __init__(
        self,
        *,
        balances: DynamoBalancesStore,
        lineage: DynamoLineageStore,
        exceptions: DynamoExceptionStore,
        entities: list[str],
        customer_credit_accounts: set[str],
        window: timedelta,
    ) -> None:
        self._balances, self._lineage, self._exceptions = balances, lineage, exceptions
        self._entities, self._credit_accounts, self._window = entities, customer_credit_accounts, window

    def compute(self, now: datetime, reconciliation: Mapping[str, Any] | None = None) -> list[kpis.EntityKpis]:
        period = period_of(now.date())
        open_exceptions = list(self._exceptions.open())
        parked: dict[str, list[kpis.BilledInvoice]] = defaultdict(list)
        for record in open_exceptions:
            event = record.event or {}
            if record.event_type == "invoice.issued" and isinstance(event.get("data"), dict):
                parked[str(event.get("legal_entity"))].append(
                    kpis.BilledInvoice(
                        record.event_id, str(event["data"].get("currency")), int(event["data"].get("total", 0)), False
                    )
                )
        counts = list(self._balances.document_counts(self._entities, through=period))
        credit_rows = trial_balance_as_of(
            self._balances.trial_balance_items(self._entities, basis="transaction"), basis="transaction", as_of=period
        ).rows
        erp_closing = roll_forward(self._balances.roll_forward_items(self._entities, through=period))
        results = []
        for entity in self._entities:
            posted = [
                kpis.BilledInvoice(
                    f"{row['period']}#{row['currency']}#{i}", row["currency"], row["total"] if i == 0 else 0, True
                )
                for row in counts
                if row["legal_entity"] == entity and row["kind"] == "invoice" and row["period"] == period
                for i in range(row["documents"])
            ]
            credit: dict[str, int] = defaultdict(int)
            for tb in credit_rows:
                if tb.legal_entity == entity and tb.account in self._credit_accounts:
                    credit[tb.currency] += tb.credit - tb.debit
            unapplied: dict[str, int] = defaultdict(int)
            for row in counts:
                if row["legal_entity"] == entity and row["unapplied"]:
                    unapplied[row["currency"]] += row["unapplied"]
            variance: dict[str, int] = {}
            if reconciliation and reconciliation.get("legal_entity") in (None, entity):
                billing_closing = reconciliation.get("deferred_closing", {})
                erp = {str(r["currency"]): int(r["closing"]) for r in erp_closing if r["legal_entity"] == entity}  # type: ignore[call-overload]
                variance = kpis.deferred_revenue_variance(billing_closing, erp) if billing_closing else {}
            results.append(
                kpis.EntityKpis(
                    legal_entity=entity,
                    completeness=kpis.invoice_completeness(posted + parked.get(entity, [])),
                    unapplied_cash=kpis.unapplied_cash(credit, unapplied),
                    deferred_revenue_variance=variance,
                )
            )
        since = now - self._window
        pairs = [
            (record.checkpoints.get("received") or record.first_seen, record.checkpoints["posted"])
            for record in self._lineage.scan()
            if record.status is LineageStatus.POSTED
            and "posted" in record.checkpoints
            and record.checkpoints["posted"] >= since
        ]
        differences = kpis.reconciliation_differences((reconciliation or {}).get("counts", {}))
        results.append(
            kpis.EntityKpis(
                legal_entity=ALL_ENTITIES,
                latency=kpis.posting_latency(pairs),
                exceptions=kpis.exception_summary(((r.category, r.first_seen) for r in open_exceptions), now=now),
                reconciliation_differences=differences,
            )
        )
        return results


@cache
def kpi_reader() -> KpiReader:
    settings = kpi_settings()
    dynamodb = aws_client("dynamodb")
    mapping = account_mapping()
    role = AccountRole.CUSTOMER_CREDIT
    credit_accounts = {rule.accounts[role] for rule in mapping.rules if role in rule.accounts}
    if role in mapping.default_accounts:
        credit_accounts.add(mapping.default_accounts[role])
    return KpiReader(
        balances=balances_store_for(dynamodb, settings.balances_table_name, mapping),
        lineage=DynamoLineageStore(dynamodb, settings.lineage_table_name),
        exceptions=DynamoExceptionStore(dynamodb, settings.exception_table_name),
        entities=sorted(mapping.legal_entities),
        customer_credit_accounts=credit_accounts,
        window=timedelta(seconds=settings.kpi_window_seconds),
    )


def now() -> datetime:
    return utc_now()
