#!/usr/bin/env python3
"""Builds the billing-sync CDK app: configuration from context, one stack, cdk-nag, synth."""

import os
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks, ServerlessChecks

from infra import BillingSyncConfig, BillingSyncStack

# Path metadata names each resource by its construct path, as `cdk synth` does: the compliance baseline's key.
app = cdk.App(
    outdir=os.environ.get("CDK_OUTDIR", str(Path(__file__).resolve().parent / "cdk.out")),
    context={"aws:cdk:enable-path-metadata": True},
)
BillingSyncStack(app, "BillingSync", config=BillingSyncConfig.from_context(app.node))
cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
cdk.Aspects.of(app).add(ServerlessChecks(verbose=True))
app.synth()
