"""The monthly recognition handler on moto: invoices posted to the DynamoDB ledger, releases posted once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from billing_sync.composition.posting import posting_service
from billing_sync.domain.journal import DocumentKind
from billing_sync.erp.ledger import DynamoLedgerErpClient
from billing_sync.handlers import recognize_revenue
from billing_sync_ops.lambda_runtime import LocalLambdaContext
from tests.functional.aws_fixtures import AwsResources
from tests.functional.posting_harness import canonical

CONTEXT = LocalLambdaContext("recognize-revenue", 300)
RENEWAL = "stripe-invoice-in_195RYKNx4RkL2mQeXZrXWZ9C"
# The seat line of the May renewal: 29700 over [May 1, Jun 1); one day's share was earned at posting.
MAY_RELEASE = 29700 - 29700 // 31
# What EventBridge Scheduler sends (infra/constructs/revenue_recognition.py), its context attributes filled in.
SCHEDULED_INPUT = {
    "schedule_arn": "arn:aws:scheduler:us-east-1:123456789012:schedule/default/recognize-revenue",
    "scheduled_time": "2026-06-01T02:30:00Z",
}


def post_samples(*samples: str) -> None:
    for sample in samples:
        posting_service().handle(canonical(sample).model_dump(mode="json"))


def recognition_documents(aws: AwsResources) -> list[str]:
    ledger = DynamoLedgerErpClient(aws.dynamodb, "ledger")
    return sorted(d.external_id for d in ledger.list_documents(DocumentKind.RECOGNITION))


def test_may_is_released_once_with_the_exact_amount(aws: AwsResources) -> None:
    # GIVEN the customer and the May renewal posted to the ledger
    post_samples("stripe_customer_created_lifecycle", "stripe_invoice_finalized_renewal_credit_balance")

    # WHEN the handler runs through May 31
    first = recognize_revenue.lambda_handler({"through": "2026-05-31"}, CONTEXT)

    # THEN one release is created for the rest of May
    assert first == {
        "through": "2026-05-31",
        "releases": 1,
        "already_posted": 0,
        "amount_by_currency": {"USD": MAY_RELEASE},
    }
    assert recognition_documents(aws) == [f"{RENEWAL}-recognition-2026-05"]

    # WHEN it runs again for the same day
    second = recognize_revenue.lambda_handler({"through": "2026-05-31"}, CONTEXT)

    # THEN nothing is posted twice: the release is found as already posted
    assert (second["releases"], second["already_posted"], second["amount_by_currency"]) == (0, 1, {})
    assert recognition_documents(aws) == [f"{RENEWAL}-recognition-2026-05"]


def test_without_through_it_runs_through_the_end_of_the_previous_month(
    aws: AwsResources, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the schedule fires on June 1 without a `through`
    monkeypatch.setattr(recognize_revenue, "utc_now", lambda: datetime(2026, 6, 1, 2, 30, tzinfo=UTC))
    post_samples("stripe_customer_created_lifecycle", "stripe_invoice_finalized_renewal_credit_balance")

    # WHEN the handler runs with the input the schedule sends
    result = recognize_revenue.lambda_handler(SCHEDULED_INPUT, CONTEXT)

    # THEN it recognises through May 31
    assert (result["through"], result["releases"]) == ("2026-05-31", 1)


@pytest.mark.parametrize("through", ["2026-5-31", "20260531", 20260531, "2999-01-31"])
def test_a_malformed_or_future_through_is_refused(aws: AwsResources, through: object) -> None:
    # WHEN the handler is asked to run through something that is not a past day
    with pytest.raises(ValueError, match="through"):
        recognize_revenue.lambda_handler({"through": through}, CONTEXT)

    # THEN nothing is released
    assert recognition_documents(aws) == []
