"""Stripe as a billing source: signature verification, wire models and one normaliser per object family."""

from billing_sync.sources.stripe.normaliser import HANDLED_EVENT_TYPES, SOURCE, StripeNormaliser
from billing_sync.sources.stripe.verify import SIGNATURE_TOLERANCE_SECONDS, verify_signature

__all__ = ["HANDLED_EVENT_TYPES", "SIGNATURE_TOLERANCE_SECONDS", "SOURCE", "StripeNormaliser", "verify_signature"]
