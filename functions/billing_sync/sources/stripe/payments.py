"""Payments: `invoice_payment.paid` (basil and later), and the older `invoice.paid` / `charge.succeeded`.

From basil on, each InvoicePayment is one payment document (partial and multiple payments each post
once) and `invoice.paid` is a completeness check. Rendered in an older version, `invoice.paid` and a
charge carrying `invoice` share the invoice id as payment key, so they make one payment document.
"""

from __future__ import annotations

from billing_sync.domain.errors import MalformedEventError
from billing_sync.domain.events import (
    InvoicePaid,
    InvoicePaidEvent,
    PaymentChannel,
    PaymentSettled,
    PaymentSettledEvent,
)
from billing_sync.sources.stripe.normaliser import Envelope, instant
from billing_sync.sources.stripe.wire import StripeCharge, StripeInvoice, StripeInvoicePayment

OUT_OF_BAND_PAYMENT_TYPES = frozenset({"payment_record"})
"""InvoicePayment types that record money received outside Stripe (a bank transfer, a cheque)."""


def invoice_payment_paid(envelope: Envelope) -> PaymentSettledEvent:
    payment = StripeInvoicePayment.model_validate(envelope.event.data.object)
    if payment.amount_paid is None:
        raise MalformedEventError(f"invoice payment {payment.id} is paid but carries no amount_paid")
    paid_at = (payment.status_transitions.paid_at if payment.status_transitions else None) or payment.created
    out_of_band = payment.payment.type in OUT_OF_BAND_PAYMENT_TYPES
    return PaymentSettledEvent(
        **envelope.fields(),
        data=PaymentSettled(
            payment_id=payment.id,
            invoice_id=payment.invoice,
            currency=payment.currency,
            amount=payment.amount_paid,
            amount_overpaid=max(0, payment.amount_paid - payment.amount_requested),
            channel=PaymentChannel.OUT_OF_BAND if out_of_band else PaymentChannel.PROCESSOR,
            settled_at=instant(paid_at),
            payment_intent_id=payment.payment.payment_intent if payment.payment.type == "payment_intent" else None,
            charge_id=payment.payment.charge if payment.payment.type == "charge" else None,
        ),
    )


def invoice_paid(envelope: Envelope) -> InvoicePaidEvent | PaymentSettledEvent:
    invoice = StripeInvoice.model_validate(envelope.event.data.object)
    transitions = invoice.status_transitions
    paid_at = (transitions.paid_at if transitions else None) or envelope.event.created
    if envelope.renders_invoice_payments:
        return InvoicePaidEvent(
            **envelope.fields(invoice.metadata),
            data=InvoicePaid(
                invoice_id=invoice.id,
                customer_id=invoice.customer,
                currency=invoice.currency,
                amount_paid=invoice.amount_paid,
                paid_at=instant(paid_at),
            ),
        )
    return PaymentSettledEvent(
        **envelope.fields(invoice.metadata),
        data=_legacy_invoice_payment(
            invoice.id,
            invoice.customer,
            invoice.currency,
            invoice.amount_paid,
            paid_at,
            PaymentChannel.OUT_OF_BAND if invoice.paid_out_of_band else PaymentChannel.PROCESSOR,
        ),
    )


def charge_succeeded(envelope: Envelope) -> PaymentSettledEvent | None:
    charge = StripeCharge.model_validate(envelope.event.data.object)
    if charge.invoice is None:
        return None  # from basil on a charge names no invoice; its InvoicePayment is the payment
    if charge.customer is None:
        raise MalformedEventError(f"charge {charge.id} pays invoice {charge.invoice} but names no customer")
    return PaymentSettledEvent(
        **envelope.fields(charge.metadata),
        data=_legacy_invoice_payment(
            charge.invoice,
            charge.customer,
            charge.currency,
            charge.amount,
            charge.created,
            PaymentChannel.PROCESSOR,
            payment_intent_id=charge.payment_intent,
            charge_id=charge.id,
        ),
    )


def _legacy_invoice_payment(
    invoice_id: str,
    customer_id: str,
    currency: str,
    amount: int,
    settled: int,
    channel: PaymentChannel,
    *,
    payment_intent_id: str | None = None,
    charge_id: str | None = None,
) -> PaymentSettled:
    """Both legacy payment events of one invoice share its id as payment key: one ERP payment document."""
    return PaymentSettled(
        payment_id=invoice_id,
        invoice_id=invoice_id,
        customer_id=customer_id,
        currency=currency,
        amount=amount,
        channel=channel,
        settled_at=instant(settled),
        payment_intent_id=payment_intent_id,
        charge_id=charge_id,
    )
