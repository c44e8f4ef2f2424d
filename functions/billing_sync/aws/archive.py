"""The raw archive on S3: every source payload as received, for audit and replay."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from billing_sync.domain.errors import PublishError


def raw_archive_key(source: str, source_event_id: str) -> str:
    return f"raw/{source}/{source_event_id}.json"


class S3RawArchive:
    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def put(self, *, source: str, source_event_id: str, body: bytes) -> str:
        key = raw_archive_key(source, source_event_id)
        try:
            self._client.put_object(Bucket=self._bucket, Key=key, Body=body, ContentType="application/json")
        except (BotoCoreError, ClientError) as exc:
            raise PublishError(f"could not archive {source} event {source_event_id}: {exc}") from exc
        return f"s3://{self._bucket}/{key}"
