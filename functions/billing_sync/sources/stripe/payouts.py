"""Payouts: `payout.paid` -> payout.paid, `payout.failed` -> payout.failed.

A payout names no balance transactions; posting lists what it settles through the Stripe API
(`GET /v1/balance_transactions?payout=po_…`). `destination` (the bank account) is a mapping key.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

from billing_sync.domain.events import PayoutChanged, PayoutFailedEvent, PayoutPaidEvent
from billing_sync.sources.stripe.normaliser import Envelope, instant


class StripePayout(BaseModel):
    """A Payout (`po_…`); unknown fields are tolerated, money is strict."""

    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)

    id: str = Field(pattern=r"^po_")
    object: str
    amount: StrictInt
    currency: str
    arrival_date: StrictInt
    created: StrictInt
    status: str
    automatic: StrictBool = True
    destination: str | dict | None = None
    balance_transaction: str | dict | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


def payout_paid(envelope: Envelope) -> PayoutPaidEvent:
    return PayoutPaidEvent(**envelope.fields(_payout(envelope).metadata), data=_changed(_payout(envelope)))


def payout_failed(envelope: Envelope) -> PayoutFailedEvent:
    return PayoutFailedEvent(**envelope.fields(_payout(envelope).metadata), data=_changed(_payout(envelope)))


def _payout(envelope: Envelope) -> StripePayout:
    return StripePayout.model_validate(envelope.event.data.object)


def _id(value: str | dict | None) -> str | None:
    """An id whether Stripe sent the id or the expanded object."""
    if isinstance(value, dict):
        found = value.get("id")
        return found if isinstance(found, str) else None
    return value


def _changed(payout: StripePayout) -> PayoutChanged:
    return PayoutChanged(
        payout_id=payout.id,
        status=payout.status,  # type: ignore[arg-type]  # validated by the canonical model
        currency=payout.currency,
        amount=payout.amount,
        arrival_date=instant(payout.arrival_date),
        destination=_id(payout.destination),
        automatic=payout.automatic,
        balance_transaction_id=_id(payout.balance_transaction),
        failure_code=payout.failure_code,
        failure_message=payout.failure_message,
    )
