"""Ledger table stream (NEW_IMAGE, INSERT of `DOC#` items) -> what waits for each created document goes
back to the posting queue.

Partial batch responses: a record that fails is reported and Lambda retries from it; releasing twice is
harmless (the requeued event posts once, a second copy is a duplicate).
"""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_sync.composition.release import document_release
from billing_sync.observability import logger, metrics
from billing_sync.state.balances import document_from_image


def release_record(record: DynamoDBRecord) -> int:
    image = record.raw_event.get("dynamodb", {}).get("NewImage") or {}
    document = document_from_image(image)
    if document is None:
        return 0
    released = document_release().created(document)
    if released:
        metrics.add_metric(name="WaitingEventsReleased", unit=MetricUnit.Count, value=released)
    return released


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> PartialItemFailureResponse:
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)
    return process_partial_response(event=event, record_handler=release_record, processor=processor, context=context)
