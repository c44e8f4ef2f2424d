"""The DynamoDB stores translate unexpected SDK failures as the ledger does: transient ones are retryable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.exceptions import ConnectTimeoutError
from botocore.stub import Stubber

from billing_sync.domain.errors import BillingSyncError, ExceptionCategory, RetryablePostingError
from billing_sync.domain.events import CustomerUpserted
from billing_sync.domain.lineage import EventRef
from billing_sync.state.dynamo import DynamoLineageStore, DynamoMasterDataStore

NOW = datetime(2025, 1, 1, tzinfo=UTC)
REF = EventRef(
    event_id="evt-1", source="stripe", source_event_id="evt_1", event_type="invoice.finalized", received_at=NOW
)


@pytest.fixture
def dynamodb():
    client = boto3.client("dynamodb", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    with Stubber(client) as stubber:
        yield client, stubber


def test_throttling_on_the_claim_is_retryable(dynamodb):
    # GIVEN DynamoDB throttles the claim
    client, stubber = dynamodb
    stubber.add_client_error("update_item", "ProvisionedThroughputExceededException", http_status_code=400)

    # WHEN the lineage store claims the event
    with pytest.raises(RetryablePostingError) as raised:
        DynamoLineageStore(client, "lineage").claim(REF, now=NOW, lease_until=NOW + timedelta(seconds=90))

    # THEN the error is retryable and keeps the SDK error as its cause
    assert raised.value.category is ExceptionCategory.INTERNAL
    assert "ProvisionedThroughputExceededException" in raised.value.reason
    assert raised.value.__cause__ is not None


def test_a_refused_write_is_an_internal_error_that_is_not_retried_as_transient(dynamodb):
    # GIVEN DynamoDB refuses the request outright
    client, stubber = dynamodb
    stubber.add_client_error("update_item", "AccessDeniedException", http_status_code=400)

    # WHEN the lineage store marks an event posted
    with pytest.raises(BillingSyncError) as raised:
        DynamoLineageStore(client, "lineage").mark_posted("evt-1", document_ids=("LDG-1",), now=NOW)

    # THEN the error is INTERNAL and not a retryable one
    assert not isinstance(raised.value, RetryablePostingError)
    assert raised.value.category is ExceptionCategory.INTERNAL


def test_a_5xx_on_a_master_data_read_is_retryable(dynamodb):
    client, stubber = dynamodb
    stubber.add_client_error("get_item", "InternalServerError", http_status_code=500)

    with pytest.raises(RetryablePostingError):
        DynamoMasterDataStore(client, "master-data").customer_exists(source="stripe", customer_id="cus_1")


def test_a_connection_failure_is_retryable(monkeypatch, dynamodb):
    # GIVEN DynamoDB cannot be reached
    client, _ = dynamodb

    def unreachable(**_: object) -> None:
        raise ConnectTimeoutError(endpoint_url="https://dynamodb.us-east-1.amazonaws.com")

    monkeypatch.setattr(client, "put_item", unreachable)

    # WHEN master data stores a customer
    with pytest.raises(RetryablePostingError):
        DynamoMasterDataStore(client, "master-data").upsert_customer(
            source="stripe", customer=CustomerUpserted(customer_id="cus_1"), legal_entity="US01", as_of=NOW
        )
