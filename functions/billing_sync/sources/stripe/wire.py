"""Stripe wire models: the parts of Stripe's objects billing-sync reads. Unknown fields are tolerated.

Money is strict: an amount given as a string, a float or a boolean fails validation (MALFORMED), it is
never coerced. Both the current shapes and the pre-2025-03-31.basil ones that older endpoints still
receive are read; the shape present decides, never a guess.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


class StripeDiscountAmount(_Wire):
    amount: StrictInt
    discount: str | Any | None = None


class StripeTaxRateDetails(_Wire):
    tax_rate: str | None = None


class StripeTax(_Wire):
    """A tax amount: `taxes` (current) or `tax_amounts` (older versions: `inclusive` and `tax_rate`)."""

    amount: StrictInt
    tax_behavior: str | None = None
    tax_rate_details: StripeTaxRateDetails | None = None
    inclusive: StrictBool | None = None
    tax_rate: str | dict[str, Any] | None = None

    @property
    def is_inclusive(self) -> bool:
        return self.inclusive if self.inclusive is not None else self.tax_behavior == "inclusive"

    @property
    def rate_id(self) -> str:
        if self.tax_rate_details and self.tax_rate_details.tax_rate:
            return self.tax_rate_details.tax_rate
        if isinstance(self.tax_rate, str):
            return self.tax_rate
        if isinstance(self.tax_rate, dict) and isinstance(self.tax_rate.get("id"), str):
            return self.tax_rate["id"]
        return "unspecified"


class StripePeriod(_Wire):
    start: StrictInt
    end: StrictInt


class StripeParentDetails(_Wire):
    proration: StrictBool = False
    subscription: str | None = None


class StripeLineParent(_Wire):
    type: str | None = None
    subscription_item_details: StripeParentDetails | None = None
    invoice_item_details: StripeParentDetails | None = None


class StripePricing(_Wire):
    type: str | None = None
    price_details: dict[str, Any] | None = None


class StripeInvoiceLine(_Wire):
    id: str
    amount: StrictInt
    currency: str
    description: str | None = None
    discount_amounts: list[StripeDiscountAmount] | None = None
    taxes: list[StripeTax] | None = None
    tax_amounts: list[StripeTax] | None = None
    period: StripePeriod
    quantity: StrictInt | None = None
    proration: StrictBool | None = None
    parent: StripeLineParent | None = None
    pricing: StripePricing | None = None
    price: dict[str, Any] | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class StripeLineList(_Wire):
    data: list[StripeInvoiceLine]
    has_more: StrictBool = False


class StripeInvoiceParent(_Wire):
    type: str | None = None
    subscription_details: dict[str, Any] | None = None


class StripeStatusTransitions(_Wire):
    finalized_at: StrictInt | None = None
    paid_at: StrictInt | None = None
    voided_at: StrictInt | None = None
    marked_uncollectible_at: StrictInt | None = None


class StripeInvoice(_Wire):
    id: str
    object: str
    number: str | None = None
    customer: str
    currency: str
    created: StrictInt
    effective_at: StrictInt | None = None
    due_date: StrictInt | None = None
    status: str | None = None
    lines: StripeLineList
    subtotal: StrictInt
    total: StrictInt
    amount_due: StrictInt
    amount_paid: StrictInt = 0
    amount_remaining: StrictInt | None = None
    starting_balance: StrictInt = 0
    ending_balance: StrictInt | None = None
    attempt_count: StrictInt = 0
    paid_out_of_band: StrictBool = False
    total_discount_amounts: list[StripeDiscountAmount] | None = None
    total_taxes: list[StripeTax] | None = None
    total_tax_amounts: list[StripeTax] | None = None
    parent: StripeInvoiceParent | None = None
    subscription: str | None = None
    status_transitions: StripeStatusTransitions | None = None
    last_finalization_error: dict[str, Any] | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class StripePaymentRef(_Wire):
    type: str
    payment_intent: str | None = None
    charge: str | None = None
    payment_record: str | None = None


class StripeInvoicePaymentTransitions(_Wire):
    paid_at: StrictInt | None = None
    canceled_at: StrictInt | None = None


class StripeInvoicePayment(_Wire):
    id: str
    object: str
    invoice: str
    currency: str
    amount_paid: StrictInt | None = None
    amount_requested: StrictInt
    status: str
    payment: StripePaymentRef
    created: StrictInt
    status_transitions: StripeInvoicePaymentTransitions | None = None


class StripeRefund(_Wire):
    """A Refund (`re_...`). It names no credit note; a credit note's `refunds[].refund` names it."""

    id: str
    object: str
    amount: StrictInt
    currency: str
    status: str
    charge: str | None = None
    payment_intent: str | None = None
    customer: str | None = None
    reason: str | None = None
    failure_reason: str | None = None
    failure_balance_transaction: str | dict[str, Any] | None = None  # an id, or the object when expanded
    created: StrictInt
    metadata: dict[str, str] = Field(default_factory=dict)

    @property
    def failure_balance_transaction_id(self) -> str | None:
        found = self.failure_balance_transaction
        if isinstance(found, dict):
            found = found.get("id")
        return found if isinstance(found, str) else None


