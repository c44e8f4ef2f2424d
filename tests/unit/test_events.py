"""Canonical events: deterministic identity, strict envelopes, one discriminated union."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing_sync.domain.events import (
    EVENT_MODELS,
    FINANCE_EVENT,
    SCHEMA_VERSION,
    CustomerUpsertedEvent,
    EventType,
    InvoiceIssuedEvent,
    InvoicePaidEvent,
    PaymentSettledEvent,
    derive_event_id,
)
from billing_sync.sources.stripe import StripeNormaliser
from tests.builders import load_event

RECEIVED_AT = datetime(2026, 11, 1, 1, 0, 5, tzinfo=UTC)
source_names = st.sampled_from(["stripe", "chargebee", "recurly"])
source_event_ids = st.text(alphabet=st.characters(codec="ascii", categories=["L", "N"]), min_size=1, max_size=40)


def canonical_json(sample: str) -> dict[str, Any]:
    """The JSON form of the canonical event normalised from ``events/<sample>.json``."""
    event = StripeNormaliser(default_legal_entity="US01").normalise(
        load_event(sample), received_at=RECEIVED_AT, raw_ref=f"raw/stripe/{sample}.json"
    )
    assert event is not None
    return event.model_dump(mode="json")


def test_derive_event_id_is_a_stable_uuid_for_one_source_event():
    # GIVEN the id of the USD invoice sample
    source_event_id = load_event("stripe_invoice_finalized")["id"]

    # WHEN it is derived twice
    first, second = derive_event_id("stripe", source_event_id), derive_event_id("stripe", source_event_id)

    # THEN the same UUIDv5 comes back
    assert first == second
    assert uuid.UUID(first).version == 5


@given(source_names, source_names, source_event_ids)
def test_derive_event_id_is_qualified_by_source(source_a, source_b, source_event_id):
    # WHEN / THEN the same source event id from two sources gives two canonical ids
    same = derive_event_id(source_a, source_event_id) == derive_event_id(source_b, source_event_id)
    assert same == (source_a == source_b)


@given(source_event_ids, source_event_ids)
def test_derive_event_id_distinguishes_source_events(first, second):
    # WHEN / THEN
    assert (derive_event_id("stripe", first) == derive_event_id("stripe", second)) == (first == second)


def test_the_envelope_carries_schema_version_and_the_derived_id():
    # GIVEN / WHEN
    event = FINANCE_EVENT.validate_python(canonical_json("stripe_invoice_finalized"))

    # THEN
    assert event.schema_version == SCHEMA_VERSION == "1.1"
    assert event.event_id == derive_event_id("stripe", "evt_1QH6KZNx4RkL2mQemUSGRWS1")


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param({"event_id": str(uuid.uuid4())}, id="random-id"),
        pytest.param({"event_id": derive_event_id("chargebee", "evt_1QH6KZNx4RkL2mQemUSGRWS1")}, id="other-source"),
        pytest.param({"source_event_id": "evt_1QfN1UNx4RkL2mQew0eZo5Ib"}, id="other-source-event"),
        pytest.param({"source": "chargebee"}, id="source-changed"),
    ],
)
def test_the_envelope_refuses_an_event_id_not_derived_from_source_and_source_event_id(tamper):
    # GIVEN a canonical invoice whose identity fields disagree
    data = {**canonical_json("stripe_invoice_finalized"), **tamper}

    # WHEN / THEN
    with pytest.raises(pydantic.ValidationError, match="is not derived from"):
        InvoiceIssuedEvent.model_validate(data)


@pytest.mark.parametrize(
    ("where", "path"),
    [("envelope", ()), ("payload", ("data",)), ("invoice line", ("data", "lines", 0))],
)
def test_extra_fields_are_forbidden(where, path):
    # GIVEN a canonical invoice with an unknown field at some depth
    data = canonical_json("stripe_invoice_finalized")
    target = data
    for step in path:
        target = target[step]
    target["surprise"] = True

    # WHEN / THEN
    with pytest.raises(pydantic.ValidationError, match="surprise") as caught:
        FINANCE_EVENT.validate_python(data)
    assert caught.value.errors()[0]["type"] == "extra_forbidden", where


def test_an_unsupported_schema_version_is_refused():
    # GIVEN
    data = {**canonical_json("stripe_invoice_finalized"), "schema_version": "2.0"}

    # WHEN / THEN
    with pytest.raises(pydantic.ValidationError, match="schema_version"):
        FINANCE_EVENT.validate_python(data)


def test_a_naive_timestamp_is_refused():
    # GIVEN an occurred_at without a time zone
    data = {**canonical_json("stripe_invoice_finalized"), "occurred_at": "2026-11-01T01:00:00"}

    # WHEN / THEN
    with pytest.raises(pydantic.ValidationError, match="occurred_at"):
        FINANCE_EVENT.validate_python(data)


@pytest.mark.parametrize(
    ("sample", "model"),
    [
        ("stripe_invoice_finalized", InvoiceIssuedEvent),
        ("stripe_invoice_paid", InvoicePaidEvent),
        ("stripe_invoice_payment_paid", PaymentSettledEvent),
        ("stripe_customer_created", CustomerUpsertedEvent),
    ],
)
def test_finance_event_discriminates_by_event_type(sample, model):
    # GIVEN the JSON of a canonical event
    data = canonical_json(sample)

    # WHEN it is read back through the union
    event = FINANCE_EVENT.validate_python(data)

    # THEN the model named by event_type is chosen and the round trip is lossless
    assert type(event) is model
    assert EVENT_MODELS[EventType(data["event_type"])] is model
    assert event.model_dump(mode="json") == data


def test_finance_event_validates_the_payload_against_the_named_type_only():
    # GIVEN an invoice payload labelled as a payment
    data = {**canonical_json("stripe_invoice_finalized"), "event_type": "payment.settled"}

    # WHEN / THEN it is checked as a payment (and fails) rather than matched to the invoice model
    with pytest.raises(pydantic.ValidationError) as caught:
        FINANCE_EVENT.validate_python(data)
    assert {error["loc"][0] for error in caught.value.errors()} == {"payment.settled"}


def test_finance_event_refuses_an_unknown_event_type():
    # GIVEN
    data = {**canonical_json("stripe_invoice_finalized"), "event_type": "dispute.funds_withdrawn"}

    # WHEN / THEN
    with pytest.raises(pydantic.ValidationError) as caught:
        FINANCE_EVENT.validate_python(data)
    assert caught.value.errors()[0]["type"] == "union_tag_invalid"
