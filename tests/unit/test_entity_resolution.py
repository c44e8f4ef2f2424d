"""Which legal entity an event belongs to: the Stripe account, then customer metadata, then the default."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from billing_sync.composition.ingest import stripe_account_entities
from billing_sync.domain.errors import ExceptionCategory
from billing_sync.domain.events import FinanceEvent
from billing_sync.domain.posting.service import PostingStatus
from billing_sync.sources.stripe import StripeNormaliser
from tests.builders import load_event
from tests.functional.posting_harness import PostingHarness

US_ACCOUNT = "acct_1SyncUS01Example"
JP_ACCOUNT = "acct_1SyncJP01Example"
RECEIVED_AT = datetime(2026, 11, 2, 1, 21, tzinfo=UTC)


def normalise(payload: dict[str, Any]) -> FinanceEvent:
    normaliser = StripeNormaliser(default_legal_entity="US01", stripe_accounts=stripe_account_entities())
    event = normaliser.normalise(payload, received_at=RECEIVED_AT, raw_ref="raw/stripe/test.json")
    assert event is not None
    return event


def without_metadata(sample: str) -> dict[str, Any]:
    payload = load_event(sample)
    payload["data"]["object"]["metadata"] = {}
    return payload


def test_the_bundled_mapping_names_the_owner_of_each_stripe_account() -> None:
    assert stripe_account_entities() == {US_ACCOUNT: "US01", JP_ACCOUNT: "JP01"}


def test_an_invoice_on_behalf_of_the_japanese_account_belongs_to_jp01() -> None:
    # GIVEN a yen invoice with no entity metadata, charged on behalf of JP01's Stripe account
    payload = without_metadata("stripe_invoice_finalized_jpy")
    payload["data"]["object"]["on_behalf_of"] = JP_ACCOUNT

    # WHEN it is normalised
    event = normalise(payload)

    # THEN it is JP01's, not the stack default's
    assert event.legal_entity == "JP01"


def test_an_expanded_on_behalf_of_account_is_read_by_its_id() -> None:
    payload = without_metadata("stripe_invoice_finalized_jpy")
    payload["data"]["object"]["on_behalf_of"] = {"id": JP_ACCOUNT, "object": "account"}

    assert normalise(payload).legal_entity == "JP01"


def test_an_event_from_a_connected_account_belongs_to_that_accounts_entity() -> None:
    # GIVEN a Connect event: the customer of JP01's connected account, with no entity metadata
    payload = without_metadata("stripe_customer_created_jp")
    payload["account"] = JP_ACCOUNT

    # WHEN it is normalised
    event = normalise(payload)

    # THEN the account decides
    assert event.legal_entity == "JP01"


def test_the_stripe_account_wins_over_the_entity_metadata() -> None:
    # GIVEN an invoice whose metadata says US01 but whose money belongs to JP01's account
    payload = load_event("stripe_invoice_finalized")
    assert payload["data"]["object"]["metadata"] == {"legal_entity": "US01"}
    payload["data"]["object"]["on_behalf_of"] = JP_ACCOUNT

    # WHEN / THEN
    assert normalise(payload).legal_entity == "JP01"


@pytest.mark.parametrize(
    ("account", "on_behalf_of", "metadata", "entity"),
    [
        ("acct_1SomeoneElse", None, {"legal_entity": "KW01"}, "KW01"),
        (None, "acct_1SomeoneElse", {}, "US01"),
        (None, None, {}, "US01"),
    ],
    ids=["unknown-account-then-metadata", "unknown-on-behalf-of-then-default", "nothing-then-default"],
)
def test_an_account_the_mapping_does_not_name_falls_back_to_metadata_then_the_default(
    account: str | None, on_behalf_of: str | None, metadata: dict[str, str], entity: str
) -> None:
    payload = load_event("stripe_invoice_finalized")
    payload["account"] = account
    payload["data"]["object"]["on_behalf_of"] = on_behalf_of
    payload["data"]["object"]["metadata"] = metadata

    assert normalise(payload).legal_entity == entity


def test_an_invoice_on_behalf_of_another_entity_than_its_customers_is_parked_naming_both() -> None:
    # GIVEN the US01 customer, and its invoice charged on behalf of JP01's Stripe account
    harness = PostingHarness()
    harness.service.post(normalise(load_event("stripe_customer_created")))
    payload = load_event("stripe_invoice_finalized")
    payload["data"]["object"]["on_behalf_of"] = JP_ACCOUNT

    # WHEN it is posted
    result = harness.service.post(normalise(payload))

    # THEN it is a VALIDATION exception naming both entities, and no invoice is booked
    assert (result.status, result.category) == (PostingStatus.EXCEPTION, ExceptionCategory.VALIDATION)
    [parked] = harness.exceptions.records
    assert "legal entity JP01" in parked.reason and "belongs to US01" in parked.reason
    assert [d for d in harness.erp.documents if d.startswith("stripe-invoice-")] == []
