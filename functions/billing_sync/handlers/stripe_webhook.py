"""API Gateway POST /webhooks/stripe: verify, archive, publish; 2xx only once the event is durable.

API Gateway routes exactly one method and path here, so the handler reads the proxy event with
Powertools' data class instead of loading the event-handler router (about 0.12 s of cold start).
"""

from __future__ import annotations

import base64
import binascii
import json
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_sync.composition.ingest import webhook_intake
from billing_sync.domain.errors import (
    InvalidJsonError,
    InvalidSignatureError,
    MissingSignatureError,
    PayloadTooLargeError,
    PublishError,
    RetryablePostingError,
)
from billing_sync.domain.webhook import InvalidEncodingError
from billing_sync.observability import logger, metrics

WEBHOOK_ROUTE = ("POST", "/webhooks/stripe")

_REFUSALS = {
    PayloadTooLargeError: (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "payload_too_large"),
    MissingSignatureError: (HTTPStatus.BAD_REQUEST, "missing_signature"),
    InvalidEncodingError: (HTTPStatus.BAD_REQUEST, "invalid_encoding"),
    InvalidJsonError: (HTTPStatus.BAD_REQUEST, "malformed_json"),
    InvalidSignatureError: (HTTPStatus.UNAUTHORIZED, "invalid_signature"),
    PublishError: (HTTPStatus.SERVICE_UNAVAILABLE, "not_durable_retry_later"),
    # A state table throttled or timed out (a lineage write of an ignored or parked event): Stripe retries.
    RetryablePostingError: (HTTPStatus.SERVICE_UNAVAILABLE, "state_busy_retry_later"),
}
RETRY_AFTER_SECONDS = "5"


def _response(status: HTTPStatus, body: dict[str, Any], **headers: str) -> dict[str, Any]:
    return {
        "statusCode": int(status),
        "headers": {"Content-Type": "application/json", **headers},
        "body": json.dumps(body, separators=(",", ":")),
        "isBase64Encoded": False,
    }


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
@event_source(data_class=APIGatewayProxyEvent)
def lambda_handler(event: APIGatewayProxyEvent, context: LambdaContext) -> dict[str, Any]:
    if event.resource != WEBHOOK_ROUTE[1]:
        return _response(HTTPStatus.NOT_FOUND, {"error": "not_found", "message": f"{event.http_method} {event.path}"})
    if event.http_method != WEBHOOK_ROUTE[0]:
        message = f"{event.http_method} is not allowed on {event.resource}; use POST"
        return _response(
            HTTPStatus.METHOD_NOT_ALLOWED, {"error": "method_not_allowed", "message": message}, Allow="POST"
        )
    try:
        result = webhook_intake().receive(_raw_body(event), event.headers.get("Stripe-Signature"))
    except tuple(_REFUSALS) as exc:
        status, code = next(answer for refused, answer in _REFUSALS.items() if isinstance(exc, refused))
        logger.warning("webhook refused", extra={"error": code, "reason": exc.reason})
        metrics.add_metric(name="WebhooksRefused", unit=MetricUnit.Count, value=1)
        headers = {"Retry-After": RETRY_AFTER_SECONDS} if status is HTTPStatus.SERVICE_UNAVAILABLE else {}
        return _response(status, {"error": code, "message": exc.reason}, **headers)
    metrics.add_metric(name=f"Webhooks{result.outcome.title()}", unit=MetricUnit.Count, value=1)
    logger.info("webhook accepted", extra={"event_id": result.event_id, "outcome": result.outcome})
    return _response(
        HTTPStatus.OK,
        {
            "received": True,
            "event_id": result.event_id,
            "source_event_id": result.source_event_id,
            "outcome": result.outcome,
        },
    )


def _raw_body(event: APIGatewayProxyEvent) -> bytes:
    """The bytes the sender signed (Powertools' `decoded_body` would decode them as UTF-8 and raise)."""
    body = event.body or ""
    try:
        return base64.b64decode(body, validate=True) if event.is_base64_encoded else body.encode("utf-8")
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise InvalidEncodingError(f"the proxy event's body cannot be read as bytes: {exc}") from None
