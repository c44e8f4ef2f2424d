"""product.* -> product.upserted, price.* -> price.upserted: the master data that classifies lines.

A product's metadata may name its `product_family` (a mapping key) and `revenue_class`; a price says
whether it is metered (usage, recognised at the point of usage) or one-time.
"""

from __future__ import annotations

from billing_sync.domain.events import PriceUpserted, PriceUpsertedEvent, ProductUpserted, ProductUpsertedEvent
from billing_sync.sources.stripe.normaliser import Envelope
from billing_sync.sources.stripe.wire import StripePrice, StripeProduct


def product_upserted(envelope: Envelope) -> ProductUpsertedEvent:
    product = StripeProduct.model_validate(envelope.event.data.object)
    return ProductUpsertedEvent(
        **envelope.fields(product.metadata),
        data=ProductUpserted(
            product_id=product.id,
            name=product.name,
            active=product.active,
            product_family=product.metadata.get("product_family"),
            revenue_class=product.metadata.get("revenue_class"),
        ),
    )


def price_upserted(envelope: Envelope) -> PriceUpsertedEvent:
    price = StripePrice.model_validate(envelope.event.data.object)
    return PriceUpsertedEvent(
        **envelope.fields(price.metadata),
        data=PriceUpserted(
            price_id=price.id,
            product_id=price.product,
            currency=price.currency,
            active=price.active,
            price_type=price.type,
            usage_type=price.recurring.usage_type if price.recurring else None,
            unit_amount=price.unit_amount,
        ),
    )
