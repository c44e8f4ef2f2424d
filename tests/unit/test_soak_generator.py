"""The soak's generated streams are coherent to the minor unit: what each payout settles is in the stream."""

from __future__ import annotations

import random

from billing_sync.sources.stripe.normaliser import HANDLED_EVENT_TYPES
from billing_sync_ops.soak_generator import GeneratedStream, StripeStreamGenerator
from billing_sync_ops.stripe_objects import card_fee


def _stream(events: int = 2000) -> GeneratedStream:
    return StripeStreamGenerator(random.Random(20261127)).stream(events)


def test_every_payout_nets_what_it_settles_and_each_settled_transaction_is_a_generated_payment_or_refund() -> None:
    # GIVEN a generated stream and the API objects served beside it
    stream = _stream()
    payments = {
        event["data"]["object"]["payment"]["payment_intent"]: event["data"]["object"]["amount_paid"]
        for event in stream.events
        if event["type"] == "invoice_payment.paid"
    }
    refunds = {
        event["data"]["object"]["id"]: event["data"]["object"]
        for event in stream.events
        if event["type"] in ("refund.created", "refund.updated")
    }
    charges = {item["id"]: item for item in stream.api_objects if item.get("object") == "charge"}
    payouts = {
        event["data"]["object"]["id"]: event["data"]["object"]
        for event in stream.events
        if event["type"] == "payout.paid"
    }
    listed = [item for item in stream.api_objects if item.get("object") == "list"]
    # WHEN each payout's balance transactions are read
    # THEN they net to the payout, and each charge and refund they settle is one the stream pays or refunds
    assert len(listed) == len(payouts) > 5
    settled_sources: list[str] = []
    for answer in listed:
        payout_id = answer["url"].rsplit("=", 1)[1]
        own, *settled = answer["data"]
        assert own["type"] == "payout" and own["source"] == payout_id
        assert sum(txn["net"] for txn in settled) == payouts[payout_id]["amount"] == -own["amount"]
        for txn in settled:
            settled_sources.append(txn["source"])
            if txn["type"] == "charge":
                charge = charges[txn["source"]]
                assert payments[charge["payment_intent"]] == charge["amount"] == txn["amount"]
                assert txn["fee"] == card_fee(txn["amount"]) and txn["net"] == txn["amount"] - txn["fee"]
            else:
                assert txn["type"] == "refund" and refunds[txn["source"]]["status"] == "succeeded"
                assert -txn["amount"] == refunds[txn["source"]]["amount"]
    assert len(settled_sources) == len(set(settled_sources))  # nothing is paid out twice


def test_a_stream_holds_every_event_type_billing_sync_handles_in_three_currencies() -> None:
    # GIVEN a stream of the short soak's size
    stream = _stream(300)
    # WHEN its kinds and currencies are read
    currencies = {
        event["data"]["object"]["currency"] for event in stream.events if event["type"] == "invoice.finalized"
    }
    # THEN every handled type is there, and invoices are in USD, EUR and JPY
    assert set(HANDLED_EVENT_TYPES) <= set(stream.kinds())
    assert currencies == {"usd", "eur", "jpy"}
    assert len(stream.events) == 300
