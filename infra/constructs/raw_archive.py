from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

# Glacier Instant Retrieval bills 90 days at least, so a version moves on to Flexible Retrieval no sooner.
NONCURRENT_INSTANT_RETRIEVAL_AFTER = Duration.days(30)
NONCURRENT_FLEXIBLE_RETRIEVAL_AFTER = Duration.days(120)


class RawArchive(Construct):
    """Raw, signed payloads exactly as received: the evidence for audit and the source for replay.

    Every version is kept: a resend with another body becomes the current version and the earlier body a
    noncurrent one. Object lock (governance mode) keeps each version `retention_days` from its upload; only a
    principal allowed s3:BypassGovernanceRetention can remove one earlier. Lifecycle expires noncurrent versions
    once that retention has passed. Objects are encrypted with `encryption_key` through an S3 bucket key, so
    KMS is called about once per bucket key lifetime rather than once per webhook."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        encryption_key: kms.IKey,
        retention_days: int,
    ) -> None:
        super().__init__(scope, construct_id)
        # S3 server access logging delivers only to a destination with SSE-S3 (a KMS-encrypted destination
        # drops the logs), so this bucket keeps S3-managed keys; it holds request metadata, no payloads.
        self.access_logs_bucket = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(365))],
            removal_policy=RemovalPolicy.RETAIN,
        )
        NagSuppressions.add_resource_suppressions(
            self.access_logs_bucket,
            [
                NagPackSuppression(
                    id="AwsSolutions-S1",
                    reason="This bucket is the server access log destination of the raw archive; "
                    "logging it into itself would recurse and a third bucket adds nothing.",
                )
            ],
        )
        retention = Duration.days(retention_days)
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.KMS,
            encryption_key=encryption_key,
            bucket_key_enabled=True,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            versioned=True,
            object_lock_enabled=True,
            object_lock_default_retention=s3.ObjectLockRetention.governance(retention),
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="SupersededBodies",
                    noncurrent_version_transitions=[
                        s3.NoncurrentVersionTransition(
                            storage_class=s3.StorageClass.GLACIER_INSTANT_RETRIEVAL,
                            transition_after=NONCURRENT_INSTANT_RETRIEVAL_AFTER,
                        ),
                        s3.NoncurrentVersionTransition(
                            storage_class=s3.StorageClass.GLACIER,
                            transition_after=NONCURRENT_FLEXIBLE_RETRIEVAL_AFTER,
                        ),
                    ],
                ),
                s3.LifecycleRule(
                    id="SupersededBodiesAfterRetention",
                    noncurrent_version_expiration=retention,
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                ),
            ],
            # Glacier Instant Retrieval bills a small object as 128 KiB: typical webhook bodies (a few KiB) stay
            # in Standard, where they are cheapest; only large ones move.
            transition_default_minimum_object_size=s3.TransitionDefaultMinimumObjectSize.ALL_STORAGE_CLASSES_128_K,
            server_access_logs_bucket=self.access_logs_bucket,
            server_access_logs_prefix="raw-archive/",
            removal_policy=RemovalPolicy.RETAIN,
        )
