"""What every accounting module needs: the entity's accounts, and signed amounts as journal lines."""

from __future__ import annotations

from collections.abc import Iterator

from billing_sync.domain.errors import EventValidationError
from billing_sync.domain.journal import JournalLine
from billing_sync.domain.mapping import AccountMapping, AccountRole, MappingContext


class Books:
    """The accounts of one legal entity under one mapping, in one currency."""

    def __init__(self, mapping: AccountMapping, legal_entity: str, currency: str) -> None:
        entity = mapping.legal_entities.get(legal_entity)
        if entity is None:
            raise EventValidationError(f"legal entity {legal_entity!r} is not known to mapping {mapping.version}")
        if not entity.transacts_in(currency):
            raise EventValidationError(f"legal entity {legal_entity} is restricted from transacting in {currency}")
        self.mapping = mapping
        self.legal_entity = legal_entity
        self.subsidiary = entity.subsidiary
        self.currency = currency
        self.local_date = entity.local_date

    def context(self, **keys: str | None) -> MappingContext:
        return MappingContext(legal_entity=self.legal_entity, **keys)

    def account(self, role: AccountRole, **keys: str | None) -> str:
        """Raises MappingError naming the missing key."""
        return self.mapping.account(role, self.context(**keys))

    def item(self, **keys: str | None) -> str:
        return self.mapping.item(self.context(**keys))

    def debit(self, account: str, amount: int, memo: str | None = None) -> Iterator[JournalLine]:
        """A signed debit: a negative amount becomes a credit, zero writes nothing."""
        if amount > 0:
            yield JournalLine(account=account, currency=self.currency, debit=amount, memo=memo)
        elif amount < 0:
            yield JournalLine(account=account, currency=self.currency, credit=-amount, memo=memo)

    def credit(self, account: str, amount: int, memo: str | None = None) -> Iterator[JournalLine]:
        """A signed credit: a negative amount becomes a debit, zero writes nothing."""
        yield from self.debit(account, -amount, memo)
