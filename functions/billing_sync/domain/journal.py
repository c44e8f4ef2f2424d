"""Double-entry journals and the ERP documents that carry them."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from billing_sync.domain.money import CurrencyCode, MinorUnits, SignedMinorUnits


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class JournalLine(_Model):
    """One side of a journal in transaction currency and, once translated, in the entity's functional currency.

    `rate` is functional major units per transaction major unit (1 EUR = 1.0850 USD), from `rate_source`
    (`identity`, `stripe:txn_…`, `ecb`, `carried:<external id>`) on `rate_date`. A line with no transaction
    amount carries only a functional amount: a rounding difference or an FX gain or loss.
    """

    account: str = Field(min_length=1)
    currency: CurrencyCode
    debit: MinorUnits = 0
    credit: MinorUnits = 0
    memo: str | None = None
    functional_currency: CurrencyCode | None = None
    functional_debit: MinorUnits = 0
    functional_credit: MinorUnits = 0
    rate: Decimal | None = None
    rate_source: str | None = None
    rate_date: date | None = None

    @model_validator(mode="after")
    def _one_side(self) -> JournalLine:
        if self.debit and self.credit:
            raise ValueError(f"journal line on {self.account} must have exactly one of debit or credit")
        if self.functional_debit and self.functional_credit:
            raise ValueError(f"journal line on {self.account} has both a functional debit and a functional credit")
        if self.functional_currency is None:
            if self.functional_debit or self.functional_credit or self.rate is not None:
                raise ValueError(f"journal line on {self.account} has functional amounts but no functional currency")
            if not (self.debit or self.credit):
                raise ValueError(f"journal line on {self.account} must have exactly one of debit or credit")
        elif not (self.debit or self.credit or self.functional_debit or self.functional_credit):
            raise ValueError(f"journal line on {self.account} carries no amount")
        return self

    def reversed(self, memo: str | None = None) -> JournalLine:
        """This line with its sides swapped, in both currencies at the same rate (a void, a reversal)."""
        return self.model_copy(
            update={
                "debit": self.credit,
                "credit": self.debit,
                "functional_debit": self.functional_credit,
                "functional_credit": self.functional_debit,
                "memo": memo if memo is not None else self.memo,
            }
        )

    @property
    def net(self) -> int:
        """Debit minus credit in transaction currency."""
        return self.debit - self.credit

    @property
    def functional_net(self) -> int:
        """Debit minus credit in functional currency."""
        return self.functional_debit - self.functional_credit


class UnbalancedJournalError(ValueError):
    """Raised when a journal's debits and credits differ in some currency (transaction or functional)."""


def imbalances(lines: tuple[JournalLine, ...] | list[JournalLine]) -> dict[str, int]:
    """Debits minus credits per currency, for every currency that does not net to zero."""
    net: dict[str, int] = defaultdict(int)
    for line in lines:
        net[line.currency] += line.debit - line.credit
    return {currency: amount for currency, amount in net.items() if amount}


def functional_imbalance(lines: tuple[JournalLine, ...] | list[JournalLine]) -> int:
    """Functional debits minus functional credits (zero for a translated, balanced journal)."""
    return sum(line.functional_net for line in lines)


class DocumentKind(StrEnum):
    INVOICE = "invoice"
    PAYMENT = "payment"
    CREDIT_MEMO = "credit_memo"
    REFUND = "refund"
    REFUND_REVERSAL = "refund_reversal"
    RECOGNITION = "recognition"
    CREDIT_MEMO_VOID = "credit_memo_void"
    INVOICE_VOID = "invoice_void"
    WRITE_OFF = "write_off"
    FEE = "fee"
    PAYOUT = "payout"
    DISPUTE = "dispute"
    DISPUTE_REVERSAL = "dispute_reversal"
    FX_REVALUATION = "fx_revaluation"
    JOURNAL = "journal"


class DocumentLine(_Model):
    """A document line as an ERP sees it: an item and an amount, already mapped.

    `amount` is after discounts, `discount` stays visible for reporting, `price` is the transaction
    price (net of discount and inclusive tax) and the service period is kept for credits and recognition.
    """

    item: str
    source_line_id: str | None = None
    description: str | None = None
    amount: SignedMinorUnits
    discount: SignedMinorUnits = 0
    tax: SignedMinorUnits = 0
    price: SignedMinorUnits | None = None
    revenue_class: str | None = None
    service_start: datetime | None = None
    service_end: datetime | None = None
    obligation: SignedMinorUnits | None = Field(
        default=None,
        description="What the recognition job releases over the service period from the posting date on.",
    )


