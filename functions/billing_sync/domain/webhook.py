"""Use case: receive a signed webhook. Refusals happen before anything is stored.

The signature is checked over the raw bytes before anything reads them. A signed body must then be
strict UTF-8 without a byte order mark, or it is refused. A signed JSON text that cannot be turned into
Python values safely (nested deeper than `MAX_JSON_DEPTH`, or a string holding a lone surrogate) is
archived and parked as MALFORMED and acknowledged, so the sender does not retry it for days.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from billing_sync.domain.errors import InvalidJsonError, MalformedEventError, PayloadTooLargeError
from billing_sync.domain.ingest import IngestResult, IngestService

MAX_WEBHOOK_BYTES = 256 * 1024
MAX_JSON_DEPTH = 64
"""Deepest nesting of arrays and objects a webhook body may have; Stripe's events nest about 10 deep."""

SignatureCheck = Callable[[bytes, str | None], None]
"""Raises SignatureError unless the header signs the raw body."""

_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff")
# A JSON string (skipped whole, so brackets inside it do not count) or one bracket.
_STRING_OR_BRACKET = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class InvalidEncodingError(InvalidJsonError):
    """The body is not UTF-8 (invalid bytes, or a UTF-8/UTF-16/UTF-32 byte order mark): HTTP 400."""


def decode_body(raw_body: bytes) -> str:
    """The body as text; raises InvalidEncodingError unless it is strict UTF-8 without a byte order mark."""
    if raw_body.startswith(_BOMS):
        raise InvalidEncodingError("the body starts with a byte order mark; webhooks are UTF-8 without one")
    try:
        return raw_body.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise InvalidEncodingError(f"the body is not valid UTF-8 (byte {exc.start}: {exc.reason})") from None


def json_depth_exceeds(text: str, limit: int) -> bool:
    """True when arrays and objects nest deeper than `limit`; a scan without recursion, strings skipped."""
    depth = 0
    for match in _STRING_OR_BRACKET.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                return True
        elif token in "]}":
            depth -= 1
    return False


def parse_json_body(text: str, *, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """The JSON value of a webhook body.

    Raises MalformedEventError when the text is not JSON, or is JSON this product cannot hold safely:
    nested deeper than `max_depth`, or a lone surrogate escape in a string (no UTF-8 store, queue or bus
    can carry it). The body is signed, so it is parked rather than refused.
    """
    if json_depth_exceeds(text, max_depth):
        raise MalformedEventError(f"the JSON body nests deeper than {max_depth} levels")
    try:
        payload = json.loads(text)
    except RecursionError:
        raise MalformedEventError(f"the JSON body nests deeper than {max_depth} levels") from None
    except ValueError as exc:
        # Signed by the sender, so a 4xx would only be retried for days: it is parked instead.
        raise MalformedEventError(f"body is not valid JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(text):
        try:
            json.dumps(payload, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedEventError("the JSON body holds a lone surrogate escape (\\ud800-\\udfff)") from None
    return payload


class WebhookIntake:
    def __init__(
        self,
        *,
        check_signature: SignatureCheck,
        ingest: IngestService,
        max_bytes: int = MAX_WEBHOOK_BYTES,
        max_depth: int = MAX_JSON_DEPTH,
    ):
        self._check_signature = check_signature
        self._ingest = ingest
        self._max_bytes = max_bytes
        self._max_depth = max_depth

    def receive(self, raw_body: bytes, signature_header: str | None) -> IngestResult:
        """Raises PayloadTooLargeError, SignatureError or InvalidEncodingError (nothing stored), or
        PublishError. A signed body that is not JSON, nests too deep or holds a lone surrogate is parked
        MALFORMED (its raw bytes archived) and answered as accepted, so the sender stops retrying it."""
        if len(raw_body) > self._max_bytes:
            raise PayloadTooLargeError(f"body is {len(raw_body)} bytes; the limit is {self._max_bytes}")
        self._check_signature(raw_body, signature_header)
        text = decode_body(raw_body)
        try:
            payload = parse_json_body(text, max_depth=self._max_depth)
        except MalformedEventError as exc:
            return self._ingest.park_unreadable(raw_body, exc)
        return self._ingest.accept(payload, raw_body)
