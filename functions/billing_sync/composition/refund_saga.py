"""Composition root of the refund saga's task function: the same ERP, stores and mapping as posting."""

from __future__ import annotations

from functools import cache

from billing_sync.aws.posting_queue import SqsPostingQueue
from billing_sync.composition.aws import aws_client, exception_queue, utc_now
from billing_sync.composition.bookkeeping import bookkeeper
from billing_sync.composition.posting import erp_client
from billing_sync.domain.mapping import AccountMapping
from billing_sync.domain.refunds import RefundSaga
from billing_sync.settings import posting_settings
from billing_sync.state.dynamo import DynamoLineageStore, DynamoMasterDataStore, DynamoWaitingRoom


@cache
def refund_saga() -> RefundSaga:
    settings = posting_settings()
    dynamodb = aws_client("dynamodb")
    return RefundSaga(
        erp=erp_client(),
        master_data=DynamoMasterDataStore(dynamodb, settings.master_data_table_name),
        lineage=DynamoLineageStore(dynamodb, settings.lineage_table_name),
        exceptions=exception_queue(settings.exception_queue_url, settings.exception_table_name),
        mapping=AccountMapping.model_validate_json(settings.mapping_file.read_bytes()),
        clock=utc_now,
        bookkeeper=bookkeeper(),
        waiting_room=DynamoWaitingRoom(dynamodb, settings.waiting_room_table_name),
        requeue=SqsPostingQueue(aws_client("sqs"), settings.posting_queue_url),
    )
