"""The synthesised stack against cdk-nag's Serverless pack and against checkov and cfn-lint's serverless
rules, with infra/compliance/baseline.json holding the accepted findings and their reasons."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk.assertions import Match

from billing_sync_ops.compliance import Finding, compare, load_baseline, run_tools
from tests.infra.conftest import SynthesisedStack

pytestmark = pytest.mark.infra

STACK_FIXTURES = ("synthesised", "synthesised_with_partner_bus", "synthesised_with_alarm_email")


def template_file(synthesised: SynthesisedStack, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.template.json"
    path.write_text(json.dumps(synthesised.template.to_json()))
    return path


@pytest.mark.parametrize("stack_fixture", STACK_FIXTURES)
def test_no_unsuppressed_serverless_pack_findings(stack_fixture, request):
    annotations = request.getfixturevalue(stack_fixture).annotations

    errors = annotations.find_error("*", Match.string_like_regexp("Serverless-.*"))
    warnings = annotations.find_warning("*", Match.string_like_regexp("Serverless-.*"))

    assert errors == [], [f"{m.id}: {m.entry.data}" for m in errors]
    assert warnings == [], [f"{m.id}: {m.entry.data}" for m in warnings]


def test_checkov_and_cfn_lint_find_nothing_outside_the_baseline(
    synthesised, synthesised_with_partner_bus, tmp_path: Path
):
    # GIVEN the default stack and the one with the partner bus (the baseline covers both)
    findings: list[Finding] = []
    for name, stack in (("default", synthesised), ("partner", synthesised_with_partner_bus)):
        findings += run_tools(template_file(stack, tmp_path, name))

    # WHEN they are compared with the committed baseline
    comparison = compare(findings, load_baseline())

    # THEN nothing is new and every accepted finding still exists
    assert comparison.new == [], "\n".join(f"{f.tool} {f.rule} {f.resource}: {f.message}" for f in comparison.new)
    assert comparison.stale == [], "\n".join(f"{e.tool} {e.rule} {e.resource}" for e in comparison.stale)
    assert comparison.accepted > 0


def test_the_tools_catch_an_unencrypted_queue(tmp_path: Path):
    # GIVEN a template with a queue left on no encryption at all
    template = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Resources": {
            "PostingQueue": {
                "Type": "AWS::SQS::Queue",
                "Properties": {"SqsManagedSseEnabled": False},
                "Metadata": {"aws:cdk:path": "BillingSync/PostingPipeline/PostingQueue/Resource"},
            }
        },
    }
    path = tmp_path / "unencrypted.template.json"
    path.write_text(json.dumps(template))

    # WHEN the tools run against the committed baseline
    comparison = compare(run_tools(path), load_baseline())

    # THEN the unencrypted queue is a new finding
    assert ("checkov", "CKV_AWS_27", "PostingPipeline/PostingQueue/Resource") in {
        (f.tool, f.rule, f.resource) for f in comparison.new
    }
