from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct


class StateTables(Construct):
    """Lineage (idempotency claims and checkpoints), the embedded ERP ledger, and master data."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.lineage = self._table("Lineage")
        self.ledger = self._table("Ledger")
        self.master_data = self._table("MasterData")

    @property
    def all(self) -> list[dynamodb.Table]:
        return [self.lineage, self.ledger, self.master_data]

    def _table(self, construct_id: str) -> dynamodb.Table:
        return dynamodb.Table(
            self,
            construct_id,
            partition_key=dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.AWS_MANAGED,
            removal_policy=RemovalPolicy.RETAIN,
        )
