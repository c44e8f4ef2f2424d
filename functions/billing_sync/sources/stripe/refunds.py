"""Refunds: `refund.created` / `refund.updated`, and `charge.refunded` -> refund.issued.

Every state of a refund is reported, failed and canceled included: the refund saga books a refund once it
succeeds and reverses it if it later fails. A Refund names no credit note; the credit note's
`refunds[].refund` names the refund, so posting links the two by refund id. `charge.refunded` carries its
refunds only where the API version or an expansion embeds them (from 2022-11-15 on, by default it does not);
then it reports the newest, otherwise it is ignored, since `refund.created` / `refund.updated` carry each one.
"""

from __future__ import annotations

from billing_sync.domain.errors import MalformedEventError
from billing_sync.domain.events import RefundIssued, RefundIssuedEvent
from billing_sync.sources.stripe.normaliser import Envelope, instant
from billing_sync.sources.stripe.wire import StripeCharge, StripeRefund

CREDIT_NOTE_METADATA_KEY = "credit_note"
"""Refund metadata key that may name the credit note carrying the refund (Stripe's Refund has no such field)."""


def refund_changed(envelope: Envelope) -> RefundIssuedEvent:
    """`refund.created` / `refund.updated`; raises MalformedEventError for a refund of nothing."""
    refund = StripeRefund.model_validate(envelope.event.data.object)
    return _refund_issued(envelope, refund, customer_id=refund.customer)


def charge_refunded(envelope: Envelope) -> RefundIssuedEvent | None:
    """`charge.refunded`: the newest embedded refund, or None when the charge embeds none."""
    charge = StripeCharge.model_validate(envelope.event.data.object)
    if charge.refunds is None or not charge.refunds.data:
        return None
    newest = max(charge.refunds.data, key=lambda refund: refund.created)
    return _refund_issued(
        envelope,
        newest,
        customer_id=newest.customer or charge.customer,
        charge_id=newest.charge or charge.id,
        payment_intent_id=newest.payment_intent or charge.payment_intent,
    )


def _refund_issued(
    envelope: Envelope,
    refund: StripeRefund,
    *,
    customer_id: str | None,
    charge_id: str | None = None,
    payment_intent_id: str | None = None,
) -> RefundIssuedEvent:
    charge_id = charge_id or refund.charge
    payment_intent_id = payment_intent_id or refund.payment_intent
    if charge_id is None and payment_intent_id is None:
        raise MalformedEventError(f"refund {refund.id} names neither a charge nor a payment intent")
    return RefundIssuedEvent(
        **envelope.fields(refund.metadata),
        data=RefundIssued(
            refund_id=refund.id,
            status=refund.status,
            payment_intent_id=payment_intent_id,
            charge_id=charge_id,
            credit_note_id=refund.metadata.get(CREDIT_NOTE_METADATA_KEY),
            customer_id=customer_id,
            currency=refund.currency,
            amount=refund.amount,
            refunded_at=instant(refund.created),
            reason=refund.reason,
            failure_balance_transaction_id=refund.failure_balance_transaction_id,
        ),
    )
