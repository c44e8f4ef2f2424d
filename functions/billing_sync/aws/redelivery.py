"""The posting queue's side of a retry: delay a received message, or send its body again with a delay."""

from __future__ import annotations

from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from billing_sync.domain.errors import PublishError

if TYPE_CHECKING:
    from mypy_boto3_sqs.client import SQSClient


class SqsMessageRedelivery:
    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._url = queue_url

    def delay(self, receipt_handle: str, seconds: int) -> None:
        """ChangeMessageVisibility; raises PublishError (an expired receipt handle, throttling)."""
        try:
            self._client.change_message_visibility(
                QueueUrl=self._url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
            )
        except (BotoCoreError, ClientError) as exc:
            raise PublishError(f"could not delay a posting message by {seconds} s: {exc}") from exc

    def resend(self, body: str, delay_seconds: int) -> None:
        """SendMessage with DelaySeconds (at most 900); raises PublishError."""
        try:
            self._client.send_message(QueueUrl=self._url, MessageBody=body, DelaySeconds=delay_seconds)
        except (BotoCoreError, ClientError) as exc:
            raise PublishError(f"could not send a posting message again: {exc}") from exc
