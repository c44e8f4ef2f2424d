"""Double-entry journals and the ERP documents that carry them."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

from billing_sync.domain.money import CurrencyCode, MinorUnits, SignedMinorUnits


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class JournalLine(_Model):
    account: str = Field(min_length=1)
    currency: CurrencyCode
    debit: MinorUnits = 0
    credit: MinorUnits = 0
    memo: str | None = None

    @model_validator(mode="after")
    def _one_side(self) -> JournalLine:
        if (self.debit == 0) == (self.credit == 0):
            raise ValueError(f"journal line on {self.account} must have exactly one of debit or credit")
        return self


class UnbalancedJournalError(ValueError):
    """Raised when a journal's debits and credits differ in some currency."""


def imbalances(lines: tuple[JournalLine, ...] | list[JournalLine]) -> dict[str, int]:
    """Debits minus credits per currency, for every currency that does not net to zero."""
    net: dict[str, int] = defaultdict(int)
    for line in lines:
        net[line.currency] += line.debit - line.credit
    return {currency: amount for currency, amount in net.items() if amount}


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

    @model_validator(mode="after")
    def _balanced(self) -> ErpDocument:
        unbalanced = imbalances(self.journal)
        if unbalanced:
            raise UnbalancedJournalError(f"journal for {self.external_id} does not balance: {unbalanced}")
        return self


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
            row = totals[(line.account, line.currency)]
            row[0] += line.debit
            row[1] += line.credit
    return [
        TrialBalanceRow(account=account, currency=currency, debit=debit, credit=credit)
        for (account, currency), (debit, credit) in sorted(totals.items())
    ]
