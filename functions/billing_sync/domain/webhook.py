"""Use case: receive a signed webhook. Refusals happen before anything is stored."""

from __future__ import annotations

import json
from collections.abc import Callable

from billing_sync.domain.errors import InvalidJsonError, PayloadTooLargeError
from billing_sync.domain.ingest import IngestResult, IngestService

MAX_WEBHOOK_BYTES = 256 * 1024

SignatureCheck = Callable[[bytes, str | None], None]
"""Raises SignatureError unless the header signs the raw body."""


class WebhookIntake:
    def __init__(self, *, check_signature: SignatureCheck, ingest: IngestService, max_bytes: int = MAX_WEBHOOK_BYTES):
        self._check_signature = check_signature
        self._ingest = ingest
        self._max_bytes = max_bytes

    def receive(self, raw_body: bytes, signature_header: str | None) -> IngestResult:
        """Raises PayloadTooLargeError, SignatureError or InvalidJsonError (nothing stored), or PublishError."""
        if len(raw_body) > self._max_bytes:
            raise PayloadTooLargeError(f"body is {len(raw_body)} bytes; the limit is {self._max_bytes}")
        self._check_signature(raw_body, signature_header)
        try:
            payload = json.loads(raw_body)
        except (UnicodeDecodeError, ValueError) as exc:
            raise InvalidJsonError(f"body is not valid JSON: {exc}") from None
        return self._ingest.accept(payload, raw_body)
