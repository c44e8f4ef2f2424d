"""The demo's samples, then the payout, under the local runtime: the posting function reads the local Stripe
double (events/stripe_api) through the environment the runtime sets, and the payout clears USD clearing."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from billing_sync.domain.journal import DocumentKind
from billing_sync.domain.lineage import LineageStatus
from billing_sync.state.dynamo import DynamoLineageStore
from billing_sync_ops.demo import EVENTS_DIR, STRIPE_API_FIXTURES, _ledger, post_webhook, send_samples
from billing_sync_ops.runtime import LocalRuntime
from billing_sync_ops.signing import sign_stripe_payload

pytestmark = pytest.mark.infra  # synthesises the stack the local runtime is built from

CLEARING = "1150 Payment Clearing"


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(log_level="ERROR", stripe_fixtures=STRIPE_API_FIXTURES) as running:
        yield running


def send(runtime: LocalRuntime, name: str) -> str:
    body = (EVENTS_DIR / f"{name}.json").read_bytes()
    status, answer = post_webhook(
        runtime.webhook_url, body, sign_stripe_payload(body, runtime.webhook_secret, int(time.time()))
    )
    assert status == 200, answer
    return str(answer["event_id"])


def test_the_demo_then_its_payout_clears_us01_usd_clearing_to_zero(runtime):
    # GIVEN the demo's samples are sent and settled (refunds through the saga)
    send_samples(runtime)
    assert runtime.drain(timeout_seconds=120)

    # WHEN the payout is paid, and the schedule's sweep runs once after the queues drain
    event_id = send(runtime, "stripe_payout_paid")
    assert runtime.drain(timeout_seconds=60)
    runtime.sweep()
    assert runtime.drain(timeout_seconds=60)

    # THEN the payout is posted, and US01's USD clearing nets to exactly zero
    lineage = DynamoLineageStore(runtime._session.client("dynamodb"), runtime.stack.outputs["LineageTableName"])
    record = lineage.get(event_id)
    assert record is not None and record.status is LineageStatus.POSTED, record
    ledger = _ledger(runtime)
    documents = [doc for kind in DocumentKind for doc in ledger.list_documents(kind)]
    clearing = sum(
        line.net
        for doc in documents
        if doc.legal_entity == "US01"
        for line in doc.journal
        if line.account == CLEARING and line.currency == "USD"
    )
    assert clearing == 0
    assert len(list(ledger.list_documents(DocumentKind.FEE))) == 5
