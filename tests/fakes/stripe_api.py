"""Builders of Stripe API objects (balance transactions, charges, payouts) shaped like API 2025-10-29.clover,
and a running StripeDouble serving them: the seam the Stripe API reader is tested through."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from billing_sync.sources.stripe.api import StripeApiReader
from billing_sync_ops.stripe_double import StripeDouble

TEST_KEY = "rk_test_51SyncReadOnlyBillingSync"


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, tzinfo=UTC).timestamp())


def card_fee(amount: int) -> int:
    """Stripe's US card pricing, 2.9 % + 30¢, rounded half up to the cent."""
    return (amount * 29 + 500) // 1000 + 30


def balance_transaction(
    txn_id: str,
    *,
    type: str,
    amount: int,
    fee: int = 0,
    source: str | None,
    created: int,
    currency: str = "usd",
    reporting_category: str | None = None,
    fee_type: str = "stripe_fee",
    description: str | None = None,
    exchange_rate: Any = None,
) -> dict[str, Any]:
    return {
        "id": txn_id,
        "object": "balance_transaction",
        "amount": amount,
        "available_on": created + 2 * 86400,
        "balance_type": "payments",
        "created": created,
        "currency": currency,
        "description": description,
        "exchange_rate": exchange_rate,
        "fee": fee,
        "fee_details": (
            [
                {
                    "amount": fee,
                    "application": None,
                    "currency": currency,
                    "description": "Stripe processing fees",
                    "type": fee_type,
                }
            ]
            if fee
            else []
        ),
        "net": amount - fee,
        "reporting_category": reporting_category or type,
        "source": source,
        "status": "available",
        "type": type,
    }


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


def payout_list(payout_id: str, transactions: list[dict[str, Any]]) -> dict[str, Any]:
    """The list answer of `GET /v1/balance_transactions?payout=po_…` as the double serves it."""
    return {
        "object": "list",
        "url": f"/v1/balance_transactions?payout={payout_id}",
        "has_more": False,
        "data": transactions,
    }


@contextmanager
def serving(*documents: Any) -> Iterator[tuple[StripeDouble, StripeApiReader]]:
    """A started double holding `documents` and a reader pointed at it (short timeout)."""
    double = StripeDouble(objects=())
    for document in documents:
        double.add(document)
    with double:
        yield double, StripeApiReader(double.url, lambda: TEST_KEY, timeout_seconds=2.0)
