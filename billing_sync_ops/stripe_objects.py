"""Builders of Stripe API objects shaped like API 2025-10-29.clover (balance transactions, a payout's list of
them, US card fees): what the Stripe API double serves to the soak and to the tests of the API reader."""

from __future__ import annotations

from typing import Any


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


def payout_list(payout_id: str, transactions: list[dict[str, Any]]) -> dict[str, Any]:
    """The list answer of `GET /v1/balance_transactions?payout=po_…` as the double serves it."""
    return {
        "object": "list",
        "url": f"/v1/balance_transactions?payout={payout_id}",
        "has_more": False,
        "data": transactions,
    }
