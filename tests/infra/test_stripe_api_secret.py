"""The Stripe API's restricted key: a retained secret, read by the two posting functions only, named by env."""

from __future__ import annotations

import json

import pytest

from tests.infra.conftest import SynthesisedStack
from tests.infra.test_stack import function_by_module, role_logical_id

pytestmark = pytest.mark.infra

POSTING_MODULES = ("post_to_erp", "sweep_waiting_room")
# Reconciliation reads Stripe's list API (invoices, payments, credit notes, refunds) for the billing side.
KEY_READER_MODULES = (*POSTING_MODULES, "reconcile")


def stripe_api_key_id(synthesised: SynthesisedStack) -> str:
    [logical_id] = [
        logical_id
        for logical_id in synthesised.resources("AWS::SecretsManager::Secret")
        if "StripeApiRestrictedKey" in logical_id
    ]
    return logical_id


def secret_grants(synthesised: SynthesisedStack, module: str) -> list[str]:
    """The secrets (as template JSON) the function's role may read."""
    role_id = role_logical_id(function_by_module(synthesised, module)[1])
    resources = []
    for policy in synthesised.resources("AWS::IAM::Policy").values():
        if {"Ref": role_id} not in policy["Properties"]["Roles"]:
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            if any(action.startswith("secretsmanager:") for action in actions):
                resources.append(json.dumps(statement["Resource"]))
    return resources


def test_the_restricted_key_is_a_retained_placeholder_secret(synthesised):
    # GIVEN the synthesised stack
    secret = synthesised.resource(stripe_api_key_id(synthesised))

    # THEN it holds a placeholder the operator replaces, and survives stack deletion
    assert secret["DeletionPolicy"] == "Retain"
    assert "rk_placeholder_" in json.dumps(secret["Properties"]["SecretString"])


@pytest.mark.parametrize("module", POSTING_MODULES)
def test_the_posting_functions_know_the_key_and_the_api_base(synthesised, module):
    variables = function_by_module(synthesised, module)[1]["Properties"]["Environment"]["Variables"]

    assert variables["STRIPE_API_KEY_SECRET_ARN"] == {"Ref": stripe_api_key_id(synthesised)}
    assert variables["STRIPE_API_BASE"] == "https://api.stripe.com"


@pytest.mark.parametrize("module", POSTING_MODULES)
def test_the_posting_functions_read_the_restricted_key_and_no_other_secret(synthesised, module):
    grants = secret_grants(synthesised, module)

    assert grants and all(stripe_api_key_id(synthesised) in grant for grant in grants)


def test_no_other_function_reads_or_names_the_restricted_key(synthesised):
    key_id = stripe_api_key_id(synthesised)
    for logical_id, function in synthesised.resources("AWS::Lambda::Function").items():
        handler = function["Properties"]["Handler"]
        if any(f".{module}." in handler for module in KEY_READER_MODULES):
            continue
        module = handler.split(".")[2]
        assert not any(key_id in grant for grant in secret_grants(synthesised, module)), logical_id
        assert key_id not in json.dumps(function["Properties"].get("Environment", {})), logical_id
