"""Stripe as a billing source: webhook signature verification and normalisation.

Normalisation maps Stripe events to canonical finance events:
invoice.finalized -> invoice.issued; invoice.paid and charge.succeeded carrying an invoice ->
payment.settled; customer.created/updated -> customer.upserted. Every other type is unsupported and
recorded as IGNORED by the caller. Both payment events of one invoice map to the same payment key
(the invoice id), so the ERP receives one payment document per invoice whichever arrives first.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pydantic

from billing_sync.domain.errors import InvalidSignatureError, MalformedEventError, MissingSignatureError
from billing_sync.domain.events import (
    CustomerUpserted,
    CustomerUpsertedEvent,
    FinanceEvent,
    InvoiceIssued,
    InvoiceIssuedEvent,
    InvoiceLine,
    PaymentSettled,
    PaymentSettledEvent,
    RevenueClass,
    derive_event_id,
)
from billing_sync.domain.ingest import SourceIdentity
from billing_sync.domain.money import UnknownCurrencyError, currency_exponent
from billing_sync.sources.stripe_wire import StripeCharge, StripeCustomer, StripeEvent, StripeInvoice

SOURCE = "stripe"
SIGNATURE_TOLERANCE_SECONDS = 300
LEGAL_ENTITY_METADATA_KEY = "legal_entity"


def verify_signature(
    payload: bytes,
    header: str | None,
    secrets: Sequence[str],
    *,
    now: int,
    tolerance: int = SIGNATURE_TOLERANCE_SECONDS,
) -> None:
    """Checks a Stripe-Signature header against the raw body, as Stripe's libraries do.

    Accepts when any v1 signature matches any configured secret (several during rotation) and the
    timestamp is within `tolerance` seconds either side of `now`. Raises MissingSignatureError or
    InvalidSignatureError.
    """
    if not header or not header.strip():
        raise MissingSignatureError("the Stripe-Signature header is missing")
    timestamp: int | None = None
    signatures: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise InvalidSignatureError("the Stripe-Signature timestamp is not a number") from None
        elif key == "v1" and value:
            signatures.append(value)
    if timestamp is None or not signatures:
        raise InvalidSignatureError("the Stripe-Signature header has no timestamp or no v1 signature")
    if abs(now - timestamp) > tolerance:
        raise InvalidSignatureError(
            f"the Stripe-Signature timestamp is {now - timestamp:+d} s from now, outside ±{tolerance} s"
        )
    signed = str(timestamp).encode() + b"." + payload
    for secret in secrets:
        expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        if any(hmac.compare_digest(expected, candidate) for candidate in signatures):
            return
    raise InvalidSignatureError("no v1 signature matches a configured webhook secret")


def _instant(unix_seconds: int) -> datetime:
    return datetime.fromtimestamp(unix_seconds, tz=UTC)


class StripeNormaliser:
    """Implements the domain's SourceNormaliser for Stripe events (webhook or EventBridge)."""

    source = SOURCE

    def __init__(self, *, default_legal_entity: str) -> None:
        self._default_legal_entity = default_legal_entity

    def identify(self, payload: Any) -> SourceIdentity:
        if not isinstance(payload, Mapping):
            raise MalformedEventError("a Stripe event must be a JSON object")
        event_id, event_type = payload.get("id"), payload.get("type")
        if not isinstance(event_id, str) or not event_id.startswith("evt_") or not isinstance(event_type, str):
            raise MalformedEventError("a Stripe event needs an `id` starting with evt_ and a `type`")
        api_version = payload.get("api_version")
        return SourceIdentity(event_id, event_type, api_version if isinstance(api_version, str) else None)

    def normalise(self, payload: Mapping[str, Any], *, received_at: datetime, raw_ref: str) -> FinanceEvent | None:
        try:
            event = StripeEvent.model_validate(payload)
            mapper = _MAPPERS.get(event.type)
            if mapper is None:
                return None
            return mapper(self, event, received_at, raw_ref)
        except pydantic.ValidationError as exc:
            raise MalformedEventError(f"Stripe {payload.get('type')} cannot be normalised: {_summary(exc)}") from exc
        except UnknownCurrencyError as exc:
            raise MalformedEventError(f"Stripe {payload.get('type')} cannot be normalised: {exc}") from exc

    def _envelope(self, event: StripeEvent, received_at: datetime, raw_ref: str, metadata: Mapping[str, str]) -> dict:
        return {
            "event_id": derive_event_id(SOURCE, event.id),
            "source": SOURCE,
            "source_event_id": event.id,
            "source_event_type": event.type,
            "source_api_version": event.api_version,
            "occurred_at": _instant(event.created),
            "received_at": received_at,
            "normalised_at": datetime.now(UTC),
            "legal_entity": metadata.get(LEGAL_ENTITY_METADATA_KEY) or self._default_legal_entity,
            "correlation_id": event.id,
            "raw_ref": raw_ref,
        }

    def _invoice_issued(self, event: StripeEvent, received_at: datetime, raw_ref: str) -> InvoiceIssuedEvent:
        invoice = StripeInvoice.model_validate(event.data.object)
        currency = invoice.currency.upper()
        currency_exponent(currency)
        if invoice.lines.has_more:
            raise MalformedEventError(
                f"invoice {invoice.id} has more lines than the event carries; expand lines before sending"
            )
        lines = tuple(
            InvoiceLine(
                line_id=line.id,
                description=line.description,
                revenue_class=_revenue_class(line.parent.type if line.parent else None, line.pricing),
                price_id=(line.pricing.price_details or {}).get("price") if line.pricing else None,
                product_id=(line.pricing.price_details or {}).get("product") if line.pricing else None,
                quantity=line.quantity,
                amount=line.amount,
                discount=sum(d.amount for d in line.discount_amounts or ()),
                tax_exclusive=sum(t.amount for t in line.taxes or () if t.tax_behavior != "inclusive"),
                tax_inclusive=sum(t.amount for t in line.taxes or () if t.tax_behavior == "inclusive"),
                period_start=_instant(line.period.start),
                period_end=_instant(line.period.end),
            )
            for line in invoice.lines.data
        )
        subscription = (invoice.parent.subscription_details or {}).get("subscription") if invoice.parent else None
        taxes = invoice.total_taxes or ()
        issued = (
            (invoice.status_transitions.finalized_at if invoice.status_transitions else None)
            or invoice.effective_at
            or invoice.created
        )
        return InvoiceIssuedEvent(
            **self._envelope(event, received_at, raw_ref, invoice.metadata),
            data=InvoiceIssued(
                invoice_id=invoice.id,
                number=invoice.number,
                customer_id=invoice.customer,
                subscription_id=subscription if isinstance(subscription, str) else None,
                currency=currency,
                issued_at=_instant(issued),
                due_at=_instant(invoice.due_date) if invoice.due_date else None,
                lines=lines,
                subtotal=invoice.subtotal,
                discount_total=sum(d.amount for d in invoice.total_discount_amounts or ()),
                tax_exclusive_total=sum(t.amount for t in taxes if t.tax_behavior != "inclusive"),
                tax_inclusive_total=sum(t.amount for t in taxes if t.tax_behavior == "inclusive"),
                total=invoice.total,
                amount_due=invoice.amount_due,
            ),
        )

    def _invoice_paid(self, event: StripeEvent, received_at: datetime, raw_ref: str) -> PaymentSettledEvent:
        invoice = StripeInvoice.model_validate(event.data.object)
        paid_at = (invoice.status_transitions.paid_at if invoice.status_transitions else None) or event.created
        return PaymentSettledEvent(
            **self._envelope(event, received_at, raw_ref, invoice.metadata),
            data=_invoice_payment(invoice.id, invoice.customer, invoice.currency, invoice.amount_paid, paid_at),
        )

    def _charge_succeeded(self, event: StripeEvent, received_at: datetime, raw_ref: str) -> PaymentSettledEvent | None:
        charge = StripeCharge.model_validate(event.data.object)
        if charge.invoice is None:
            return None
        if charge.customer is None:
            raise MalformedEventError(f"charge {charge.id} pays invoice {charge.invoice} but names no customer")
        return PaymentSettledEvent(
            **self._envelope(event, received_at, raw_ref, event.data.object.get("metadata") or {}),
            data=_invoice_payment(charge.invoice, charge.customer, charge.currency, charge.amount, charge.created),
        )

    def _customer_upserted(self, event: StripeEvent, received_at: datetime, raw_ref: str) -> CustomerUpsertedEvent:
        customer = StripeCustomer.model_validate(event.data.object)
        return CustomerUpsertedEvent(
            **self._envelope(event, received_at, raw_ref, customer.metadata),
            data=CustomerUpserted(
                customer_id=customer.id,
                name=customer.name,
                email=customer.email,
                default_currency=customer.currency,
                country=customer.address.country if customer.address else None,
                tax_exempt=customer.tax_exempt or "none",
            ),
        )


