"""Stripe webhook signature verification, as Stripe's libraries do it, on the raw body."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from billing_sync.domain.errors import InvalidSignatureError, MissingSignatureError

SIGNATURE_TOLERANCE_SECONDS = 300


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
