"""Stripe events -> canonical finance events; one module per object family, one table of types here.

Stripe renders each event in the API version of the endpoint that receives it. From 2025-03-31.basil a
charge no longer carries `invoice` and an invoice's payments arrive as `invoice_payment.paid`; events
rendered in an older version keep the older meaning (`invoice.paid` and a charge with `invoice` are the
payment), chosen by the event's `api_version` and by the shape present, never by guessing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import pydantic

from billing_sync.domain.errors import MalformedEventError
from billing_sync.domain.events import FinanceEvent, derive_event_id
from billing_sync.domain.ingest import SourceIdentity
from billing_sync.domain.money import UnknownCurrencyError
from billing_sync.sources.stripe.wire import StripeEvent

SOURCE = "stripe"
LEGAL_ENTITY_METADATA_KEY = "legal_entity"
INVOICE_PAYMENTS_API_VERSION = "2025-03-31"
"""The first API version (basil) in which payments are InvoicePayments and charges lose `invoice`."""


def instant(unix_seconds: int) -> datetime:
    return datetime.fromtimestamp(unix_seconds, tz=UTC)


class Envelope:
    """The canonical envelope fields of one Stripe event."""

    def __init__(
        self,
        event: StripeEvent,
        *,
        received_at: datetime,
        raw_ref: str,
        default_legal_entity: str,
        stripe_accounts: Mapping[str, str] | None = None,
    ) -> None:
        self.event = event
        self._received_at = received_at
        self._raw_ref = raw_ref
        self._default_legal_entity = default_legal_entity
        self._stripe_accounts = stripe_accounts or {}

    @property
    def renders_invoice_payments(self) -> bool:
        """True unless the event was rendered in an API version before basil."""
        version = self.event.api_version
        return version is None or version[:10] >= INVOICE_PAYMENTS_API_VERSION

    def fields(self, metadata: Mapping[str, str] | None = None) -> dict[str, Any]:
        return {
            "event_id": derive_event_id(SOURCE, self.event.id),
            "source": SOURCE,
            "source_event_id": self.event.id,
            "source_event_type": self.event.type,
            "source_api_version": self.event.api_version,
            "occurred_at": instant(self.event.created),
            "received_at": self._received_at,
            "normalised_at": datetime.now(UTC),
            "legal_entity": self.legal_entity(metadata),
            "correlation_id": self.event.id,
            "raw_ref": self._raw_ref,
        }

    def legal_entity(self, metadata: Mapping[str, str] | None = None) -> str:
        """The Stripe account that owns the money (the event's Connect `account`, else the object's
        `on_behalf_of`) when the mapping names its entity, else the `legal_entity` metadata, else the default."""
        for account in (self.event.account, _account_id(self.event.data.object.get("on_behalf_of"))):
            if account and (entity := self._stripe_accounts.get(account)):
                return entity
        return (metadata or {}).get(LEGAL_ENTITY_METADATA_KEY) or self._default_legal_entity


def _account_id(value: object) -> str | None:
    """`on_behalf_of` as an id, whether Stripe sent the id or the expanded account."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) else None


Mapper = Callable[[Envelope], FinanceEvent | None]


def _mappers() -> dict[str, Mapper]:
    from billing_sync.sources.stripe import (
        catalogue,
        credit_notes,
        customers,
        disputes,
        invoices,
        payments,
        payouts,
        refunds,
        subscriptions,
    )

    return {
        "customer.created": customers.customer_upserted,
        "customer.updated": customers.customer_upserted,
        "product.created": catalogue.product_upserted,
        "product.updated": catalogue.product_upserted,
        "price.created": catalogue.price_upserted,
        "price.updated": catalogue.price_upserted,
        "customer.subscription.created": subscriptions.subscription_changed,
        "customer.subscription.updated": subscriptions.subscription_changed,
        "customer.subscription.deleted": subscriptions.subscription_changed,
        "invoice.finalized": invoices.invoice_issued,
        "invoice.voided": invoices.invoice_voided,
        "invoice.marked_uncollectible": invoices.invoice_written_off,
        "invoice.payment_failed": invoices.payment_failed,
        "invoice.paid": payments.invoice_paid,
        "invoice_payment.paid": payments.invoice_payment_paid,
        "charge.succeeded": payments.charge_succeeded,
        "credit_note.created": credit_notes.credit_note_issued,
        "refund.created": refunds.refund_changed,
        "refund.updated": refunds.refund_changed,
        "charge.refunded": refunds.charge_refunded,
        "payout.paid": payouts.payout_paid,
        "payout.failed": payouts.payout_failed,
        "charge.dispute.created": disputes.dispute_created,
        "charge.dispute.closed": disputes.dispute_closed,
    }


HANDLED_EVENT_TYPES: tuple[str, ...] = (
    "charge.dispute.closed",
    "charge.dispute.created",
    "charge.refunded",
    "charge.succeeded",
    "credit_note.created",
    "customer.created",
    "customer.subscription.created",
    "customer.subscription.deleted",
    "customer.subscription.updated",
    "customer.updated",
    "invoice.finalized",
    "invoice.marked_uncollectible",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.voided",
    "invoice_payment.paid",
    "payout.failed",
    "payout.paid",
    "price.created",
    "price.updated",
    "product.created",
    "product.updated",
    "refund.created",
    "refund.updated",
)
"""Stripe event types with a canonical meaning; every other type is acknowledged and recorded IGNORED."""


class StripeNormaliser:
    """Implements the domain's SourceNormaliser for Stripe events (webhook or EventBridge)."""

    source = SOURCE

    def __init__(self, *, default_legal_entity: str, stripe_accounts: Mapping[str, str] | None = None) -> None:
        """`stripe_accounts` maps a Stripe account id (`acct_…`) to the legal entity that owns it."""
        self._default_legal_entity = default_legal_entity
        self._stripe_accounts = dict(stripe_accounts or {})
        self._table: dict[str, Mapper] | None = None

    def identify(self, payload: Any) -> SourceIdentity:
        if not isinstance(payload, Mapping):
            raise MalformedEventError("a Stripe event must be a JSON object")
        event_id, event_type = payload.get("id"), payload.get("type")
        if not isinstance(event_id, str) or not event_id.startswith("evt_") or not isinstance(event_type, str):
            raise MalformedEventError("a Stripe event needs an `id` starting with evt_ and a `type`")
        api_version = payload.get("api_version")
        return SourceIdentity(event_id, event_type, api_version if isinstance(api_version, str) else None)

    def normalise(self, payload: Mapping[str, Any], *, received_at: datetime, raw_ref: str) -> FinanceEvent | None:
        if self._table is None:
            self._table = _mappers()
        try:
            event = StripeEvent.model_validate(payload)
            mapper = self._table.get(event.type)
            if mapper is None:
                return None
            envelope = Envelope(
                event,
                received_at=received_at,
                raw_ref=raw_ref,
                default_legal_entity=self._default_legal_entity,
                stripe_accounts=self._stripe_accounts,
            )
            return mapper(envelope)
        except pydantic.ValidationError as exc:
            raise MalformedEventError(f"Stripe {payload.get('type')} cannot be normalised: {_summary(exc)}") from exc
        except UnknownCurrencyError as exc:
            raise MalformedEventError(f"Stripe {payload.get('type')} cannot be normalised: {exc}") from exc


def _summary(exc: pydantic.ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "event"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"
