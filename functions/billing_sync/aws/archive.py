"""The raw archive on S3: every source payload as received, for audit and replay.

One key per source event (`raw/<source>/<source_event_id>.json`) in a versioned bucket: a resend of the
same event with another body is a new version of the key, so every body accepted stays readable, and the
raw reference each ingest hands on names the version and the SHA-256 it wrote (lineage lists them all).
The first PUT of a key is conditional (`If-None-Match: *`): a refusal is how a resend is noticed without
another call on the first delivery.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from billing_sync.aws.errors import error_code
from billing_sync.domain.errors import PublishError
from billing_sync.domain.lineage import archived_ref, raw_location, raw_version
from billing_sync.domain.ports import Archived

# 412: the key holds a body already; 409: another PUT of the key is in flight.
_KEY_TAKEN = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})


def raw_archive_key(source: str, source_event_id: str) -> str:
    return f"raw/{source}/{source_event_id}.json"


@dataclass(frozen=True)
class RawObject:
    """Where a raw reference's body lies on S3; `version_id` pins one body of a resent event."""

    bucket: str
    key: str
    version_id: str | None = None

    def get_object_args(self) -> dict[str, str]:
        """The arguments of `get_object` that read exactly this body."""
        args = {"Bucket": self.bucket, "Key": self.key}
        if self.version_id:
            args["VersionId"] = self.version_id
        return args


def raw_object(raw_ref: str | None) -> RawObject | None:
    """The S3 object a raw reference names (`s3://bucket/key[?versionId=…&sha256=…]`); None when not on S3."""
    if not raw_ref or not raw_ref.startswith("s3://"):
        return None
    bucket, _, key = raw_location(raw_ref).removeprefix("s3://").partition("/")
    return RawObject(bucket, key, raw_version(raw_ref)) if bucket and key else None


class S3RawArchive:
    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def put(self, *, source: str, source_event_id: str, body: bytes) -> Archived:
        """One PUT for a new source event, two for a resend; raises PublishError when S3 refuses."""
        key = raw_archive_key(source, source_event_id)
        digest = hashlib.sha256(body)
        request = {
            "Bucket": self._bucket,
            "Key": key,
            "Body": body,
            "ContentType": "application/json",
            # S3 checks the bytes against the digest; an object-locked bucket refuses a PUT that does not
            # name its checksum algorithm.
            "ChecksumAlgorithm": "SHA256",
            "ChecksumSHA256": base64.b64encode(digest.digest()).decode("ascii"),
        }
        resent = False
        try:
            try:
                response = self._client.put_object(**request, IfNoneMatch="*")
            except ClientError as exc:
                if error_code(exc) not in _KEY_TAKEN:
                    raise
                resent = True
                response = self._client.put_object(**request)
        except (BotoCoreError, ClientError) as exc:
            raise PublishError(f"could not archive {source} event {source_event_id}: {exc}") from exc
        ref = archived_ref(
            f"s3://{self._bucket}/{key}", sha256=digest.hexdigest(), version_id=response.get("VersionId")
        )
        return Archived(ref=ref, resent=resent)
