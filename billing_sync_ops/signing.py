"""Signs payloads the way Stripe does, for the local demo and `billing-sync local send`."""

from __future__ import annotations

import hashlib
import hmac


def sign_stripe_payload(payload: bytes, secret: str, timestamp: int) -> str:
    """A Stripe-Signature header value: `t=<unix>,v1=<hex HMAC-SHA256 of "t.payload">`."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"
