"""The committed JSON Schema artefacts are the published contract of the canonical events."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from billing_sync.domain.events import EVENT_MODELS, SCHEMA_VERSION, EventType
from billing_sync.sources.stripe import StripeNormaliser
from billing_sync_ops import schemas
from tests.builders import load_event

# The v1 list in the design brief ("Canonical finance events (v1)").
DESIGN_V1_EVENT_TYPES = {
    "customer.upserted",
    "subscription.created",
    "subscription.amended",
    "subscription.renewed",
    "subscription.cancelled",
    "usage.rated",
    "invoice.issued",
    "invoice.voided",
    "invoice.written_off",
    "payment.settled",
    "payment.failed",
    "credit_note.issued",
    "refund.issued",
    "product.upserted",
    "price.upserted",
    "payout.paid",
    "dispute.created",
    "dispute.closed",
}
# Beyond the brief: `invoice.paid` (from API version basil on, a completeness check of the payments booked).
# Beyond it too: `payout.failed` (a payout the bank returned: its deposit is reversed).
V1_EVENT_TYPES = DESIGN_V1_EVENT_TYPES | {"invoice.paid", "payout.failed"}

REGENERATE = "run `make schemas` and commit schemas/; bump SCHEMA_VERSION (domain/events.py) for an incompatible change"


def test_committed_artefacts_match_the_models():
    # GIVEN the models and the artefacts committed under schemas/
    directory = schemas.schema_dir()

    # WHEN the artefacts the models imply are compared with the committed ones
    stale = schemas.stale_artefacts(directory)

    # THEN none differs
    assert stale == [], f"schema artefacts out of date for {stale}: {REGENERATE}"


def test_index_names_every_type_and_the_current_schema_version():
    # GIVEN the committed index
    index = json.loads((schemas.schema_dir() / "index.json").read_text(encoding="utf-8"))

    # THEN it lists exactly the declared types under the version the envelopes carry
    assert index["schema_version"] == SCHEMA_VERSION, REGENERATE
    assert index["event_types"] == sorted(t.value for t in EVENT_MODELS)


def test_every_design_event_type_is_declared_with_a_model():
    # GIVEN the canonical v1 types of the design brief
    # WHEN compared with the enum and the model registry
    declared = {t.value for t in EventType}
    modelled = {t.value for t in EVENT_MODELS}

    # THEN each is declared and modelled, and nothing else is
    assert declared == V1_EVENT_TYPES
    assert modelled == V1_EVENT_TYPES


@pytest.mark.parametrize("event_type", sorted(V1_EVENT_TYPES))
def test_each_artefact_pins_its_event_type_and_schema_version(event_type):
    # GIVEN the committed artefact of one type
    schema = json.loads((schemas.schema_dir() / f"{event_type}.json").read_text(encoding="utf-8"))

    # THEN it describes exactly that type and version, and forbids unknown fields
    properties = schema["properties"]
    assert properties["event_type"]["const"] == event_type
    assert properties["schema_version"]["const"] == SCHEMA_VERSION
    assert schema["additionalProperties"] is False
    assert {"event_id", "source", "source_event_id", "occurred_at", "legal_entity", "data"} <= set(schema["required"])


def test_check_mode_lists_the_types_whose_artefact_differs(tmp_path, capsys):
    # GIVEN freshly generated artefacts, one of them edited by hand and one deleted
    directory = schemas.schema_dir(tmp_path)
    schemas.write_artefacts(directory)
    edited = directory / "invoice.issued.json"
    edited.write_text(edited.read_text(encoding="utf-8").replace('"Amount Due"', '"Amount Owed"'), encoding="utf-8")
    (directory / "refund.issued.json").unlink()

    # WHEN the check runs
    exit_code = schemas.main(["--check", "--root", str(tmp_path)])

    # THEN it fails naming exactly those types and says how to fix it
    assert exit_code == 1
    err = capsys.readouterr().err
    assert "invoice.issued, refund.issued" in err
    assert "payment.settled" not in err
    assert "make schemas" in err
    assert "SCHEMA_VERSION" in err


def test_generation_is_deterministic_and_check_passes_on_its_output(tmp_path):
    # GIVEN artefacts written twice
    directory = schemas.schema_dir(tmp_path)
    first = {p.name: p.read_text(encoding="utf-8") for p in schemas.write_artefacts(directory)}
    second = {p.name: p.read_text(encoding="utf-8") for p in schemas.write_artefacts(directory)}

    # THEN the bytes are identical, end in a newline, and the check accepts them
    assert first == second
    assert len(first) == len(V1_EVENT_TYPES) + 1
    assert all(text.endswith("}\n") for text in first.values())
    assert schemas.main(["--check", "--root", str(tmp_path)]) == 0


@pytest.mark.parametrize(
    ("sample", "event_type"),
    [
        ("stripe_invoice_finalized", "invoice.issued"),
        ("stripe_invoice_finalized_jpy", "invoice.issued"),
        ("stripe_invoice_paid", "invoice.paid"),
        ("stripe_invoice_payment_paid", "payment.settled"),
        ("stripe_charge_succeeded", "payment.settled"),
        ("stripe_credit_note_created_post_payment", "credit_note.issued"),
        ("stripe_price_created", "price.upserted"),
        ("stripe_customer_created", "customer.upserted"),
    ],
)
def test_a_normalised_sample_validates_against_its_artefact(sample, event_type):
    jsonschema = pytest.importorskip("jsonschema")
    # GIVEN a canonical event normalised from a Stripe sample
    event = StripeNormaliser(default_legal_entity="US01").normalise(
        load_event(sample), received_at=datetime(2026, 11, 1, 12, tzinfo=UTC), raw_ref=f"raw/stripe/{sample}.json"
    )
    schema = json.loads((schemas.schema_dir() / f"{event_type}.json").read_text(encoding="utf-8"))

    # WHEN its JSON form is validated against the committed artefact
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(event.model_dump(mode="json")))

    # THEN it conforms, and a stray field is refused
    assert event.event_type == event_type
    assert errors == []
    assert not jsonschema.Draft202012Validator(schema).is_valid({**event.model_dump(mode="json"), "extra": 1})
