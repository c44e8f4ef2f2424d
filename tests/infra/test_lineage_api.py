"""The lineage API in the deployed configuration: IAM-authorised GETs next to the open webhook, read-only grants."""

from __future__ import annotations

import json

import pytest

from tests.infra.conftest import SynthesisedStack
from tests.infra.test_refund_saga import as_list, statements_of_role
from tests.infra.test_stack import function_by_module, role_logical_id

pytestmark = pytest.mark.infra

MODULE = "lineage_api"


def resource_path(synthesised: SynthesisedStack, resource_id: object) -> str:
    parts: list[str] = []
    resources = synthesised.template.to_json()["Resources"]
    while isinstance(resource_id, dict) and "Ref" in resource_id:
        resource = resources[resource_id["Ref"]]["Properties"]
        parts.append(resource["PathPart"])
        resource_id = resource["ParentId"]
    return "/" + "/".join(reversed(parts))


def methods(synthesised: SynthesisedStack) -> dict[tuple[str, str], dict]:
    return {
        (m["Properties"]["HttpMethod"], resource_path(synthesised, m["Properties"]["ResourceId"])): m["Properties"]
        for m in synthesised.resources("AWS::ApiGateway::Method").values()
    }


def test_the_lineage_gets_require_sigv4_while_the_webhook_stays_open(synthesised):
    # GIVEN the REST API's methods by verb and path
    by_route = methods(synthesised)
    function_id, _ = function_by_module(synthesised, MODULE)

    # THEN both lineage routes are IAM-authorised Lambda proxies of the lineage function
    for route in (("GET", "/events/{event_id}/lineage"), ("GET", "/documents/{source}/{document_id}")):
        method = by_route[route]
        assert method["AuthorizationType"] == "AWS_IAM", route
        assert method["Integration"]["Type"] == "AWS_PROXY"
        assert function_id in json.dumps(method["Integration"]["Uri"])
    # AND no GET on the API is unauthenticated (never public)
    assert all(m["AuthorizationType"] == "AWS_IAM" for (verb, _), m in by_route.items() if verb == "GET")
    # AND the Stripe webhook stays open: Stripe signs with HMAC, not SigV4
    assert by_route[("POST", "/webhooks/stripe")]["AuthorizationType"] == "NONE"


def test_the_lineage_function_reads_and_never_writes(synthesised):
    # GIVEN the statements of the lineage function's role
    _, function = function_by_module(synthesised, MODULE)
    statements = statements_of_role(synthesised, role_logical_id(function))
    actions = {action for s in statements for action in as_list(s["Action"])}

    # THEN it may read DynamoDB and the reports, and write nothing anywhere
    assert "dynamodb:GetItem" in actions and "s3:GetObject*" in actions
    data_actions = {a for a in actions if a.split(":")[0] not in ("logs", "xray")}  # its own logs and traces
    writes = {a for a in data_actions if a.split(":")[1].startswith(("Put", "Update", "Delete", "BatchWrite", "Send"))}
    assert writes == set()
    assert not {a for a in actions if a.startswith("secretsmanager:")}
    report_objects = [
        r
        for s in statements
        if "s3:GetObject*" in as_list(s["Action"])
        for r in as_list(s["Resource"])
        if "Fn::Join" in r
    ]
    assert report_objects and all(r["Fn::Join"][1][-1] == "/reconciliation/reports/*" for r in report_objects)
