"""AWS Backup for the state tables: copies kept apart from the tables, which nobody can delete before they expire.

Point-in-time recovery already restores any second of the last 35 days, but it goes with its table. The plan adds
daily backups kept 35 days and month-start backups kept a year in a vault of this stack (encrypted with the data
key, retained when the stack goes, and whose policy denies deleting a recovery point or shortening its
lifecycle). The monthly one runs after revenue recognition has released the previous month (`cron(30 2 1 ...)`),
so it holds each month as the close starts. Evidence beyond a year is the raw archive's (object lock).
"""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_backup as backup
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_kms as kms
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

DAILY_RETENTION = Duration.days(35)
MONTHLY_RETENTION = Duration.days(365)
# 05:00 UTC: after the 02:30 recognition run on the 1st. The daily rule skips the 1st, the monthly rule's day, so
# no two jobs for one table start together.
BACKUP_HOUR_UTC = "5"


class TableBackups(Construct):
    """A backup vault and plan (daily kept 35 days, monthly kept a year) selecting `tables`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage: str,
        tables: Sequence[dynamodb.ITable],
        encryption_key: kms.IKey,
    ) -> None:
        super().__init__(scope, construct_id)
        self.vault = backup.BackupVault(
            self,
            "Vault",
            encryption_key=encryption_key,
            block_recovery_point_deletion=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        self.plan = backup.BackupPlan(
            self,
            "Plan",
            backup_plan_name=f"billing-sync-{stage}-tables",
            backup_vault=self.vault,
            backup_plan_rules=[
                backup.BackupPlanRule(
                    rule_name="Daily",
                    schedule_expression=events.Schedule.cron(minute="0", hour=BACKUP_HOUR_UTC, day="2-31"),
                    delete_after=DAILY_RETENTION,
                ),
                backup.BackupPlanRule(
                    rule_name="Monthly",
                    schedule_expression=events.Schedule.cron(minute="0", hour=BACKUP_HOUR_UTC, day="1"),
                    delete_after=MONTHLY_RETENTION,
                ),
            ],
        )
        self.selection = self.plan.add_selection(
            "StateTables",
            resources=[backup.BackupResource.from_dynamo_db_table(table) for table in tables],
        )
        NagSuppressions.add_resource_suppressions(
            self.selection,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM4",
                    reason="AWS Backup's own service role policy (AWSBackupServiceRolePolicyForBackup) is what the "
                    "service needs to start, describe and encrypt DynamoDB backup jobs; AWS keeps it current as "
                    "the service changes, which a copied inline policy would not.",
                    applies_to=[
                        "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSBackupServiceRolePolicyForBackup"
                    ],
                )
            ],
            apply_to_children=True,
        )
