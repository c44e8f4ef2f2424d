from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_s3 as s3
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from infra.constructs.reconciliation import REPORTS_PREFIX
from infra.constructs.state_tables import StateTables
from infra.function_factory import FunctionFactory

EVENT_LINEAGE_PATH = "/events/{event_id}/lineage"
DOCUMENT_PATH = "/documents/{source}/{document_id}"
LINEAGE_API_TIMEOUT = Duration.seconds(10)


class LineageApi(Construct):
    """`GET /events/{event_id}/lineage` and `GET /documents/{source}/{document_id}` on the existing REST API.

    Finance reads the trail from raw event to ERP document to reconciliation status. Both methods are
    IAM-authorised (SigV4): only principals granted `execute-api:Invoke` on them can call; never public. The
    function reads lineage, the ledger and the reconciliation reports, and writes nothing.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        rest_api: apigateway.RestApi,
        function_factory: FunctionFactory,
        tables: StateTables,
        reports_bucket: s3.IBucket,
    ) -> None:
        super().__init__(scope, construct_id)
        self.function = function_factory.create(
            self,
            "LineageApiFunction",
            handler_module="lineage_api",
            timeout=LINEAGE_API_TIMEOUT,
            description="Answers finance's lineage questions: raw event -> lineage -> ERP documents -> reconciliation",
            environment={
                "LINEAGE_TABLE_NAME": tables.lineage.table_name,
                "LEDGER_TABLE_NAME": tables.ledger.table_name,
                "RECONCILIATION_BUCKET": reports_bucket.bucket_name,
            },
        )
        tables.lineage.grant_read_data(self.function)
        tables.ledger.grant_read_data(self.function)
        reports_bucket.grant_read(self.function, f"{REPORTS_PREFIX}/*")
        integration = apigateway.LambdaIntegration(self.function, proxy=True)
        self.methods = [
            rest_api.root.resource_for_path(path).add_method(
                "GET", integration, authorization_type=apigateway.AuthorizationType.IAM
            )
            for path in (EVENT_LINEAGE_PATH, DOCUMENT_PATH)
        ]
        for method in self.methods:
            NagSuppressions.add_resource_suppressions(
                method,
                [
                    NagPackSuppression(
                        id="AwsSolutions-COG4",
                        reason="Finance tools call with SigV4 (AuthorizationType AWS_IAM) under their IAM roles; "
                        "the account has no Cognito user pool for them.",
                    )
                ],
            )
        assert self.function.role is not None
        NagSuppressions.add_resource_suppressions(
            self.function.role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="grant_read_data adds the tables' indexes (index/*); the wildcard covers the indexes "
                    "of the ledger and lineage tables only, read-only.",
                    applies_to=[{"regex": "/^Resource::<StateTables(Ledger|Lineage)[0-9A-F]+\\.Arn>/index/\\*$/g"}],
                ),
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="The function reads reconciliation reports (one object per period and entity) under "
                    "the reports prefix only; the S3 read grant's actions are the Get/List families.",
                    applies_to=[
                        {"regex": "/^Resource::<ReconciliationBucket[0-9A-F]+\\.Arn>/reconciliation/reports/\\*$/g"},
                        {"regex": "/^Action::s3:(GetObject|GetBucket|List)\\*$/g"},
                    ],
                ),
            ],
            apply_to_children=True,
        )
