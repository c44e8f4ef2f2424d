"""Promise 4: only a correctly signed, fresh Stripe webhook gets past the signature check."""

from __future__ import annotations

import pytest

from billing_sync.domain.errors import (
    ExceptionCategory,
    InvalidSignatureError,
    MissingSignatureError,
    SignatureError,
)
from billing_sync.sources.stripe import SIGNATURE_TOLERANCE_SECONDS, verify_signature
from tests.builders import event_payload, load_event, sign_stripe_payload, sign_stripe_payload_multi

SECRET = "whsec_current_4eC39HqLyjWDarjtT1zdp7dc"
OLD_SECRET = "whsec_previous_Qp3c7R8mV2kN5xZt9bL1aW4e"
NOW = 1_793_494_900
BODY = event_payload(load_event("stripe_invoice_finalized"))


def test_a_valid_signature_passes():
    # GIVEN a body signed with the configured secret just now
    header = sign_stripe_payload(BODY, SECRET, NOW)

    # WHEN / THEN no error is raised
    assert verify_signature(BODY, header, [SECRET], now=NOW) is None


@pytest.mark.parametrize("configured", [[SECRET], [OLD_SECRET], [OLD_SECRET, SECRET]], ids=["new", "old", "both"])
def test_during_rotation_either_secret_alone_verifies_the_two_v1_header(configured):
    # GIVEN a header with one v1 per secret (and a v0 decoy), as Stripe sends while a secret is rolled
    header = sign_stripe_payload_multi(BODY, [OLD_SECRET, SECRET], NOW)
    assert header.count("v1=") == 2

    # WHEN / THEN
    assert verify_signature(BODY, header, configured, now=NOW) is None


def test_a_rotation_header_does_not_verify_with_an_unrelated_secret():
    # GIVEN
    header = sign_stripe_payload_multi(BODY, [OLD_SECRET, SECRET], NOW)

    # WHEN / THEN
    with pytest.raises(InvalidSignatureError, match="no v1 signature matches"):
        verify_signature(BODY, header, ["whsec_someone_else"], now=NOW)


@pytest.mark.parametrize(
    "tampered",
    [
        pytest.param(BODY.replace(b'"amount_due":41623', b'"amount_due":1'), id="amount-changed"),
        pytest.param(BODY + b" ", id="trailing-space"),
        pytest.param(BODY[:-1], id="truncated"),
    ],
)
def test_a_tampered_body_is_refused(tampered):
    # GIVEN a header for the original body
    assert tampered != BODY
    header = sign_stripe_payload(BODY, SECRET, NOW)

    # WHEN / THEN
    with pytest.raises(InvalidSignatureError, match="no v1 signature matches"):
        verify_signature(tampered, header, [SECRET], now=NOW)


@pytest.mark.parametrize("skew", [-(SIGNATURE_TOLERANCE_SECONDS + 1), SIGNATURE_TOLERANCE_SECONDS + 1, -86_400])
def test_a_stale_or_future_timestamp_is_refused(skew):
    # GIVEN a correct signature made at now + skew (301 s in the past, 301 s in the future, a day old)
    header = sign_stripe_payload(BODY, SECRET, NOW + skew)

    # WHEN / THEN
    with pytest.raises(InvalidSignatureError, match="outside ±300 s"):
        verify_signature(BODY, header, [SECRET], now=NOW)


@pytest.mark.parametrize("skew", [-SIGNATURE_TOLERANCE_SECONDS, SIGNATURE_TOLERANCE_SECONDS])
def test_a_timestamp_exactly_at_the_tolerance_passes(skew):
    # GIVEN a signature made exactly 300 s before or after now
    assert SIGNATURE_TOLERANCE_SECONDS == 300
    header = sign_stripe_payload(BODY, SECRET, NOW + skew)

    # WHEN / THEN
    assert verify_signature(BODY, header, [SECRET], now=NOW) is None


@pytest.mark.parametrize("header", [None, "", "   "], ids=["none", "empty", "blank"])
def test_a_missing_header_is_refused_as_missing(header):
    # WHEN / THEN
    with pytest.raises(MissingSignatureError) as caught:
        verify_signature(BODY, header, [SECRET], now=NOW)
    assert caught.value.category is ExceptionCategory.SIGNATURE


def test_a_header_with_only_a_v0_signature_is_refused():
    # GIVEN a header whose only signature is the legacy v0 scheme (even one computed with the real secret)
    v1_header = sign_stripe_payload(BODY, SECRET, NOW)
    header = v1_header.replace("v1=", "v0=")

    # WHEN / THEN
    with pytest.raises(InvalidSignatureError, match="no timestamp or no v1 signature"):
        verify_signature(BODY, header, [SECRET], now=NOW)


def test_the_v0_decoy_of_a_rotation_header_is_never_taken_as_v1():
    # GIVEN a rotation header with its v1 entries removed
    header = sign_stripe_payload_multi(BODY, [OLD_SECRET, SECRET], NOW)
    only_v0 = ",".join(part for part in header.split(",") if not part.startswith("v1="))
    assert "v0=" in only_v0

    # WHEN / THEN
    with pytest.raises(InvalidSignatureError):
        verify_signature(BODY, only_v0, [OLD_SECRET, SECRET], now=NOW)


def test_a_signature_made_with_the_wrong_secret_is_refused():
    # GIVEN
    header = sign_stripe_payload(BODY, "whsec_attacker_guess", NOW)

    # WHEN / THEN
    with pytest.raises(InvalidSignatureError, match="no v1 signature matches") as caught:
        verify_signature(BODY, header, [SECRET], now=NOW)
    assert isinstance(caught.value, SignatureError)


@pytest.mark.parametrize(
    "header",
    [f"v1={'0' * 64}", f"t=yesterday,v1={'0' * 64}", f"t={NOW}", f"t={NOW},v1="],
    ids=["no-timestamp", "bad-timestamp", "no-v1", "empty-v1"],
)
def test_a_malformed_header_is_refused(header):
    # WHEN / THEN
    with pytest.raises(InvalidSignatureError):
        verify_signature(BODY, header, [SECRET], now=NOW)
