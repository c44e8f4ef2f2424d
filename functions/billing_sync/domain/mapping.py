"""Account mapping rules: versioned data that picks accounts, ERP items and subsidiaries.

Rules match on legal entity, revenue class, product family, tax rate (jurisdiction), region and
channel. The most specific matching rule wins for each account role; the defaults apply when no rule
names a role. A role no rule or default provides is a MAPPING exception, not a crash.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from billing_sync.domain.errors import MappingError
from billing_sync.domain.money import CurrencyCode


class AccountRole(StrEnum):
    ACCOUNTS_RECEIVABLE = "accounts_receivable"
    DEFERRED_REVENUE = "deferred_revenue"
    REVENUE = "revenue"
    DISCOUNTS = "discounts"
    TAX_PAYABLE = "tax_payable"
    PAYMENT_CLEARING = "payment_clearing"
    PROCESSING_FEES = "processing_fees"
    CONTRA_REVENUE = "contra_revenue"
    BAD_DEBT = "bad_debt"
    CUSTOMER_CREDIT = "customer_credit"
    REFUND_LIABILITY = "refund_liability"
    UNDEPOSITED_FUNDS = "undeposited_funds"
    BANK = "bank"  # where a payout lands; rules may pick one per payout destination
    DISPUTED_FUNDS = "disputed_funds"  # a disputed charge's amount while the dispute is open
    DISPUTE_LOSSES = "dispute_losses"  # a lost dispute
    REALISED_FX = "realised_fx"  # gain or loss when a foreign balance settles at another rate
    UNREALISED_FX = "unrealised_fx"  # month-end revaluation of open foreign balances
    FX_ROUNDING = "fx_rounding"  # the minor unit a translation at one rate can leave


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


ClosedPeriodPolicy = Literal["move", "reject"]
RecognitionPeriod = Literal["month", "day"]


class LegalEntity(_Model):
    subsidiary: str = Field(min_length=1)
    name: str
    functional_currency: CurrencyCode = Field(description="The currency its books are kept in (ASC 830).")
    stripe_accounts: tuple[str, ...] = Field(
        default=(), description="Stripe accounts (`acct_…`) whose events and `on_behalf_of` charges belong to it."
    )
    closed_period_policy: ClosedPeriodPolicy = Field(
        default="move",
        description="An event dated in a closed period posts to the first open period (move) or is parked (reject).",
    )
    recognition_period: RecognitionPeriod = Field(
        default="month", description="Revenue recognition posts one journal per month or per day."
    )
    currencies: tuple[CurrencyCode, ...] | None = Field(
        default=None, min_length=1, description="Restricts the entity to these currencies; None allows any."
    )

    time_zone: str = Field(
        default="UTC", description="IANA zone whose calendar dates its documents (a late UTC evening in Tokyo)."
    )

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{zone!r} is not an IANA time zone") from None
        return zone

    def local_date(self, moment: datetime) -> date:
        """The calendar day of `moment` where the entity keeps its books."""
        return moment.astimezone(ZoneInfo(self.time_zone)).date()

    def transacts_in(self, currency: str) -> bool:
        return self.currencies is None or currency in self.currencies


class RuleMatch(_Model):
    legal_entity: str | None = None
    revenue_class: str | None = None
    product_family: str | None = None
    tax_rate: str | None = None
    region: str | None = None
    channel: str | None = None
    payout_destination: str | None = None

    def specificity(self) -> int:
        return sum(value is not None for value in self.model_dump().values())

    def matches(self, context: MappingContext) -> bool:
        return all(
            expected is None or expected == getattr(context, name) for name, expected in self.model_dump().items()
        )


class MappingRule(_Model):
    match: RuleMatch
    accounts: dict[AccountRole, str] = Field(default_factory=dict)
    item: str | None = None


class MappingContext(_Model):
    legal_entity: str
    revenue_class: str | None = None
    product_family: str | None = None
    tax_rate: str | None = None
    region: str | None = None
    channel: str | None = None
    payout_destination: str | None = None


class AccountMapping(_Model):
    version: str = Field(min_length=1)
    legal_entities: dict[str, LegalEntity] = Field(min_length=1)
    default_accounts: dict[AccountRole, str]
    default_items: dict[str, str] = Field(default_factory=dict)
    rules: tuple[MappingRule, ...] = ()

    @model_validator(mode="after")
    def _rules_name_known_entities(self) -> AccountMapping:
        for rule in self.rules:
            entity = rule.match.legal_entity
            if entity is not None and entity not in self.legal_entities:
                raise ValueError(f"mapping rule names unknown legal entity {entity!r}")
        owners: dict[str, str] = {}
        for code, legal_entity in self.legal_entities.items():
            for account in legal_entity.stripe_accounts:
                if account in owners:
                    raise ValueError(f"Stripe account {account} belongs to both {owners[account]} and {code}")
                owners[account] = code
        return self

    def entity_for_stripe_account(self, account: str) -> str | None:
        """The legal entity that owns Stripe account `account`, if the mapping names one."""
        for code, entity in self.legal_entities.items():
            if account in entity.stripe_accounts:
                return code
        return None

    def entity(self, legal_entity: str) -> LegalEntity:
        """Raises MappingError for an entity the mapping does not know."""
        try:
            return self.legal_entities[legal_entity]
        except KeyError:
            raise MappingError(
                f"no legal entity {legal_entity!r} in mapping {self.version}", key=f"legal_entities.{legal_entity}"
            ) from None

    def _ranked_rules(self, context: MappingContext) -> list[MappingRule]:
        matching = [rule for rule in self.rules if rule.match.matches(context)]
        return sorted(matching, key=lambda rule: rule.match.specificity(), reverse=True)

    def account(self, role: AccountRole, context: MappingContext) -> str:
        """The account for `role`; raises MappingError when neither a rule nor a default names it."""
        for rule in self._ranked_rules(context):
            if role in rule.accounts:
                return rule.accounts[role]
        if role in self.default_accounts:
            return self.default_accounts[role]
        wanted = context.model_dump(exclude_none=True)
        raise MappingError(f"no {role.value} account for {wanted}", key=_missing_key(role.value, wanted))

    def item(self, context: MappingContext) -> str:
        """The ERP item for a line; raises MappingError when none is mapped."""
        for rule in self._ranked_rules(context):
            if rule.item is not None:
                return rule.item
        if context.revenue_class is not None and context.revenue_class in self.default_items:
            return self.default_items[context.revenue_class]
        wanted = context.model_dump(exclude_none=True)
        raise MappingError(f"no ERP item for {wanted}", key=_missing_key("item", wanted))


def _missing_key(what: str, context: dict[str, str]) -> str:
    """`revenue[legal_entity=US01,revenue_class=usage]`: the role (or item) and the context it was asked for."""
    return f"{what}[{','.join(f'{name}={value}' for name, value in context.items())}]"
