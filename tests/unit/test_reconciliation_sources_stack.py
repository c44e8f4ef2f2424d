"""`billing-sync reconcile --stack-name`: the Stripe key comes from the stack's secret, found by its output or
among the stack's resources; a stack without one is a target error, never a call to Stripe without a key."""

from __future__ import annotations

from typing import Any

import pytest

from billing_sync_ops.ops.reconcile import _stack_stripe_key
from billing_sync_ops.ops.target import Target, TargetNotFoundError

SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:PostingStripeApiRestrictedKey-AbC123"


class Clients:
    """boto3 clients of one session, as stubs that answer what reconcile asks and record the calls."""

    def __init__(self, resources: list[dict[str, str]]) -> None:
        self.resources = resources
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def client(self, service: str, endpoint_url: str | None = None) -> Any:
        clients = self

        class Stub:
            def describe_stack_resources(self, **kwargs: Any) -> dict[str, Any]:
                clients.calls.append((f"{service}.describe_stack_resources", kwargs))
                return {"StackResources": clients.resources}

            def get_secret_value(self, **kwargs: Any) -> dict[str, Any]:
                clients.calls.append((f"{service}.get_secret_value", kwargs))
                return {"SecretString": " rk_live_restricted \n"}

        return Stub()


def stack(outputs: dict[str, str], resources: list[dict[str, str]]) -> tuple[Target, Clients]:
    session = Clients(resources)
    return Target("stack billing (eu-west-1)", False, outputs, "eu-west-1", session=session), session


SECRET_RESOURCE = {
    "LogicalResourceId": "PostingPipelineStripeApiRestrictedKeyB1E2C3D4",
    "ResourceType": "AWS::SecretsManager::Secret",
    "PhysicalResourceId": SECRET_ARN,
}


def test_the_key_is_read_from_the_secret_among_the_stacks_resources_once() -> None:
    # GIVEN a stack whose outputs do not name the key's secret, but whose resources hold it
    target, clients = stack({}, [{"LogicalResourceId": "Other", "ResourceType": "AWS::SQS::Queue"}, SECRET_RESOURCE])

    # WHEN the key is asked for twice
    key = _stack_stripe_key(target, "billing")
    first, second = key(), key()

    # THEN it is the secret's value, stripped, read once from that secret
    assert first == second == "rk_live_restricted"
    assert clients.calls == [
        ("cloudformation.describe_stack_resources", {"StackName": "billing"}),
        ("secretsmanager.get_secret_value", {"SecretId": SECRET_ARN}),
    ]


def test_an_output_naming_the_secret_wins() -> None:
    # GIVEN a stack output naming the secret
    target, clients = stack({"StripeApiKeySecretArn": "arn:named"}, [SECRET_RESOURCE])

    # WHEN the key is read  THEN that secret is read, without listing the stack's resources
    assert _stack_stripe_key(target, "billing")() == "rk_live_restricted"
    assert clients.calls == [("secretsmanager.get_secret_value", {"SecretId": "arn:named"})]


def test_a_stack_without_the_secret_is_a_target_error() -> None:
    # GIVEN a stack with no Stripe API key secret  WHEN the key is asked for  THEN the target is refused
    target, _ = stack({}, [{"LogicalResourceId": "Other", "ResourceType": "AWS::SQS::Queue"}])
    with pytest.raises(TargetNotFoundError, match="Stripe API key secret"):
        _stack_stripe_key(target, "billing")