class ErpDocument(_Model):
    """A controlled document for the ERP, with the balanced journal it implies.

    `external_id` is deterministic: the same billing document always maps to the same id, which is
    what makes posting idempotent at the ERP.
    """

    external_id: str = Field(min_length=1, max_length=255)
    kind: DocumentKind
    legal_entity: str
    subsidiary: str
    customer_external_id: str
    currency: CurrencyCode
    posting_date: date
    total: SignedMinorUnits
    lines: tuple[DocumentLine, ...] = ()
    applies_to: tuple[str, ...] = ()
    journal: tuple[JournalLine, ...] = Field(min_length=2)
    source_event_id: str
    memo: str | None = None
    reference: str | None = Field(
        default=None, description="The source's handle on it (`payment_intent:pi_…`); a refund finds its payment by it."
    )
    document_date: date | None = Field(
        default=None,
        description="The date the source gave it, kept when its period was closed and it posted to the next open one.",
    )

    @model_validator(mode="after")
    def _balanced(self) -> ErpDocument:
        unbalanced = imbalances(self.journal)
        if unbalanced:
            raise UnbalancedJournalError(f"journal for {self.external_id} does not balance: {unbalanced}")
        functional = {line.functional_currency for line in self.journal}
        if functional != {None}:
            if None in functional or len(functional) > 1:
                raise UnbalancedJournalError(
                    f"journal for {self.external_id} mixes functional currencies: {sorted(map(str, functional))}"
                )
            if difference := functional_imbalance(self.journal):
                raise UnbalancedJournalError(
                    f"journal for {self.external_id} does not balance in functional currency: {difference}"
                )
        return self

    @property
    def functional_currency(self) -> str | None:
        """The entity's functional currency once the journal is translated, else None."""
        return self.journal[0].functional_currency


class ErpCustomer(_Model):
    external_id: str
    name: str | None = None
    email: str | None = None
    subsidiary: str
    currency: CurrencyCode | None = None


class ErpRef(_Model):
    """Where a document lives in the ERP. `created` is False when it already existed.

    Its figures (`total`, `currency`, the event it was posted from) let posting compare a second version
    of a document without reading the whole document.
    """

    external_id: str
    document_id: str
    created: bool
    legal_entity: str | None = None
    customer_external_id: str | None = None
    currency: str | None = None
    total: int | None = None
    source_event_id: str | None = None


class TrialBalanceRow(_Model):
    account: str
    currency: CurrencyCode
    debit: MinorUnits
    credit: MinorUnits


def trial_balance(journals: list[tuple[JournalLine, ...]]) -> list[TrialBalanceRow]:
    """Debit and credit totals per account and currency, sorted by account."""
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for journal in journals:
        for line in journal:
            if not (line.debit or line.credit):
                continue  # a functional-only line (rounding, FX) moves nothing in transaction currency
            row = totals[(line.account, line.currency)]
            row[0] += line.debit
            row[1] += line.credit
    return [
        TrialBalanceRow(account=account, currency=currency, debit=debit, credit=credit)
        for (account, currency), (debit, credit) in sorted(totals.items())
    ]


CurrencyBasis = Literal["transaction", "functional"]
"""Which amounts a trial balance adds up: the lines' transaction amounts or their functional ones."""


class EntityTrialBalanceRow(_Model):
    legal_entity: str
    account: str
    currency: CurrencyCode
    debit: MinorUnits
    credit: MinorUnits


class TrialBalanceCheck(_Model):
    """Debits against credits for one entity and currency: they must be equal."""

    legal_entity: str
    currency: CurrencyCode
    debit: MinorUnits
    credit: MinorUnits

    @property
    def balanced(self) -> bool:
        return self.debit == self.credit


class EntityTrialBalance(_Model):
    as_of: date | None
    currency_basis: CurrencyBasis
    rows: tuple[EntityTrialBalanceRow, ...]
    checks: tuple[TrialBalanceCheck, ...]
    documents: int

    @property
    def balanced(self) -> bool:
        return all(check.balanced for check in self.checks)


def entity_trial_balance(
    documents: Iterable[ErpDocument],
    *,
    basis: CurrencyBasis = "transaction",
    as_of: date | None = None,
    legal_entity: str | None = None,
    functional_currencies: Mapping[str, str] | None = None,
) -> EntityTrialBalance:
    """Debit and credit totals per legal entity, account and currency of the documents posted on or before `as_of`.

    `transaction`: each line's transaction amounts (a line with only a functional amount adds nothing).
    `functional`: each line's functional amounts in its entity's functional currency; an untranslated line
    counts only when its currency is its entity's functional currency in `functional_currencies`.
    """
    functional_currencies = functional_currencies or {}
    totals: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    counted = 0
    for document in documents:
        if legal_entity is not None and document.legal_entity != legal_entity:
            continue
        if as_of is not None and document.posting_date > as_of:
            continue
        counted += 1
        for line in document.journal:
            if basis == "transaction":
                amounts = (line.currency, line.debit, line.credit)
            elif line.functional_currency is not None:
                amounts = (line.functional_currency, line.functional_debit, line.functional_credit)
            elif functional_currencies.get(document.legal_entity) == line.currency:
                amounts = (line.currency, line.debit, line.credit)
            else:
                continue
            currency, debit, credit = amounts
            if debit or credit:
                row = totals[(document.legal_entity, line.account, currency)]
                row[0] += debit
                row[1] += credit
    checks: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for (entity, _, currency), (debit, credit) in totals.items():
        checks[(entity, currency)][0] += debit
        checks[(entity, currency)][1] += credit
    return EntityTrialBalance(
        as_of=as_of,
        currency_basis=basis,
        rows=tuple(
            EntityTrialBalanceRow(legal_entity=entity, account=account, currency=currency, debit=debit, credit=credit)
            for (entity, account, currency), (debit, credit) in sorted(totals.items())
        ),
        checks=tuple(
            TrialBalanceCheck(legal_entity=entity, currency=currency, debit=debit, credit=credit)
            for (entity, currency), (debit, credit) in sorted(checks.items())
        ),
        documents=counted,
    )
