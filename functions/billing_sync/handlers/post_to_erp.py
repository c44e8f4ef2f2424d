"""SQS posting queue -> ERP. Partial batch responses: only failed records return to the queue, each
after a delay that grows with its receive count (or the ERP's cool-down while the ERP is down)."""

from __future__ import annotations

import json

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_sync.composition.posting import posting_retries, posting_service
from billing_sync.observability import logger, metrics

RESENT = "RESENT"


def _bus_event_detail(body: str) -> dict:
    """The canonical event inside the EventBridge envelope; an unreadable body is kept for parking."""
    try:
        envelope = json.loads(body)
    except ValueError:
        return {"unreadable_body": body}
    detail = envelope.get("detail") if isinstance(envelope, dict) else None
    return detail if isinstance(detail, dict) else {"unreadable_body": body}


def post_record(record: SQSRecord) -> str:
    retries = posting_retries()
    # Lambda always sets ApproximateReceiveCount; an event built by hand may not.
    receive_count = int(record.attributes.get("ApproximateReceiveCount") or 1)
    try:
        result = posting_service().handle(_bus_event_detail(record.body), delivery=retries.delivery(receive_count))
    except Exception as exc:
        retry = retries.after_failure(
            receipt_handle=record.receipt_handle, body=record.body, receive_count=receive_count
        )
        metrics.add_metric(name="PostingRetryDelaySeconds", unit=MetricUnit.Seconds, value=retry.delay_seconds)
        logger.warning(
            "event failed; scheduled to return",
            extra={"receive_count": receive_count, "retry": retry, "message_id": record.message_id, "error": repr(exc)},
        )
        if retry.resent:
            return RESENT
        raise
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
    response = process_partial_response(event=event, record_handler=post_record, processor=processor, context=context)
    # Emitted every invocation, zero included, so an alarm on a fully failed batch has data to judge.
    failures = len(response.get("batchItemFailures", []))
    metrics.add_metric(name="PostingItemFailures", unit=MetricUnit.Count, value=failures)
    return response
