"""SQS posting queue -> ERP. Partial batch responses: only failed records return to the queue, each
after a delay that grows with its receive count (or the ERP's cool-down while the ERP is down).

The records of a batch post in parallel lanes (domain.posting.service.posting_lanes): events about one
invoice, or a customer and its events, keep arrival order in one lane. A failed record does not stop
its lane: it alone is reported, and a later record that needs it waits for it by name in the waiting room.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_sync.composition.posting import posting_retries, posting_service
from billing_sync.domain.posting.service import posting_lanes
from billing_sync.observability import error_fields, logger, metrics

RESENT = "RESENT"
MAX_PARALLEL_LANES = 10
"""Records in flight per environment: ERP calls in flight are at most this times the ESM's max concurrency."""
_metrics_lock = threading.Lock()  # Powertools' metric set is a plain dict: one writer at a time


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
        with _metrics_lock:
            metrics.add_metric(name="PostingRetryDelaySeconds", unit=MetricUnit.Seconds, value=retry.delay_seconds)
        logger.warning(
            "event failed; scheduled to return",
            extra={
                "receive_count": receive_count,
                "retry": retry,
                "message_id": record.message_id,
                "error": error_fields(exc),
            },
        )
        if retry.resent:
            return RESENT
        raise
    with _metrics_lock:
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


class LanedBatchProcessor(BatchProcessor):
    """Runs the batch's lanes on threads (the boto3 clients and the circuit breaker are thread-safe)."""

    def process(self) -> list[tuple]:
        lanes = posting_lanes([_bus_event_detail(record.get("body", "")) for record in self.records])
        results: list[tuple] = [()] * len(self.records)

        def post_lane(lane: list[int]) -> None:
            for index in lane:
                results[index] = self._process_record(self.records[index])

        posting_service()  # the cached composition is built once, before the threads share it
        posting_retries()
        with ThreadPoolExecutor(max_workers=max(1, min(len(lanes), MAX_PARALLEL_LANES))) as pool:
            list(pool.map(post_lane, lanes))
        # Failures are reported in arrival order, as the sequential processor reported them.
        order = {record.get("messageId"): index for index, record in enumerate(self.records)}
        self.fail_messages.sort(key=lambda message: order.get(getattr(message, "message_id", None), 0))
        return results


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> PartialItemFailureResponse:
    # A processor per invocation holds no state between invocations. A fully failed batch is reported
    # record by record rather than raised: the same retry, with a typed response.
    processor = LanedBatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
    response = process_partial_response(event=event, record_handler=post_record, processor=processor, context=context)
    # Emitted every invocation, zero included, so an alarm on a fully failed batch has data to judge.
    failures = len(response.get("batchItemFailures", []))
    metrics.add_metric(name="PostingItemFailures", unit=MetricUnit.Count, value=failures)
    return response
