"""Stripe wire models: the parts of Stripe's objects billing-sync reads. Unknown fields are tolerated."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class StripeDiscountAmount(_Wire):
    amount: int
    discount: str | Any | None = None


class StripeTaxAmount(_Wire):
    amount: int
    tax_behavior: str = "exclusive"


class StripePeriod(_Wire):
    start: int
    end: int


class StripeLineParent(_Wire):
    type: str | None = None


class StripePricing(_Wire):
    type: str | None = None
    price_details: dict[str, Any] | None = None


class StripeInvoiceLine(_Wire):
    id: str
    amount: int
    currency: str
    description: str | None = None
    discount_amounts: list[StripeDiscountAmount] | None = None
    taxes: list[StripeTaxAmount] | None = None
    period: StripePeriod
    quantity: int | None = None
    parent: StripeLineParent | None = None
    pricing: StripePricing | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class StripeList(_Wire):
    data: list[StripeInvoiceLine]
    has_more: bool = False


class StripeInvoiceParent(_Wire):
    type: str | None = None
    subscription_details: dict[str, Any] | None = None


class StripeStatusTransitions(_Wire):
    finalized_at: int | None = None
    paid_at: int | None = None


class StripeInvoice(_Wire):
    id: str
    object: str
    number: str | None = None
    customer: str
    currency: str
    created: int
    effective_at: int | None = None
    due_date: int | None = None
    status: str | None = None
    lines: StripeList
    subtotal: int
    total: int
    amount_due: int
    amount_paid: int = 0
    total_discount_amounts: list[StripeDiscountAmount] | None = None
    total_taxes: list[StripeTaxAmount] | None = None
    parent: StripeInvoiceParent | None = None
    status_transitions: StripeStatusTransitions | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class StripeCharge(_Wire):
    id: str
    object: str
    amount: int
    currency: str
    customer: str | None = None
    invoice: str | None = None
    paid: bool = False
    status: str
    created: int


class StripeAddress(_Wire):
    country: str | None = None


class StripeCustomer(_Wire):
    id: str
    object: str
    name: str | None = None
    email: str | None = None
    currency: str | None = None
    address: StripeAddress | None = None
    tax_exempt: str | None = "none"
    metadata: dict[str, str] = Field(default_factory=dict)


class StripeEventData(_Wire):
    object: dict[str, Any]


class StripeEvent(_Wire):
    id: str = Field(pattern=r"^evt_")
    object: str = "event"
    type: str
    api_version: str | None = None
    created: int
    account: str | None = None
    data: StripeEventData
