"""Customer managed keys: who may decrypt billing data is decided in this stack's key policies, not AWS's.

Three keys, each rotated yearly and retained when the stack goes: `data` for what holds customers' names,
emails, addresses and card last4 at rest (tables, the raw archive, reports, secrets, table backups),
`messaging` for queues and topics (its policy lets EventBridge deliver to an encrypted queue and CloudWatch
alarms publish to an encrypted topic), and `logs` for the log groups (CloudWatch Logs encrypts with it,
scoped to this account's log groups by encryption context).
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from constructs import Construct


class DataKeys(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        self.data = self._key("Data", "Encrypts billing-sync tables, raw archive, reports, secrets and backups")
        self.messaging = self._key("Messaging", "Encrypts billing-sync queues and topics")
        for sid, service in (
            ("AllowEventBridgeToDeliverToEncryptedQueues", "events.amazonaws.com"),
            ("AllowCloudWatchAlarmsToPublishToEncryptedTopics", "cloudwatch.amazonaws.com"),
        ):
            self.messaging.add_to_resource_policy(
                iam.PolicyStatement(
                    sid=sid,
                    principals=[iam.ServicePrincipal(service)],
                    actions=["kms:Decrypt", "kms:GenerateDataKey*"],
                    resources=["*"],
                    conditions={"StringEquals": {"aws:SourceAccount": stack.account}},
                )
            )
        self.logs = self._key("Logs", "Encrypts billing-sync log groups")
        self.logs.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AllowCloudWatchLogsOfThisAccount",
                principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
                resources=["*"],
                conditions={
                    "ArnLike": {
                        "kms:EncryptionContext:aws:logs:arn": (
                            f"arn:{stack.partition}:logs:{stack.region}:{stack.account}:log-group:*"
                        )
                    }
                },
            )
        )

    def _key(self, construct_id: str, description: str) -> kms.Key:
        return kms.Key(
            self,
            construct_id,
            description=description,
            enable_key_rotation=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
