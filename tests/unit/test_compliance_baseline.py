from __future__ import annotations

import json
from pathlib import Path

import pytest

from billing_sync_ops.compliance import (
    Accepted,
    ComplianceError,
    Finding,
    cfn_lint_findings,
    checkov_findings,
    compare,
    construct_paths,
    load_baseline,
)

QUEUE = "PostingPipeline/PostingQueue/Resource"
TEMPLATE = {
    "Resources": {
        "PostingPipelinePostingQueue62DBCEA5": {
            "Type": "AWS::SQS::Queue",
            "Metadata": {"aws:cdk:path": f"BillingSync/{QUEUE}"},
        },
        "PostingPipelinePostToErpFunctionDBD66020": {"Type": "AWS::Lambda::Function"},
    }
}


def finding(rule: str = "CKV_AWS_27", resource: str = QUEUE) -> Finding:
    return Finding(
        "checkov",
        rule,
        resource,
        "PostingPipelinePostingQueue62DBCEA5",
        "Ensure all data stored in the SQS queue is encrypted",
    )


def test_a_finding_no_entry_accepts_is_new():
    # GIVEN a baseline accepting a different rule on the same queue
    baseline = [Accepted("checkov", "CKV_AWS_999", QUEUE, "accepted for a reason long enough to read")]

    # WHEN the tools report an unencrypted queue
    comparison = compare([finding()], baseline)

    # THEN it is new and the unused entry is stale: the check fails both ways
    assert comparison.new == [finding()]
    assert comparison.stale == baseline
    assert not comparison.passed


def test_an_entry_accepts_by_tool_rule_and_construct_path_glob():
    baseline = [Accepted("checkov", "CKV_AWS_117", "*Function/Resource", "functions call only AWS APIs; no VPC data")]
    findings = [finding("CKV_AWS_117", "PostingPipeline/PostToErpFunction/Resource"), finding("CKV_AWS_117", QUEUE)]

    comparison = compare(findings, baseline)

    assert comparison.accepted == 1
    assert [each.resource for each in comparison.new] == [QUEUE]
    assert comparison.stale == []


def test_the_same_rule_from_the_other_tool_is_not_accepted():
    baseline = [Accepted("cfn-lint", "CKV_AWS_27", QUEUE, "a reason that is long enough to be read")]

    assert compare([finding()], baseline).new == [finding()]


def test_construct_paths_come_from_metadata_or_the_logical_id_without_its_hash():
    paths = construct_paths(TEMPLATE)

    assert paths["PostingPipelinePostingQueue62DBCEA5"] == QUEUE
    assert paths["PostingPipelinePostToErpFunctionDBD66020"] == "PostingPipelinePostToErpFunction"


def test_tool_reports_are_read_into_findings_named_by_construct_path():
    paths = construct_paths(TEMPLATE)
    checkov_report = {
        "check_type": "cloudformation",
        "results": {
            "failed_checks": [
                {
                    "check_id": "CKV_AWS_27",
                    "check_name": "Ensure all data stored in the SQS queue is encrypted",
                    "resource": "AWS::SQS::Queue.PostingPipelinePostingQueue62DBCEA5",
                }
            ]
        },
    }
    cfn_lint_report = [
        {
            "Location": {"Path": ["Resources", "PostingPipelinePostToErpFunctionDBD66020", "Properties"]},
            "Message": "Lambda function should have Tracing property set to 'Active'.",
            "Rule": {"Id": "WS1000"},
        }
    ]

    assert [(f.tool, f.rule, f.resource) for f in checkov_findings(checkov_report, paths)] == [
        ("checkov", "CKV_AWS_27", QUEUE)
    ]
    assert [(f.tool, f.rule, f.resource) for f in cfn_lint_findings(cfn_lint_report, paths)] == [
        ("cfn-lint", "WS1000", "PostingPipelinePostToErpFunction")
    ]


@pytest.mark.parametrize(
    "entry",
    [
        {"tool": "checkov", "rule": "CKV_AWS_27", "resource": QUEUE, "reason": "ok"},
        {"tool": "tfsec", "rule": "CKV_AWS_27", "resource": QUEUE, "reason": "a reason that is long enough to be read"},
        {"tool": "checkov", "rule": "CKV_AWS_27", "reason": "a reason that is long enough to be read"},
    ],
)
def test_a_baseline_entry_without_a_reason_tool_or_resource_is_refused(tmp_path: Path, entry: dict):
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps({"accepted": [entry]}))

    with pytest.raises(ComplianceError):
        load_baseline(path)


def test_the_committed_baseline_is_well_formed():
    entries = load_baseline()

    assert len({(e.tool, e.rule, e.resource) for e in entries}) == len(entries), "duplicate baseline entries"
