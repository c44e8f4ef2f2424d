"""API Gateway GET /events/{event_id}/lineage and GET /documents/{source}/{document_id} (IAM-authorised).

Answers finance's lineage questions with the trail from raw event to ERP documents to reconciliation status:
200 with the trail, 404 for an id nothing knows, 400 for an id that cannot be one, 503 when a store fails.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_sync.composition.lineage import MalformedIdError, lineage_trails
from billing_sync.domain.errors import BillingSyncError
from billing_sync.observability import logger, metrics

app = APIGatewayRestResolver()


def _json(status: HTTPStatus, body: dict[str, Any]) -> Response:
    return Response(status_code=int(status), content_type=content_types.APPLICATION_JSON, body=body)


def _answer(trail: dict[str, Any] | None, what: str) -> Response:
    if trail is None:
        metrics.add_metric(name="LineageNotFound", unit=MetricUnit.Count, value=1)
        return _json(HTTPStatus.NOT_FOUND, {"error": "not_found", "message": f"no lineage for {what}"})
    metrics.add_metric(name="LineageFound", unit=MetricUnit.Count, value=1)
    return _json(HTTPStatus.OK, trail)


@app.get("/events/<event_id>/lineage")
def event_lineage(event_id: str) -> Response:
    return _answer(lineage_trails().for_event(event_id), f"event {event_id}")


@app.get("/documents/<source>/<document_id>")
def document_lineage(source: str, document_id: str) -> Response:
    return _answer(lineage_trails().for_document(source, document_id), f"document {source}/{document_id}")


@app.exception_handler(MalformedIdError)
def _malformed(exc: MalformedIdError) -> Response:
    return _json(HTTPStatus.BAD_REQUEST, {"error": "malformed_id", "message": str(exc)})


@app.exception_handler(BillingSyncError)
def _store_failed(exc: BillingSyncError) -> Response:
    logger.exception("lineage lookup failed")
    return _json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "lookup_failed", "message": "try again later"})


@app.not_found
def _no_route(exc: Exception) -> Response:
    return _json(HTTPStatus.NOT_FOUND, {"error": "not_found", "message": f"no route {app.current_event.path}"})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
