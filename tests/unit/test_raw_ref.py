"""A raw reference names one archived body: its location, S3 version and SHA-256, and reads back as such."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from billing_sync.aws.archive import raw_object
from billing_sync.domain.lineage import archived_body, archived_ref, raw_location, raw_version

RECEIVED = datetime(2026, 11, 1, 1, 0, 5, tzinfo=UTC)
DIGEST = hashlib.sha256(b'{"id":"evt_1QH6KZNx4RkL2mQemUSGRWS1"}').hexdigest()
LOCATION = "s3://raw-archive/raw/stripe/evt_1QH6KZNx4RkL2mQemUSGRWS1.json"


@pytest.mark.parametrize("version", ["3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY", "Wr.kD_9x/3vUq=1", "null", None])
def test_a_reference_reads_back_its_location_version_and_digest(version: str | None) -> None:
    # GIVEN the reference of an archived body (S3 version ids may hold '+', '/', '=' and '.')
    ref = archived_ref(LOCATION, sha256=DIGEST, version_id=version)

    # WHEN it is read back
    body = archived_body(ref, received_at=RECEIVED)
    located = raw_object(ref)

    # THEN every part is as written, and S3 reads exactly that version
    assert (raw_location(ref), raw_version(ref)) == (LOCATION, version)
    assert body is not None and (body.sha256, body.version_id) == (DIGEST, version)
    assert located is not None
    expected = {"Bucket": "raw-archive", "Key": "raw/stripe/evt_1QH6KZNx4RkL2mQemUSGRWS1.json"}
    assert located.get_object_args() == expected | ({"VersionId": version} if version else {})


@pytest.mark.parametrize(
    "ref",
    [
        None,
        "",
        LOCATION,  # a replay from the archive names no body
        f"{LOCATION}?sha256={DIGEST[:40]}",
        f"{LOCATION}?sha256={DIGEST.upper()}",
        f"{LOCATION}?versionId=v1",
    ],
)
def test_a_reference_without_a_digest_names_no_body(ref: str | None) -> None:
    # WHEN / THEN lineage records no body for it, and never fails on it
    assert archived_body(ref, received_at=RECEIVED) is None
