"""The read-only Stripe API reader against the local Stripe double (loopback HTTP, no Stripe account)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing_sync.domain.errors import PermanentPostingError, RetryablePostingError
from billing_sync.sources.stripe import StripeNormaliser
from billing_sync.sources.stripe.api import (
    StripeApiAccessError,
    StripeApiReader,
    StripeApiResponseError,
    StripeApiUnavailableError,
)
from tests.builders import load_event
from tests.fakes.stripe_api import balance_transaction, card_fee, charge, payout, payout_list, serving, ts

CHARGE_AT = ts(2026, 11, 1, 1)
CHARGE_TXN = balance_transaction(
    "txn_3Q4SyiNx4RkL2mQe0nGc8Kzx",
    type="charge",
    amount=41623,
    fee=card_fee(41623),
    source="ch_3Q4SyiNx4RkL2mQerHzQjS0T",
    created=CHARGE_AT,
)
CHARGE = charge(
    "ch_3Q4SyiNx4RkL2mQerHzQjS0T",
    amount=41623,
    balance_transaction="txn_3Q4SyiNx4RkL2mQe0nGc8Kzx",
    payment_intent="pi_3Q4SyiNx4RkL2mQerHzQjS0T",
    created=CHARGE_AT,
    customer="cus_QfR7xKp2LmN9aT",
)


def test_a_balance_transaction_is_read_with_its_fee_details_and_its_charges_payment_intent():
    # GIVEN the double holds a card charge and its balance transaction
    with serving(CHARGE_TXN, CHARGE) as (_, reader):
        # WHEN the reader fetches the balance transaction
        found = reader.balance_transaction("txn_3Q4SyiNx4RkL2mQe0nGc8Kzx")

    # THEN amounts are integer cents in upper-case currency, and the expanded source names its payment intent
    assert found is not None
    assert (found.type, found.amount, found.fee, found.net, found.currency) == ("charge", 41623, 1237, 40386, "USD")
    assert found.fee_details == (("stripe_fee", 1237),)
    assert found.source == "ch_3Q4SyiNx4RkL2mQerHzQjS0T"
    assert found.payment_intent == "pi_3Q4SyiNx4RkL2mQerHzQjS0T"


def test_a_charges_balance_transaction_carries_the_charges_payment_intent():
    # GIVEN a charge and its balance transaction
    with serving(CHARGE_TXN, CHARGE) as (_, reader):
        # WHEN the reader looks up the charge's balance transaction
        found = reader.charge_balance_transaction("ch_3Q4SyiNx4RkL2mQerHzQjS0T")

    # THEN it is the charge's, with the charge's payment intent
    assert found is not None
    assert (found.id, found.payment_intent) == ("txn_3Q4SyiNx4RkL2mQe0nGc8Kzx", "pi_3Q4SyiNx4RkL2mQerHzQjS0T")


def test_an_unknown_object_is_none_not_an_error():
    # GIVEN a double that holds nothing
    with serving() as (_, reader):
        # WHEN unknown ids are read
        # THEN each is None (not there yet: the caller waits for it)
        assert reader.balance_transaction("txn_1NotThereYetXXXXXXXXXXX") is None
        assert reader.charge_balance_transaction("ch_1NotThereYetXXXXXXXXXXX") is None
        assert reader.payout_balance_transactions("po_1NotThereYetXXXXXXXXXXX") is None
        assert reader.invoice_lines("in_1NotThereYetXXXXXXXXXXX") is None


def test_a_payouts_balance_transactions_are_read_across_pages():
    # GIVEN a payout settling 250 charges and its own payout transaction (three pages of 100)
    charges = [
        balance_transaction(
            f"txn_1Page{i:04d}Nx4RkL2mQeXXXXX",
            type="charge",
            amount=1000 + i,
            fee=card_fee(1000 + i),
            source=f"ch_1Page{i:04d}Nx4RkL2mQeXXXXX",
            created=CHARGE_AT + i,
        )
        for i in range(250)
    ]
    net = sum(txn["net"] for txn in charges)
    own = balance_transaction(
        "txn_1PayoutOwnNx4RkL2mQeXXXX",
        type="payout",
        amount=-net,
        source="po_1PagedNx4RkL2mQeXXXXXXX",
        created=CHARGE_AT,
    )
    paid = payout("po_1PagedNx4RkL2mQeXXXXXXX", amount=net, arrival_date=CHARGE_AT, created=CHARGE_AT, txn=own["id"])
    with serving(paid, payout_list(paid["id"], [*charges, own])) as (double, reader):
        # WHEN the reader lists them
        found = reader.payout_balance_transactions("po_1PagedNx4RkL2mQeXXXXXXX")
        pages = [path for path in double.requests if path.startswith("/v1/balance_transactions?")]

    # THEN every one is read once, in order, over three requests continuing after the last id
    assert found is not None
    assert [txn.id for txn in found] == [txn["id"] for txn in [*charges, own]]
    assert sum(txn.net for txn in found) == 0
    assert len(pages) == 3
    assert "starting_after=txn_1Page0099Nx4RkL2mQeXXXXX" in pages[1]


def test_an_exchange_rate_is_a_decimal_read_from_the_number_text_and_a_float_amount_is_refused():
    # GIVEN a converted EUR charge (rate 1.08497) and a transaction whose amount is a float
    converted = balance_transaction(
        "txn_1FxNx4RkL2mQeXXXXXXXXXXX",
        type="charge",
        amount=78551,
        fee=card_fee(78551),
        source="ch_1FxNx4RkL2mQeXXXXXXXXXXX",
        created=CHARGE_AT,
        exchange_rate=Decimal("1.08497"),
    )
    broken = {**CHARGE_TXN, "id": "txn_1FloatNx4RkL2mQeXXXXXXXX", "amount": 416.23}
    with serving(converted, broken) as (_, reader):
        # WHEN both are read
        rate = reader.balance_transaction("txn_1FxNx4RkL2mQeXXXXXXXXXXX")
        # THEN the rate is exact, and the float is a response error, never coerced
        with pytest.raises(StripeApiResponseError, match="amount"):
            reader.balance_transaction("txn_1FloatNx4RkL2mQeXXXXXXXX")

    assert rate is not None and rate.exchange_rate == Decimal("1.08497")


def test_a_5xx_or_429_is_transient_and_the_next_try_succeeds():
    # GIVEN the API answers 503 once, then 429 once
    with serving(CHARGE_TXN) as (double, reader):
        double.fail_next(503)
        double.fail_next(429)

        # WHEN the reader asks three times
        with pytest.raises(StripeApiUnavailableError) as first:
            reader.balance_transaction(CHARGE_TXN["id"])
        with pytest.raises(StripeApiUnavailableError) as second:
            reader.balance_transaction(CHARGE_TXN["id"])
        third = reader.balance_transaction(CHARGE_TXN["id"])

    # THEN the failures are retryable, carry the status and request id, and the third read succeeds
    assert isinstance(first.value, RetryablePostingError) and first.value.retryable
    assert (first.value.status, second.value.status) == (503, 429)
    assert first.value.request_id is not None
    assert third is not None and third.amount == 41623


def test_an_unreachable_api_is_transient():
    # GIVEN nothing listens where the reader points (a port just closed)
    with serving() as (double, _):
        url = double.url
    reader = StripeApiReader(url, lambda: "rk_test_x", timeout_seconds=0.5)

    # WHEN it reads
    # THEN the failure is retryable
    with pytest.raises(StripeApiUnavailableError, match="unreachable"):
        reader.balance_transaction(CHARGE_TXN["id"])


@pytest.mark.parametrize("key", ["", "   "])
def test_a_missing_key_is_a_clear_permanent_error(key):
    # GIVEN a reader whose key provider returns no key
    with serving(CHARGE_TXN) as (double, _):
        reader = StripeApiReader(double.url, lambda: key, timeout_seconds=2.0)

        # WHEN it reads
        with pytest.raises(StripeApiAccessError) as error:
            reader.balance_transaction(CHARGE_TXN["id"])

    # THEN it is permanent and says what to check
    assert isinstance(error.value, PermanentPostingError)
    assert error.value.status == 401
    assert "restricted key" in error.value.reason


def test_the_posting_composition_reads_with_the_restricted_key_from_its_secret(monkeypatch):
    # GIVEN the posting function's environment names the key's secret and a (local) API base
    from aws_lambda_powertools.utilities import parameters

    from billing_sync import composition
    from billing_sync.composition.posting import stripe_reader

    fetched: list[str] = []

    def get_secret(name: str, **_: object) -> str:
        fetched.append(name)
        return "rk_test_51SyncReadOnlyBillingSync\n"

    monkeypatch.setattr(parameters, "get_secret", get_secret)
    with serving(CHARGE_TXN) as (double, _):
        for name, value in {
            "LINEAGE_TABLE_NAME": "lineage",
            "LEDGER_TABLE_NAME": "ledger",
            "MASTER_DATA_TABLE_NAME": "master-data",
            "EXCEPTION_QUEUE_URL": "https://sqs.invalid/exceptions",
            "WAITING_ROOM_TABLE_NAME": "waiting-room",
            "POSTING_QUEUE_URL": "https://sqs.invalid/posting",
            "STRIPE_API_KEY_SECRET_ARN": "arn:aws:secretsmanager:us-east-1:111122223333:secret:stripe-rk-AbCdEf",
            "STRIPE_API_BASE": double.url,
        }.items():
            monkeypatch.setenv(name, value)
        composition.reset()
        try:
            # WHEN the composed reader reads twice
            reader = stripe_reader()
            assert reader is not None
            first = reader.balance_transaction(CHARGE_TXN["id"])
            second = reader.balance_transaction(CHARGE_TXN["id"])
        finally:
            composition.reset()

    # THEN both reads succeed against the configured base with the secret's key
    assert first is not None and second is not None
    assert set(fetched) == {"arn:aws:secretsmanager:us-east-1:111122223333:secret:stripe-rk-AbCdEf"}


def test_a_truncated_invoices_lines_are_read_as_the_webhook_reads_them():
    # GIVEN Stripe's line list of the Acme invoice, as /v1/invoices/{id}/lines returns it
    payload = load_event("stripe_invoice_finalized")
    invoice = payload["data"]["object"]
    lines = {
        "object": "list",
        "url": f"/v1/invoices/{invoice['id']}/lines",
        "has_more": False,
        "data": invoice["lines"]["data"],
    }
    webhook = StripeNormaliser(default_legal_entity="US01").normalise(
        payload, received_at=datetime.fromtimestamp(payload["created"], UTC), raw_ref="s3://raw/in"
    )
    with serving(lines) as (_, reader):
        # WHEN the reader reads them as canonical lines
        found = reader.complete_invoice_lines(invoice["id"])
        missing = reader.complete_invoice_lines("in_1NotThereYetXXXXXXXXXXX")

    # THEN they are the lines the webhook carried, field for field; an unknown invoice is None
    assert found == webhook.data.lines
    assert missing is None
