"""Disputes: `charge.dispute.created` -> dispute.created, `charge.dispute.closed` -> dispute.closed.

A Dispute embeds its balance transactions (`balance_transactions`, whole objects): the withdrawal of the
disputed amount and the dispute fee when it opens, the reinstatement (and, where Stripe returns it, the
fee) when it is won. An inquiry withdraws nothing and embeds none.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, Strict, StrictInt

from billing_sync.domain.events import DisputeChanged, DisputeClosedEvent, DisputeCreatedEvent, DisputeFunds
from billing_sync.sources.stripe.normaliser import Envelope, instant


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


class StripeDisputeTransaction(_Wire):
    id: str = Field(pattern=r"^txn_")
    amount: StrictInt
    fee: StrictInt
    net: StrictInt
    currency: str
    created: StrictInt
    reporting_category: str | None = None
    type: str | None = None
    exchange_rate: Annotated[Decimal, Strict()] | None = None


class StripeDispute(_Wire):
    id: str = Field(pattern=r"^(dp|du)_")
    object: str
    amount: StrictInt
    currency: str
    charge: str
    payment_intent: str | None = None
    status: str
    reason: str | None = None
    created: StrictInt
    balance_transactions: list[StripeDisputeTransaction] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict)


def dispute_created(envelope: Envelope) -> DisputeCreatedEvent:
    dispute = _dispute(envelope)
    return DisputeCreatedEvent(**envelope.fields(dispute.metadata), data=_changed(dispute))


def dispute_closed(envelope: Envelope) -> DisputeClosedEvent:
    dispute = _dispute(envelope)
    return DisputeClosedEvent(**envelope.fields(dispute.metadata), data=_changed(dispute))


def _dispute(envelope: Envelope) -> StripeDispute:
    return StripeDispute.model_validate(envelope.event.data.object)


def _changed(dispute: StripeDispute) -> DisputeChanged:
    return DisputeChanged(
        dispute_id=dispute.id,
        charge_id=dispute.charge,
        payment_intent_id=dispute.payment_intent,
        status=dispute.status,
        reason=dispute.reason,
        currency=dispute.currency,
        amount=dispute.amount,
        opened_at=instant(dispute.created),
        funds=tuple(
            DisputeFunds(
                balance_transaction_id=txn.id,
                reporting_category=txn.reporting_category,
                currency=txn.currency,
                amount=txn.amount,
                fee=txn.fee,
                net=txn.net,
                created=instant(txn.created),
            )
            for txn in dispute.balance_transactions
        ),
    )
