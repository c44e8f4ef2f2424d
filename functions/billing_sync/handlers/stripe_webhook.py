"""API Gateway POST /webhooks/stripe: verify, archive, publish; 2xx only once the event is durable."""

from __future__ import annotations

from http import HTTPStatus

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_sync.composition import webhook_intake
from billing_sync.domain.errors import (
    InvalidJsonError,
    InvalidSignatureError,
    MissingSignatureError,
    PayloadTooLargeError,
    PublishError,
)
from billing_sync.observability import logger, metrics

app = APIGatewayRestResolver()

_REFUSALS = {
    PayloadTooLargeError: (HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "payload_too_large"),
    MissingSignatureError: (HTTPStatus.BAD_REQUEST, "missing_signature"),
    InvalidJsonError: (HTTPStatus.BAD_REQUEST, "malformed_json"),
    InvalidSignatureError: (HTTPStatus.UNAUTHORIZED, "invalid_signature"),
    PublishError: (HTTPStatus.SERVICE_UNAVAILABLE, "not_durable_retry_later"),
}


def _json(status: HTTPStatus, body: dict) -> Response:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


@app.post("/webhooks/stripe")
def receive_stripe_webhook() -> Response:
    event = app.current_event
    raw_body = event.decoded_body.encode("utf-8") if event.decoded_body else b""
    try:
        result = webhook_intake().receive(raw_body, event.headers.get("Stripe-Signature"))
    except tuple(_REFUSALS) as exc:
        status, code = _REFUSALS[type(exc)]
        logger.warning("webhook refused", extra={"error": code, "reason": exc.reason})
        metrics.add_metric(name="WebhooksRefused", unit=MetricUnit.Count, value=1)
        return _json(status, {"error": code, "message": exc.reason})
    metrics.add_metric(name=f"Webhooks{result.outcome.title()}", unit=MetricUnit.Count, value=1)
    logger.info("webhook accepted", extra={"event_id": result.event_id, "outcome": result.outcome})
    return _json(
        HTTPStatus.OK,
        {
            "received": True,
            "event_id": result.event_id,
            "source_event_id": result.source_event_id,
            "outcome": result.outcome,
        },
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return app.resolve(event, context)
