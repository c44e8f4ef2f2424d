#!/usr/bin/env python3
"""Builds the billing-sync CDK app: configuration from context, one stack, cdk-nag, synth."""

import os
from pathlib import Path

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from infra import BillingSyncConfig, BillingSyncStack

app = cdk.App(outdir=os.environ.get("CDK_OUTDIR", str(Path(__file__).resolve().parent / "cdk.out")))
BillingSyncStack(app, "BillingSync", config=BillingSyncConfig.from_context(app.node))
cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
app.synth()
