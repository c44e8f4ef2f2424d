"""SQS posting queue -> ERP. Partial batch responses: only failed records return to the queue."""

from __future__ import annotations

import json

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_sync.composition.posting import posting_service
from billing_sync.observability import logger, metrics


def _bus_event_detail(body: str) -> dict:
    """The canonical event inside the EventBridge envelope; an unreadable body is kept for parking."""
    try:
        envelope = json.loads(body)
    except ValueError:
        return {"unreadable_body": body}
    detail = envelope.get("detail") if isinstance(envelope, dict) else None
    return detail if isinstance(detail, dict) else {"unreadable_body": body}


def post_record(record: SQSRecord) -> str:
    result = posting_service().handle(_bus_event_detail(record.body))
    metrics.add_metric(name=f"Events{result.status.title()}", unit=MetricUnit.Count, value=1)
    logger.info(
        "event processed",
        extra={
            "event_id": result.event_id,
            "status": result.status,
            "category": result.category,
            "erp_document_ids": result.erp_document_ids,
        },
    )
    return result.status


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> PartialItemFailureResponse:
    # A processor per invocation holds no state between invocations. A fully failed batch is reported
    # record by record rather than raised: the same retry, with a typed response.
    processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    return process_partial_response(event=event, record_handler=post_record, processor=processor, context=context)
