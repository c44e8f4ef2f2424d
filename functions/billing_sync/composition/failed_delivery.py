"""Composition root of the function that parks deliveries the partner function gave up on."""

from __future__ import annotations

from functools import cache

from billing_sync.aws.exception_queue import decode_exception_message
from billing_sync.composition.aws import aws_client, exception_queue, utc_now
from billing_sync.domain.lineage import ExceptionRecord
from billing_sync.domain.outcomes import OutcomeRecorder
from billing_sync.settings import partner_settings
from billing_sync.state.dynamo import DynamoLineageStore


class FailedDeliveryRecorder:
    def __init__(self, recorder: OutcomeRecorder) -> None:
        self._recorder = recorder

    def park(self, failure_record: str) -> ExceptionRecord:
        """Parks a Lambda on-failure record; raises PublishError when the exception queue refuses it."""
        record = decode_exception_message(failure_record, received=utc_now())
        self._recorder.parked(
            record,
            category=record.category,
            reason=record.reason,
            attempts=record.attempts,
            first_seen=record.first_seen,
            checkpoints={"received": record.first_seen},
            stage=record.stage,
            event=record.event,
            missing_key=record.missing_key,
        )
        return record


@cache
def failed_delivery_recorder() -> FailedDeliveryRecorder:
    settings = partner_settings()
    return FailedDeliveryRecorder(
        OutcomeRecorder(
            lineage=DynamoLineageStore(aws_client("dynamodb"), settings.lineage_table_name),
            exceptions=exception_queue(settings.exception_queue_url, settings.exception_table_name),
            clock=utc_now,
        )
    )
