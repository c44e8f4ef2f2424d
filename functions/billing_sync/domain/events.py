"""Canonical finance events, schema v1.

Every billing source is normalised into these models before anything touches the books. The
`event_id` is derived from the source and the source's own event id, so the same source event always
becomes the same canonical event however often, and through whichever channel, it arrives.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from billing_sync.domain.money import CurrencyCode, MinorUnits

SCHEMA_VERSION: Literal["1.0"] = "1.0"

_EVENT_ID_NAMESPACE = uuid.UUID("6f1c3f0e-5b7a-4d55-9a55-3c1f5e0b9a10")

NonEmptyStr = Annotated[str, Field(min_length=1, max_length=512)]
"""A required identifier or label."""


def derive_event_id(source: str, source_event_id: str) -> str:
    """The canonical event id: stable for one source event, distinct across sources."""
    return str(uuid.uuid5(_EVENT_ID_NAMESPACE, f"{source}:{source_event_id}"))


class EventType(StrEnum):
    CUSTOMER_UPSERTED = "customer.upserted"
    SUBSCRIPTION_CREATED = "subscription.created"
    SUBSCRIPTION_AMENDED = "subscription.amended"
    SUBSCRIPTION_RENEWED = "subscription.renewed"
    SUBSCRIPTION_CANCELLED = "subscription.cancelled"
    USAGE_RATED = "usage.rated"
    INVOICE_ISSUED = "invoice.issued"
    INVOICE_VOIDED = "invoice.voided"
    INVOICE_WRITTEN_OFF = "invoice.written_off"
    PAYMENT_SETTLED = "payment.settled"
    PAYMENT_FAILED = "payment.failed"
    CREDIT_NOTE_ISSUED = "credit_note.issued"
    REFUND_ISSUED = "refund.issued"


class _Model(BaseModel):
    # Schemas are built on first use: a function builds the few event types it handles, not all 13.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class RevenueClass(StrEnum):
    """How a line earns revenue; mapping rules pick accounts and ERP items by it."""

    SUBSCRIPTION = "subscription"
    ONE_OFF = "one_off"
    USAGE = "usage"


# ---- payloads -------------------------------------------------------------------------------


class CustomerUpserted(_Model):
    customer_id: NonEmptyStr
    name: str | None = None
    email: str | None = None
    default_currency: CurrencyCode | None = None
    country: str | None = Field(default=None, min_length=2, max_length=2)
    tax_exempt: Literal["none", "exempt", "reverse"] = "none"


class SubscriptionItem(_Model):
    item_id: NonEmptyStr
    price_id: NonEmptyStr
    product_id: str | None = None
    quantity: int = Field(ge=0)
    unit_amount: MinorUnits | None = None


class SubscriptionChange(_Model):
    subscription_id: NonEmptyStr
    customer_id: NonEmptyStr
    status: NonEmptyStr
    currency: CurrencyCode
    items: tuple[SubscriptionItem, ...]
    current_period_start: AwareDatetime | None = None
    current_period_end: AwareDatetime | None = None
    cancel_at: AwareDatetime | None = None


class UsageRated(_Model):
    subscription_item_id: NonEmptyStr
    customer_id: NonEmptyStr
    currency: CurrencyCode
    quantity: int = Field(ge=0)
    amount: MinorUnits
    period_start: AwareDatetime
    period_end: AwareDatetime


class InvoiceLine(_Model):
    line_id: NonEmptyStr
    description: str | None = None
    revenue_class: RevenueClass
    product_id: str | None = None
    price_id: str | None = None
    quantity: int | None = Field(default=None, ge=0)
    amount: MinorUnits = Field(description="Pre-discount line amount; includes inclusive tax.")
    discount: MinorUnits = 0
    tax_exclusive: MinorUnits = 0
    tax_inclusive: MinorUnits = 0
    period_start: AwareDatetime
    period_end: AwareDatetime

    @model_validator(mode="after")
    def _period_ordered(self) -> InvoiceLine:
        if self.period_end < self.period_start:
            raise ValueError(f"line {self.line_id}: service period ends before it starts")
        return self


class InvoiceIssued(_Model):
    invoice_id: NonEmptyStr
    number: str | None = None
    customer_id: NonEmptyStr
    subscription_id: str | None = None
    currency: CurrencyCode
    issued_at: AwareDatetime
    due_at: AwareDatetime | None = None
    lines: tuple[InvoiceLine, ...] = Field(min_length=1)
    subtotal: MinorUnits
    discount_total: MinorUnits
    tax_exclusive_total: MinorUnits
    tax_inclusive_total: MinorUnits
    total: MinorUnits
    amount_due: MinorUnits


class InvoiceVoided(_Model):
    invoice_id: NonEmptyStr
    customer_id: NonEmptyStr
    currency: CurrencyCode
    voided_at: AwareDatetime


class InvoiceWrittenOff(_Model):
    invoice_id: NonEmptyStr
    customer_id: NonEmptyStr
    currency: CurrencyCode
    amount: MinorUnits
    written_off_at: AwareDatetime


class PaymentSettled(_Model):
    payment_id: NonEmptyStr = Field(description="Source payment key; the invoice id for invoice payments.")
    invoice_id: NonEmptyStr
    customer_id: NonEmptyStr
    currency: CurrencyCode
    amount: MinorUnits
    fee: MinorUnits | None = None
    settled_at: AwareDatetime


class PaymentFailed(_Model):
    invoice_id: NonEmptyStr
    customer_id: NonEmptyStr
    currency: CurrencyCode
    amount: MinorUnits
    failure_code: str | None = None
    failure_message: str | None = None
    attempt_count: int = Field(ge=0)


class CreditNoteLine(_Model):
    line_id: NonEmptyStr
    invoice_line_id: str | None = None
    amount: MinorUnits
    tax: MinorUnits = 0


class CreditNoteIssued(_Model):
    credit_note_id: NonEmptyStr
    invoice_id: NonEmptyStr
    customer_id: NonEmptyStr
    currency: CurrencyCode
    lines: tuple[CreditNoteLine, ...] = Field(min_length=1)
    subtotal: MinorUnits
    tax_total: MinorUnits
    total: MinorUnits
    reason: str | None = None


class RefundIssued(_Model):
    refund_id: NonEmptyStr
    payment_id: NonEmptyStr
    invoice_id: str | None = None
    credit_note_id: str | None = None
    customer_id: str | None = None
    currency: CurrencyCode
    amount: MinorUnits
    reason: str | None = None


# ---- envelopes ------------------------------------------------------------------------------


class _Envelope(_Model):
    event_id: NonEmptyStr
    schema_version: Literal["1.0"] = SCHEMA_VERSION
    source: NonEmptyStr
    source_event_id: NonEmptyStr
    source_event_type: NonEmptyStr
    source_api_version: str | None = None
    occurred_at: AwareDatetime
    received_at: AwareDatetime
    normalised_at: AwareDatetime
    legal_entity: NonEmptyStr
    correlation_id: NonEmptyStr
    raw_ref: str | None = Field(default=None, description="Archive key of the raw source payload.")

    @model_validator(mode="after")
    def _event_id_matches_source(self) -> _Envelope:
        expected = derive_event_id(self.source, self.source_event_id)
        if self.event_id != expected:
            raise ValueError(f"event_id {self.event_id} is not derived from {self.source}:{self.source_event_id}")
        return self


class CustomerUpsertedEvent(_Envelope):
    event_type: Literal["customer.upserted"] = "customer.upserted"
    data: CustomerUpserted


class SubscriptionCreatedEvent(_Envelope):
    event_type: Literal["subscription.created"] = "subscription.created"
    data: SubscriptionChange


class SubscriptionAmendedEvent(_Envelope):
    event_type: Literal["subscription.amended"] = "subscription.amended"
    data: SubscriptionChange


class SubscriptionRenewedEvent(_Envelope):
    event_type: Literal["subscription.renewed"] = "subscription.renewed"
    data: SubscriptionChange


class SubscriptionCancelledEvent(_Envelope):
    event_type: Literal["subscription.cancelled"] = "subscription.cancelled"
    data: SubscriptionChange


class UsageRatedEvent(_Envelope):
    event_type: Literal["usage.rated"] = "usage.rated"
    data: UsageRated


class InvoiceIssuedEvent(_Envelope):
    event_type: Literal["invoice.issued"] = "invoice.issued"
    data: InvoiceIssued


class InvoiceVoidedEvent(_Envelope):
    event_type: Literal["invoice.voided"] = "invoice.voided"
    data: InvoiceVoided


class InvoiceWrittenOffEvent(_Envelope):
    event_type: Literal["invoice.written_off"] = "invoice.written_off"
    data: InvoiceWrittenOff


class PaymentSettledEvent(_Envelope):
    event_type: Literal["payment.settled"] = "payment.settled"
    data: PaymentSettled


class PaymentFailedEvent(_Envelope):
    event_type: Literal["payment.failed"] = "payment.failed"
    data: PaymentFailed


class CreditNoteIssuedEvent(_Envelope):
    event_type: Literal["credit_note.issued"] = "credit_note.issued"
    data: CreditNoteIssued


class RefundIssuedEvent(_Envelope):
    event_type: Literal["refund.issued"] = "refund.issued"
    data: RefundIssued


FinanceEvent = Annotated[
    CustomerUpsertedEvent
    | SubscriptionCreatedEvent
    | SubscriptionAmendedEvent
    | SubscriptionRenewedEvent
    | SubscriptionCancelledEvent
    | UsageRatedEvent
    | InvoiceIssuedEvent
    | InvoiceVoidedEvent
    | InvoiceWrittenOffEvent
    | PaymentSettledEvent
    | PaymentFailedEvent
    | CreditNoteIssuedEvent
    | RefundIssuedEvent,
    Field(discriminator="event_type"),
]
"""Any canonical finance event, discriminated by `event_type`."""

FINANCE_EVENT: TypeAdapter[FinanceEvent] = TypeAdapter(FinanceEvent, config=ConfigDict(defer_build=True))

EVENT_MODELS: dict[EventType, type[_Envelope]] = {
    EventType(model.model_fields["event_type"].default): model
    for model in (
        CustomerUpsertedEvent,
        SubscriptionCreatedEvent,
        SubscriptionAmendedEvent,
        SubscriptionRenewedEvent,
        SubscriptionCancelledEvent,
        UsageRatedEvent,
        InvoiceIssuedEvent,
        InvoiceVoidedEvent,
        InvoiceWrittenOffEvent,
        PaymentSettledEvent,
        PaymentFailedEvent,
        CreditNoteIssuedEvent,
        RefundIssuedEvent,
    )
}

POSTABLE_EVENT_TYPES = frozenset({EventType.CUSTOMER_UPSERTED, EventType.INVOICE_ISSUED, EventType.PAYMENT_SETTLED})
"""Types the posting pipeline implements in v1; the bus rule routes exactly these."""

PostableEvent = Annotated[
    CustomerUpsertedEvent | InvoiceIssuedEvent | PaymentSettledEvent, Field(discriminator="event_type")
]
"""A canonical event the posting pipeline books."""

POSTABLE_EVENT: TypeAdapter[PostableEvent] = TypeAdapter(PostableEvent, config=ConfigDict(defer_build=True))
