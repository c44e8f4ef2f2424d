"""Ledger table stream (NEW_IMAGE, INSERT of `DOC#` items) -> running balances.

Partial batch responses: a record that fails is reported, Lambda retries from it (bisecting the batch),
and after the mapping's retries the batch's metadata goes to the exception queue. A redelivered record
is harmless: each document is applied with a conditional marker in one transaction.
"""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from billing_sync.composition.balances import balances_store
from billing_sync.observability import logger, metrics
from billing_sync.state.balances import document_from_image

APPLIED, ALREADY_APPLIED, SKIPPED = "APPLIED", "ALREADY_APPLIED", "SKIPPED"


def apply_record(record: DynamoDBRecord) -> str:
    image = record.raw_event.get("dynamodb", {}).get("NewImage") or {}
    document = document_from_image(image)
    if document is None:
        return SKIPPED
    applied = balances_store().apply(document)
    metrics.add_metric(
        name="BalancesDocumentsApplied" if applied else "BalancesRedeliveries", unit=MetricUnit.Count, value=1
    )
    logger.debug("document applied to balances", extra={"external_id": document.external_id, "applied": applied})
    return APPLIED if applied else ALREADY_APPLIED


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> PartialItemFailureResponse:
    processor = BatchProcessor(event_type=EventType.DynamoDBStreams, raise_on_entire_batch_failure=False)
    return process_partial_response(event=event, record_handler=apply_record, processor=processor, context=context)
