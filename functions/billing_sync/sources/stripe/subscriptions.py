"""customer.subscription.* -> subscription.created / amended / cancelled: contract data, no journal."""

from __future__ import annotations

from billing_sync.domain.events import (
    SubscriptionAmendedEvent,
    SubscriptionCancelledEvent,
    SubscriptionChange,
    SubscriptionCreatedEvent,
    SubscriptionItem,
)
from billing_sync.sources.stripe.normaliser import Envelope, instant
from billing_sync.sources.stripe.wire import StripeSubscription

_EVENTS = {
    "customer.subscription.created": SubscriptionCreatedEvent,
    "customer.subscription.updated": SubscriptionAmendedEvent,
    "customer.subscription.deleted": SubscriptionCancelledEvent,
}


def subscription_changed(
    envelope: Envelope,
) -> SubscriptionCreatedEvent | SubscriptionAmendedEvent | SubscriptionCancelledEvent:
    subscription = StripeSubscription.model_validate(envelope.event.data.object)
    items = subscription.items.data
    # From basil the billing period lives on each item; older versions carry it on the subscription.
    period_start = subscription.current_period_start or next((i.current_period_start for i in items), None)
    period_end = subscription.current_period_end or next((i.current_period_end for i in items), None)
    model = _EVENTS[envelope.event.type]
    return model(  # type: ignore[return-value]
        **envelope.fields(subscription.metadata),
        data=SubscriptionChange(
            subscription_id=subscription.id,
            customer_id=subscription.customer,
            status=subscription.status,
            currency=subscription.currency,
            items=tuple(
                SubscriptionItem(
                    item_id=item.id,
                    price_id=item.price.id,
                    product_id=item.price.product,
                    quantity=item.quantity or 0,
                    unit_amount=item.price.unit_amount,
                )
                for item in items
            ),
            current_period_start=instant(period_start) if period_start else None,
            current_period_end=instant(period_end) if period_end else None,
            cancel_at=instant(subscription.cancel_at) if subscription.cancel_at else None,
        ),
    )
