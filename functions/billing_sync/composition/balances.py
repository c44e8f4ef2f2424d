"""Composition root of the running balances function (ledger stream -> balances table)."""

from __future__ import annotations

from functools import cache

from billing_sync.composition.aws import aws_client, utc_now
from billing_sync.domain.mapping import AccountMapping, AccountRole
from billing_sync.settings import balances_settings
from billing_sync.state.balances import DynamoBalancesStore


def deferred_revenue_accounts(mapping: AccountMapping) -> set[str]:
    """Every account the mapping can book deferred revenue to (its default and any rule's)."""
    role = AccountRole.DEFERRED_REVENUE
    accounts = {rule.accounts[role] for rule in mapping.rules if role in rule.accounts}
    if role in mapping.default_accounts:
        accounts.add(mapping.default_accounts[role])
    return accounts


def balances_store_for(client: object, table_name: str, mapping: AccountMapping) -> DynamoBalancesStore:
    """The store over `table_name` with the mapping's deferred revenue accounts and functional currencies."""
    return DynamoBalancesStore(
        client,
        table_name,
        deferred_revenue_accounts=deferred_revenue_accounts(mapping),
        functional_currencies={code: entity.functional_currency for code, entity in mapping.legal_entities.items()},
        clock=utc_now,
    )


@cache
def account_mapping() -> AccountMapping:
    return AccountMapping.model_validate_json(balances_settings().mapping_file.read_bytes())


@cache
def balances_store() -> DynamoBalancesStore:
    return balances_store_for(aws_client("dynamodb"), balances_settings().balances_table_name, account_mapping())


def reset() -> None:
    """Forget this root's adapters (`billing_sync.composition.reset` forgets the shared clients)."""
    from billing_sync import settings

    for cached in (balances_store, account_mapping, settings.balances_settings, settings.kpi_settings):
        cached.cache_clear()
