"""Test data builders for Stripe webhook events (no pytest dependency).

The event builders are `billing_sync_ops.samples`, shared with the bench; this module adds what only
tests need: signatures as Stripe sends them while a secret is being rolled.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from pathlib import Path

from billing_sync_ops.samples import (
    EVENTS_DIR,
    LineSpec,
    event_payload,
    invoice_event,
    invoice_paid_event,
    load_event,
    with_event_id,
)

__all__ = [
    "EVENTS_DIR",
    "REPO_ROOT",
    "LineSpec",
    "event_payload",
    "invoice_event",
    "invoice_paid_event",
    "load_event",
    "sign_stripe_payload",
    "sign_stripe_payload_multi",
    "with_event_id",
]

REPO_ROOT = Path(__file__).resolve().parent.parent


def _v1(payload: bytes, secret: str, timestamp: int) -> str:
    signed = f"{timestamp}.".encode() + payload
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign_stripe_payload(payload: bytes, secret: str, timestamp: int) -> str:
    """``Stripe-Signature`` header value: ``t=<ts>,v1=<hex HMAC-SHA256 of "<ts>." + payload>``."""
    return f"t={timestamp},v1={_v1(payload, secret, timestamp)}"


def sign_stripe_payload_multi(
    payload: bytes,
    secrets: Sequence[str],
    timestamp: int,
    *,
    include_v0: bool = True,
) -> str:
    """Header as Stripe sends it while an endpoint secret is being rolled.

    One ``v1=`` entry per secret (in order), plus a ``v0=`` decoy entry (Stripe adds a legacy ``v0``
    signature in test mode; it must never be accepted as a ``v1`` match).
    """
    parts = [f"t={timestamp}"]
    parts += [f"v1={_v1(payload, secret, timestamp)}" for secret in secrets]
    if include_v0:
        decoy_key = "v0-decoy:" + "|".join(secrets)
        parts.append(f"v0={_v1(payload, decoy_key, timestamp)}")
    return ",".join(parts)
