"""Builders of Stripe API objects (balance transactions, charges, payouts) shaped like API 2025-10-29.clover,
and a running StripeDouble serving them: the seam the Stripe API reader is tested through."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from billing_sync.sources.stripe.api import StripeApiReader
from billing_sync_ops.stripe_double import StripeDouble
from billing_sync_ops.stripe_objects import balance_transaction, card_fee, payout_list

TEST_KEY = "rk_test_51SyncReadOnlyBillingSync"
__all__ = ["TEST_KEY", "balance_transaction", "card_fee", "charge", "payout", "payout_list", "serving", "ts"]


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp())


def charge(
    charge_id: str, *, amount: int, balance_transaction: str, payment_intent: str | None, created: int, customer: str
) -> dict[str, Any]:
    return {
        "id": charge_id,
        "object": "charge",
        "amount": amount,
        "amount_captured": amount,
        "amount_refunded": 0,
        "balance_transaction": balance_transaction,
        "captured": True,
        "created": created,
        "currency": "usd",
        "customer": customer,
        "disputed": False,
        "livemode": False,
        "metadata": {},
        "paid": True,
        "payment_intent": payment_intent,
        "status": "succeeded",
    }


def payout(
    payout_id: str, *, amount: int, arrival_date: int, created: int, txn: str, status: str = "paid"
) -> dict[str, Any]:
    return {
        "id": payout_id,
        "object": "payout",
        "amount": amount,
        "arrival_date": arrival_date,
        "automatic": True,
        "balance_transaction": txn,
        "created": created,
        "currency": "usd",
        "description": "STRIPE PAYOUT",
        "destination": "ba_1SyncUS01OperatingAcct",
        "failure_balance_transaction": None,
        "failure_code": None,
        "failure_message": None,
        "livemode": False,
        "metadata": {},
        "method": "standard",
        "reconciliation_status": "completed",
        "source_type": "card",
        "statement_descriptor": None,
        "status": status,
        "type": "bank_account",
    }


@contextmanager
def serving(*documents: Any) -> Iterator[tuple[StripeDouble, StripeApiReader]]:
    """A started double holding `documents` and a reader pointed at it (short timeout)."""
    double = StripeDouble(objects=())
    for document in documents:
        double.add(document)
    with double:
        yield double, StripeApiReader(double.url, lambda: TEST_KEY, timeout_seconds=2.0)
