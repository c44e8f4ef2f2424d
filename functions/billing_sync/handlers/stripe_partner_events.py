"""EventBridge partner bus: Stripe events delivered natively, through the same normaliser as webhooks.

A raised error makes EventBridge retry the delivery (and finally use the target's dead-letter queue).
"""

from __future__ import annotations

import json

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_sync.composition.ingest import partner_ingest
from billing_sync.observability import logger, metrics


@logger.inject_lambda_context(correlation_id_path="detail.id")
@metrics.log_metrics
@event_source(data_class=EventBridgeEvent)
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict:
    raw = json.dumps(event.detail, separators=(",", ":")).encode()
    result = partner_ingest().accept(event.detail, raw)
    metrics.add_metric(name=f"PartnerEvents{result.outcome.title()}", unit=MetricUnit.Count, value=1)
    logger.info("partner event accepted", extra={"event_id": result.event_id, "outcome": result.outcome})
    return {"event_id": result.event_id, "outcome": result.outcome}
