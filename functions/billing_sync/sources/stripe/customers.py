"""customer.created / customer.updated -> customer.upserted."""

from __future__ import annotations

from billing_sync.domain.events import CustomerUpserted, CustomerUpsertedEvent
from billing_sync.sources.stripe.normaliser import Envelope
from billing_sync.sources.stripe.wire import StripeCustomer


def customer_upserted(envelope: Envelope) -> CustomerUpsertedEvent:
    customer = StripeCustomer.model_validate(envelope.event.data.object)
    return CustomerUpsertedEvent(
        **envelope.fields(customer.metadata),
        data=CustomerUpserted(
            customer_id=customer.id,
            name=customer.name,
            email=customer.email,
            default_currency=customer.currency,
            country=customer.address.country if customer.address else None,
            tax_exempt=customer.tax_exempt or "none",
        ),
    )