class StripeRefundList(_Wire):
    """A charge's `refunds` list object, present only when the API version or an expansion includes it."""

    data: list[StripeRefund]
    has_more: StrictBool = False


class StripeCharge(_Wire):
    id: str
    object: str
    amount: StrictInt
    currency: str
    customer: str | None = None
    invoice: str | None = None
    payment_intent: str | None = None
    paid: StrictBool = False
    status: str
    created: StrictInt
    refunds: StripeRefundList | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


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


class StripeProduct(_Wire):
    id: str
    object: str
    name: str | None = None
    active: StrictBool = True
    metadata: dict[str, str] = Field(default_factory=dict)


class StripeRecurring(_Wire):
    usage_type: str | None = None
    interval: str | None = None


class StripePrice(_Wire):
    id: str
    object: str
    product: str
    currency: str
    active: StrictBool = True
    type: str
    recurring: StripeRecurring | None = None
    unit_amount: StrictInt | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class StripeSubscriptionPrice(_Wire):
    id: str
    product: str | None = None
    unit_amount: StrictInt | None = None


class StripeSubscriptionItem(_Wire):
    id: str
    price: StripeSubscriptionPrice
    quantity: StrictInt | None = None
    current_period_start: StrictInt | None = None
    current_period_end: StrictInt | None = None


class StripeSubscriptionItems(_Wire):
    data: list[StripeSubscriptionItem]


class StripeSubscription(_Wire):
    id: str
    object: str
    customer: str
    status: str
    currency: str
    items: StripeSubscriptionItems
    current_period_start: StrictInt | None = None
    current_period_end: StrictInt | None = None
    cancel_at: StrictInt | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class StripeCreditNoteLine(_Wire):
    id: str
    amount: StrictInt
    description: str | None = None
    discount_amount: StrictInt = 0
    invoice_line_item: str | None = None
    taxes: list[StripeTax] | None = None
    tax_amounts: list[StripeTax] | None = None
    type: str | None = None


class StripeCreditNoteLineList(_Wire):
    data: list[StripeCreditNoteLine]
    has_more: StrictBool = False


class StripeCreditNoteRefund(_Wire):
    amount_refunded: StrictInt
    refund: str | dict[str, Any] | None = None


class StripeCreditNote(_Wire):
    id: str
    object: str
    number: str | None = None
    invoice: str
    customer: str
    currency: str
    created: StrictInt
    effective_at: StrictInt | None = None
    type: str
    lines: StripeCreditNoteLineList
    total: StrictInt
    discount_amount: StrictInt = 0
    total_taxes: list[StripeTax] | None = None
    tax_amounts: list[StripeTax] | None = None
    pre_payment_amount: StrictInt | None = None
    post_payment_amount: StrictInt | None = None
    out_of_band_amount: StrictInt | None = None
    refunds: list[StripeCreditNoteRefund] = Field(default_factory=list)
    reason: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class StripeEventData(_Wire):
    object: dict[str, Any]


class StripeEvent(_Wire):
    id: str = Field(pattern=r"^evt_")
    object: str = "event"
    type: str
    api_version: str | None = None
    created: StrictInt
    account: str | None = None
    data: StripeEventData
