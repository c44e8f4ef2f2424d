"""Composition root of the release function (ledger stream -> waiting room -> posting queue)."""

from __future__ import annotations

from functools import cache

from billing_sync.aws.posting_queue import SqsPostingQueue
from billing_sync.composition.aws import aws_client
from billing_sync.domain.posting.release import DocumentRelease
from billing_sync.settings import release_settings
from billing_sync.state.dynamo import DynamoWaitingRoom


@cache
def document_release() -> DocumentRelease:
    settings = release_settings()
    return DocumentRelease(
        waiting=DynamoWaitingRoom(aws_client("dynamodb"), settings.waiting_room_table_name),
        requeue=SqsPostingQueue(aws_client("sqs"), settings.posting_queue_url),
    )
