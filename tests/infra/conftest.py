from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Annotations, Template
from cdk_nag import AwsSolutionsChecks, ServerlessChecks

from infra import BillingSyncConfig, BillingSyncStack

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

PARTNER_BUS_NAME = "aws.partner/stripe.com/ed_test_billing_sync"


@dataclass(frozen=True)
class SynthesisedStack:
    stack: BillingSyncStack
    template: Template
    annotations: Annotations
    outdir: Path

    def resources(self, resource_type: str) -> dict[str, dict]:
        return self.template.find_resources(resource_type)

    def resource(self, logical_id: str) -> dict:
        return self.template.to_json()["Resources"][logical_id]


def synthesise(outdir: Path, context: dict[str, object]) -> SynthesisedStack:
    # Path metadata names each resource by its construct path, as `cdk synth` does: the compliance baseline's key.
    app = cdk.App(
        outdir=str(outdir),
        context={"aws:cdk:enable-asset-metadata": True, "aws:cdk:enable-path-metadata": True, **context},
    )
    stack = BillingSyncStack(app, "BillingSync", config=BillingSyncConfig.from_context(app.node))
    cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    cdk.Aspects.of(app).add(ServerlessChecks(verbose=True))
    template = Template.from_stack(stack)
    return SynthesisedStack(stack, template, Annotations.from_stack(stack), outdir)


@pytest.fixture(scope="session")
def synthesised(tmp_path_factory: pytest.TempPathFactory) -> SynthesisedStack:
    return synthesise(tmp_path_factory.mktemp("cdk-out"), {})


@pytest.fixture(scope="session")
def synthesised_with_partner_bus(tmp_path_factory: pytest.TempPathFactory) -> SynthesisedStack:
    return synthesise(tmp_path_factory.mktemp("cdk-out-partner"), {"stripePartnerEventBusName": PARTNER_BUS_NAME})


ALARM_EMAIL = "finance-ops@example.com"


@pytest.fixture(scope="session")
def synthesised_with_alarm_email(tmp_path_factory: pytest.TempPathFactory) -> SynthesisedStack:
    return synthesise(tmp_path_factory.mktemp("cdk-out-alarm-email"), {"alarmEmail": ALARM_EMAIL})
