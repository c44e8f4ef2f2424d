"""The Stripe API reader's list reads for reconciliation (`list_created`) against the Stripe API double:
the `created[gte]` / `created[lt]` window, `starting_after` pagination, and the demo's fixtures."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from billing_sync.sources.stripe.api import PAGE_SIZE, StripeApiReader, StripeApiResponseError
from billing_sync_ops.stripe_double import StripeDouble
from tests.fakes.stripe_api import TEST_KEY, balance_transaction, payout, payout_list, serving, ts

FIXTURES = Path(__file__).resolve().parents[2] / "events" / "stripe_api"
NOVEMBER = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))


def refund(refund_id: str, created: int) -> dict[str, object]:
    return {
        "id": refund_id,
        "object": "refund",
        "amount": 100,
        "currency": "usd",
        "status": "succeeded",
        "created": created,
    }


def test_a_list_read_pages_through_every_object_created_in_the_window() -> None:
    # GIVEN more refunds in November than one page holds, one at each edge of the window, and one in December
    inside = [refund(f"re_nov{index:04d}", ts(2026, 11, 2) + index) for index in range(PAGE_SIZE + 20)]
    edges = [refund("re_first_instant", ts(2026, 11, 1)), refund("re_next_month", ts(2026, 12, 1))]
    with serving(*inside, *edges) as (double, reader):
        # WHEN November's refunds are read
        found = reader.list_created("refunds", *NOVEMBER)

        # THEN every November refund comes back once (gte inclusive, lt exclusive), over two pages
        assert sorted(item["id"] for item in found) == sorted([item["id"] for item in inside] + ["re_first_instant"])
        pages = [path for path in double.requests if path.startswith("/v1/refunds")]
        assert len(pages) == 2 and "starting_after=" in pages[1]
        assert f"created%5Bgte%5D={ts(2026, 11, 1)}" in pages[0] and f"created%5Blt%5D={ts(2026, 12, 1)}" in pages[0]


def test_a_recorded_payout_list_is_still_answered_by_its_filter() -> None:
    # GIVEN a payout with its recorded balance transactions, and a charge not in that payout
    txn = balance_transaction("txn_1", type="charge", amount=1000, fee=59, source="ch_1", created=ts(2026, 11, 3))
    other = balance_transaction("txn_2", type="charge", amount=500, fee=45, source="ch_2", created=ts(2026, 11, 4))
    po = payout("po_1", amount=941, txn="txn_po", created=ts(2026, 11, 5), arrival_date=ts(2026, 11, 6))
    with serving(po, payout_list("po_1", [txn]), other) as (_, reader):
        # WHEN the payout's list and November's balance transactions are read
        settled = reader.payout_balance_transactions("po_1")
        listed = reader.list_created("balance_transactions", *NOVEMBER)

    # THEN the payout list holds only its own, the window every balance transaction created in it
    assert settled is not None and [item.id for item in settled] == ["txn_1"]
    assert sorted(item["id"] for item in listed) == ["txn_1", "txn_2"]


def test_a_listed_object_without_an_integer_created_is_refused() -> None:
    # GIVEN Stripe answering the refunds list with a refund whose `created` is not an integer
    bad = {**refund("re_bad", ts(2026, 11, 2)), "created": "yesterday"}
    with serving({"object": "list", "url": "/v1/refunds", "has_more": False, "data": [bad]}) as (_, reader):
        # WHEN the window is read  THEN the answer is refused, not guessed
        with pytest.raises(StripeApiResponseError, match="created"):
            reader.list_created("refunds", *NOVEMBER)
        # AND a collection reconciliation does not list is a programming error
        with pytest.raises(ValueError):
            reader.list_created("charges", *NOVEMBER)


def test_the_demo_fixtures_hold_what_the_demo_delivered_and_one_invoice_it_did_not() -> None:
    # GIVEN the double over the demo's fixtures  WHEN November's invoices are listed
    with StripeDouble(FIXTURES) as double:
        invoices = StripeApiReader(double.url, lambda: TEST_KEY).list_created("invoices", *NOVEMBER)

    # THEN the never-delivered invoice is among them, next to the delivered ones
    ids = {item["id"] for item in invoices}
    assert "in_1QzUndNx4RkL2mQeNvrD3lvR" in ids and "in_1QvDDlNx4RkL2mQejBTD4pmw" in ids
    assert all(NOVEMBER[0].timestamp() <= item["created"] < NOVEMBER[1].timestamp() for item in invoices)