_Mapper = Callable[["StripeNormaliser", StripeEvent, datetime, str], FinanceEvent | None]

_MAPPERS: dict[str, _Mapper] = {
    "invoice.finalized": StripeNormaliser._invoice_issued,
    "invoice.paid": StripeNormaliser._invoice_paid,
    "charge.succeeded": StripeNormaliser._charge_succeeded,
    "customer.created": StripeNormaliser._customer_upserted,
    "customer.updated": StripeNormaliser._customer_upserted,
}


def _invoice_payment(invoice_id: str, customer_id: str, currency: str, amount: int, settled: int) -> PaymentSettled:
    """Both payment events of one invoice share its id as payment key, hence one ERP payment document."""
    return PaymentSettled(
        payment_id=invoice_id,
        invoice_id=invoice_id,
        customer_id=customer_id,
        currency=currency,
        amount=amount,
        settled_at=_instant(settled),
    )


def _revenue_class(parent_type: str | None, pricing: Any) -> RevenueClass:
    if parent_type == "subscription_item_details":
        details = (pricing.price_details or {}) if pricing else {}
        return RevenueClass.USAGE if details.get("usage_type") == "metered" else RevenueClass.SUBSCRIPTION
    return RevenueClass.ONE_OFF


def _summary(exc: pydantic.ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "event"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"
