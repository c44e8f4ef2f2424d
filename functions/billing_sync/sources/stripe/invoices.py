"""Invoice events: finalized -> invoice.issued, voided, marked uncollectible -> written off, payment failed."""

from __future__ import annotations

from billing_sync.domain.events import (
    InvoiceIssued,
    InvoiceIssuedEvent,
    InvoiceLine,
    InvoiceVoided,
    InvoiceVoidedEvent,
    InvoiceWrittenOff,
    InvoiceWrittenOffEvent,
    PaymentFailed,
    PaymentFailedEvent,
    RevenueClass,
    TaxAmount,
)
from billing_sync.sources.stripe.normaliser import Envelope, instant
from billing_sync.sources.stripe.wire import StripeInvoice, StripeInvoiceLine, StripeTax


def tax_amounts(taxes: list[StripeTax] | None) -> tuple[TaxAmount, ...]:
    return tuple(TaxAmount(tax_rate=tax.rate_id, amount=tax.amount, inclusive=tax.is_inclusive) for tax in taxes or ())


def invoice_line(line: StripeInvoiceLine) -> InvoiceLine:
    """A Stripe invoice line item as a canonical line (from a webhook or the API)."""
    parent = line.parent
    details = (parent.subscription_item_details or parent.invoice_item_details) if parent else None
    if parent is not None:
        from_subscription = parent.type == "subscription_item_details"
    else:  # older shape: a price with a recurring block means a subscription line
        from_subscription = bool(line.price and line.price.get("recurring"))
    price_details = (line.pricing.price_details or {}) if line.pricing else {}
    price_id = price_details.get("price") or (line.price or {}).get("id")
    product_id = price_details.get("product") or (line.price or {}).get("product")
    return InvoiceLine(
        line_id=line.id,
        description=line.description,
        revenue_class=RevenueClass.SUBSCRIPTION if from_subscription else RevenueClass.ONE_OFF,
        price_id=price_id if isinstance(price_id, str) else None,
        product_id=product_id if isinstance(product_id, str) else None,
        quantity=line.quantity,
        proration=bool(details.proration if details else line.proration),
        amount=line.amount,
        discount=sum(discount.amount for discount in line.discount_amounts or ()),
        taxes=tax_amounts(line.taxes if line.taxes is not None else line.tax_amounts),
        period_start=instant(line.period.start),
        period_end=instant(line.period.end),
    )


def invoice_issued(envelope: Envelope) -> InvoiceIssuedEvent:
    invoice = StripeInvoice.model_validate(envelope.event.data.object)
    subscription = (invoice.parent.subscription_details or {}).get("subscription") if invoice.parent else None
    transitions = invoice.status_transitions
    # The document date is the invoice's effective date (it may be backdated), else its finalisation.
    issued = invoice.effective_at or (transitions.finalized_at if transitions else None) or invoice.created
    taxes = invoice.total_taxes if invoice.total_taxes is not None else invoice.total_tax_amounts
    return InvoiceIssuedEvent(
        **envelope.fields(invoice.metadata),
        data=InvoiceIssued(
            invoice_id=invoice.id,
            number=invoice.number,
            customer_id=invoice.customer,
            subscription_id=subscription if isinstance(subscription, str) else invoice.subscription,
            currency=invoice.currency,
            issued_at=instant(issued),
            due_at=instant(invoice.due_date) if invoice.due_date else None,
            lines=tuple(invoice_line(line) for line in invoice.lines.data),
            lines_complete=not invoice.lines.has_more,
            subtotal=invoice.subtotal,
            discount_total=sum(discount.amount for discount in invoice.total_discount_amounts or ()),
            taxes=tax_amounts(taxes),
            total=invoice.total,
            starting_balance=invoice.starting_balance,
            ending_balance=invoice.ending_balance if invoice.ending_balance is not None else invoice.starting_balance,
            amount_due=invoice.amount_due,
            amount_paid=invoice.amount_paid,
            amount_remaining=invoice.amount_remaining,
        ),
    )


def invoice_voided(envelope: Envelope) -> InvoiceVoidedEvent:
    invoice = StripeInvoice.model_validate(envelope.event.data.object)
    transitions = invoice.status_transitions
    voided = (transitions.voided_at if transitions else None) or envelope.event.created
    return InvoiceVoidedEvent(
        **envelope.fields(invoice.metadata),
        data=InvoiceVoided(
            invoice_id=invoice.id,
            customer_id=invoice.customer,
            currency=invoice.currency,
            total=invoice.total,
            voided_at=instant(voided),
        ),
    )


def invoice_written_off(envelope: Envelope) -> InvoiceWrittenOffEvent:
    invoice = StripeInvoice.model_validate(envelope.event.data.object)
    transitions = invoice.status_transitions
    marked = (transitions.marked_uncollectible_at if transitions else None) or envelope.event.created
    remaining = invoice.amount_remaining if invoice.amount_remaining is not None else invoice.amount_due
    return InvoiceWrittenOffEvent(
        **envelope.fields(invoice.metadata),
        data=InvoiceWrittenOff(
            invoice_id=invoice.id,
            customer_id=invoice.customer,
            currency=invoice.currency,
            amount=remaining,
            written_off_at=instant(marked),
        ),
    )


def payment_failed(envelope: Envelope) -> PaymentFailedEvent:
    invoice = StripeInvoice.model_validate(envelope.event.data.object)
    error = invoice.last_finalization_error or {}
    return PaymentFailedEvent(
        **envelope.fields(invoice.metadata),
        data=PaymentFailed(
            invoice_id=invoice.id,
            customer_id=invoice.customer,
            currency=invoice.currency,
            amount=invoice.amount_remaining if invoice.amount_remaining is not None else invoice.amount_due,
            failure_code=error.get("code"),
            failure_message=error.get("message"),
            attempt_count=invoice.attempt_count,
        ),
    )
