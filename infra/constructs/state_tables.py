from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from constructs import Construct

from billing_sync.aws.exception_store import OPEN_BY_CATEGORY_INDEX
from billing_sync.erp import APPLIED_TO_INDEX as LEDGER_APPLIED_TO_INDEX
from billing_sync.erp import BY_REFERENCE_INDEX as LEDGER_BY_REFERENCE_INDEX


class StateTables(Construct):
    """Lineage (idempotency claims and checkpoints), the embedded ERP ledger, master data, the waiting room
    and the exception store (every parked event, by category and age).

    Every table is encrypted with `encryption_key` (grants on a table include the key) and protected from
    deletion: removing one takes a deliberate change to the table, not a stack update or a console click."""

    def __init__(self, scope: Construct, construct_id: str, *, encryption_key: kms.IKey) -> None:
        super().__init__(scope, construct_id)
        self._encryption_key = encryption_key
        self.lineage = self._table("Lineage")
        # Its stream (new images) feeds the running balances: posting writes nothing more per document.
        self.ledger = self._table("Ledger", stream=dynamodb.StreamViewType.NEW_IMAGE)
        # Payments (and other documents) by the invoice they apply to: an invoice's payments in one query.
        self.ledger.add_global_secondary_index(
            index_name=LEDGER_APPLIED_TO_INDEX,
            partition_key=dynamodb.Attribute(name="applied_to", type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.INCLUDE,
            non_key_attributes=["kind", "total"],
        )
        # A payment by the source's handle on it (its payment intent): how a refund finds what it refunds.
        self.ledger.add_global_secondary_index(
            index_name=LEDGER_BY_REFERENCE_INDEX,
            partition_key=dynamodb.Attribute(name="reference", type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.INCLUDE,
            non_key_attributes=[
                "document_id",
                "kind",
                "total",
                "currency",
                "legal_entity",
                "customer",
                "source_event_id",
            ],
        )
        self.master_data = self._table("MasterData")
        # Held events by the name of what they wait for: a query per released key, never a scan on a hot path.
        self.waiting_room = self._table(
            "WaitingRoom",
            partition_key=dynamodb.Attribute(name="key", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="event_id", type=dynamodb.AttributeType.STRING),
        )
        self.exceptions = self._table("Exceptions")
        # Sparse: only open exceptions carry `open_category`, so operators list what needs them, oldest
        # first per category, without draining the queue; closed items stay in the table as history.
        self.exceptions.add_global_secondary_index(
            index_name=OPEN_BY_CATEGORY_INDEX,
            partition_key=dynamodb.Attribute(name="open_category", type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name="first_seen", type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.ALL,
        )

        # Running balances per entity, account, currency and month, and one applied-marker per document.
        self.balances = self._table(
            "Balances", sort_key=dynamodb.Attribute(name="sk", type=dynamodb.AttributeType.STRING)
        )

    @property
    def all(self) -> list[dynamodb.Table]:
        """The tables posting reads and writes (not the balances: only the balances function writes those)."""
        return [self.lineage, self.ledger, self.master_data, self.waiting_room, self.exceptions]

    @property
    def every(self) -> list[dynamodb.Table]:
        """Every table this construct holds (what the backup plan selects)."""
        return [*self.all, self.balances]

    def _table(
        self,
        construct_id: str,
        *,
        partition_key: dynamodb.Attribute | None = None,
        sort_key: dynamodb.Attribute | None = None,
        stream: dynamodb.StreamViewType | None = None,
    ) -> dynamodb.Table:
        return dynamodb.Table(
            self,
            construct_id,
            partition_key=partition_key or dynamodb.Attribute(name="pk", type=dynamodb.AttributeType.STRING),
            sort_key=sort_key,
            stream=stream,
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            encryption=dynamodb.TableEncryption.CUSTOMER_MANAGED,
            encryption_key=self._encryption_key,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
