"""The webhook edge: web ACL on the stage, TLS policy, access log fields, reserved concurrency, 429 when throttled."""

from __future__ import annotations

import json

import aws_cdk as cdk
import pytest
from aws_cdk.assertions import Match

from infra import BillingSyncConfig
from infra.config import DEFAULT_INGEST_RESERVED_CONCURRENCY, DEFAULT_WEBHOOK_RATE_LIMIT_PER_IP
from tests.infra.conftest import SynthesisedStack, synthesise
from tests.infra.test_stack import function_by_module, logical_id_of

pytestmark = pytest.mark.infra

ALLOWED_SOURCES = "3.18.12.63, 3.130.192.231,2600:1f18:1234::/48"
RESERVED = 20
RATE_LIMIT = 1200


@pytest.fixture(scope="module")
def synthesised_with_edge_context(tmp_path_factory: pytest.TempPathFactory) -> SynthesisedStack:
    return synthesise(
        tmp_path_factory.mktemp("cdk-out-edge"),
        {
            "webhookSourceIps": ALLOWED_SOURCES,
            "ingestReservedConcurrency": str(RESERVED),
            "webhookRateLimitPerIp": RATE_LIMIT,
            "stripePartnerEventBusName": "aws.partner/stripe.com/ed_edge",
        },
    )


def web_acl(synthesised: SynthesisedStack) -> tuple[str, dict]:
    [(logical_id, resource)] = synthesised.resources("AWS::WAFv2::WebACL").items()
    return logical_id, resource["Properties"]


def rules_by_name(synthesised: SynthesisedStack) -> dict[str, dict]:
    return {rule["Name"]: rule for rule in web_acl(synthesised)[1]["Rules"]}


def stage(synthesised: SynthesisedStack) -> tuple[str, dict]:
    [(logical_id, resource)] = synthesised.resources("AWS::ApiGateway::Stage").items()
    return logical_id, resource["Properties"]


def test_the_web_acl_is_regional_and_associated_with_the_webhook_stage(synthesised):
    acl_id, acl = web_acl(synthesised)
    stage_id, _ = stage(synthesised)
    rest_api_id = logical_id_of(synthesised, "AWS::ApiGateway::RestApi", "IngestApiRestApi")

    assert acl["Scope"] == "REGIONAL"
    assert acl["DefaultAction"] == {"Allow": {}}
    [association] = synthesised.resources("AWS::WAFv2::WebACLAssociation").values()
    assert association["Properties"]["WebACLArn"] == {"Fn::GetAtt": [acl_id, "Arn"]}
    resource_arn = json.dumps(association["Properties"]["ResourceArn"])
    stage_path = [{"Ref": rest_api_id}, "/stages/", {"Ref": stage_id}]
    assert json.dumps(stage_path)[1:-1] in resource_arn


def test_the_web_acl_runs_ip_reputation_a_per_ip_rate_and_known_bad_inputs(synthesised):
    rules = rules_by_name(synthesised)

    for group in ("AWSManagedRulesAmazonIpReputationList", "AWSManagedRulesKnownBadInputsRuleSet"):
        statement = rules[group]["Statement"]["ManagedRuleGroupStatement"]
        assert statement["VendorName"] == "AWS" and statement["Name"] == group
        assert rules[group]["OverrideAction"] == {"None": {}}
    rate = rules["RatePerSourceIp"]
    assert rate["Statement"]["RateBasedStatement"]["AggregateKeyType"] == "IP"
    assert rate["Statement"]["RateBasedStatement"]["Limit"] == DEFAULT_WEBHOOK_RATE_LIMIT_PER_IP
    # Refused like the stage throttle: the sender retries.
    assert rate["Action"]["Block"]["CustomResponse"]["ResponseCode"] == 429
    # Reputation first: a known-bad address is refused before it counts against anyone's rate.
    assert rules["AWSManagedRulesAmazonIpReputationList"]["Priority"] < rate["Priority"]
    assert len({rule["Priority"] for rule in rules.values()}) == len(rules)
    for rule in rules.values():
        assert rule["VisibilityConfig"]["CloudWatchMetricsEnabled"] is True, rule["Name"]


def test_known_bad_input_rules_on_the_body_only_count(synthesised):
    # A customer-chosen name such as `${jndi:...}` in a signed Stripe event must not get the event refused.
    group = rules_by_name(synthesised)["AWSManagedRulesKnownBadInputsRuleSet"]["Statement"]["ManagedRuleGroupStatement"]
    overrides = {override["Name"]: override["ActionToUse"] for override in group["RuleActionOverrides"]}
    assert overrides == {"JavaDeserializationRCE_BODY": {"Count": {}}, "Log4JRCE_BODY": {"Count": {}}}


def test_without_source_ips_every_source_may_call_the_webhook(synthesised):
    assert "WebhookSourceAllowlist" not in rules_by_name(synthesised)
    assert synthesised.resources("AWS::WAFv2::IPSet") == {}


def test_source_ips_from_context_block_every_other_source_on_the_webhook_route(synthesised_with_edge_context):
    stack = synthesised_with_edge_context
    ip_sets = {
        resource["Properties"]["IPAddressVersion"]: (logical_id, resource["Properties"])
        for logical_id, resource in stack.resources("AWS::WAFv2::IPSet").items()
    }
    assert ip_sets["IPV4"][1]["Addresses"] == ["3.18.12.63/32", "3.130.192.231/32"]
    assert ip_sets["IPV6"][1]["Addresses"] == ["2600:1f18:1234::/48"]

    rule = rules_by_name(stack)["WebhookSourceAllowlist"]
    assert rule["Action"] == {"Block": {}}
    on_route, outside_allowlist = rule["Statement"]["AndStatement"]["Statements"]
    match = on_route["ByteMatchStatement"]
    assert match["SearchString"] == "/webhooks/" and match["FieldToMatch"] == {"UriPath": {}}
    assert {t["Type"] for t in match["TextTransformations"]} == {"URL_DECODE", "NORMALIZE_PATH"}
    referenced = [
        statement["IPSetReferenceStatement"]["Arn"]
        for statement in outside_allowlist["NotStatement"]["Statement"]["OrStatement"]["Statements"]
    ]
    assert referenced == [{"Fn::GetAtt": [ip_sets[v][0], "Arn"]} for v in ("IPV4", "IPV6")]
    # Checked before the rate: a stranger is refused without using anyone's budget.
    assert rule["Priority"] < rules_by_name(stack)["RatePerSourceIp"]["Priority"]
    assert rules_by_name(stack)["RatePerSourceIp"]["Statement"]["RateBasedStatement"]["Limit"] == RATE_LIMIT


@pytest.mark.parametrize(
    ("context", "message"),
    [
        ({"webhookSourceIps": "3.18.12.63,not-an-ip"}, "not an IP address or CIDR"),
        ({"webhookSourceIps": "10.0.0.1/8"}, "has host bits set"),
        ({"ingestReservedConcurrency": "0"}, "at least 1"),
        ({"ingestReservedConcurrency": "5000"}, "at most"),
        ({"webhookRateLimitPerIp": "5"}, "at least 10"),
    ],
)
def test_edge_context_is_validated(context, message):
    app = cdk.App(context=context)
    with pytest.raises(ValueError, match=message):
        BillingSyncConfig.from_context(app.node)


def test_the_api_refuses_tls_below_1_2_and_requests_fronted_through_another_host(synthesised):
    rest_api = synthesised.resource(logical_id_of(synthesised, "AWS::ApiGateway::RestApi", "IngestApiRestApi"))
    properties = rest_api["Properties"]
    # TLS 1.3, or TLS 1.2 with forward-secret ciphers only; enhanced policies need an access mode.
    assert properties["SecurityPolicy"] == "SecurityPolicy_TLS13_1_2_PFS_PQ_2025_09"
    assert properties["EndpointAccessMode"] == "STRICT"


def test_access_logs_name_the_refusal_and_the_integration_outcome(synthesised):
    _, properties = stage(synthesised)
    fields = json.loads(properties["AccessLogSetting"]["Format"])
    assert {
        "errorMessage": "$context.error.message",
        "errorResponseType": "$context.error.responseType",
        "integrationStatus": "$context.integration.status",
        "integrationError": "$context.integration.error",
        "integrationErrorMessage": "$context.integrationErrorMessage",
        "integrationLatency": "$context.integration.latency",
        "wafResponseCode": "$context.wafResponseCode",
        "status": "$context.status",
        "ip": "$context.identity.sourceIp",
        "requestId": "$context.requestId",
    }.items() <= fields.items()


def test_access_logs_are_encrypted_with_the_logs_key(synthesised):
    _, properties = stage(synthesised)
    log_group_id = properties["AccessLogSetting"]["DestinationArn"]["Fn::GetAtt"][0]
    key_id = synthesised.resource(log_group_id)["Properties"]["KmsKeyId"]["Fn::GetAtt"][0]
    assert key_id.startswith("KeysLogs")


@pytest.mark.parametrize(
    ("stack_fixture", "reserved"),
    [("synthesised", DEFAULT_INGEST_RESERVED_CONCURRENCY), ("synthesised_with_edge_context", RESERVED)],
)
def test_ingest_functions_have_reserved_concurrency_and_the_stage_throttles_first(stack_fixture, reserved, request):
    stack = request.getfixturevalue(stack_fixture)
    modules = ["stripe_webhook"] + (["stripe_partner_events"] if stack_fixture != "synthesised" else [])
    for module in modules:
        assert function_by_module(stack, module)[1]["Properties"]["ReservedConcurrentExecutions"] == reserved
    # At most `reserved` requests a second and in a burst: under a second each, Lambda never throttles first.
    [settings] = stage(stack)[1]["MethodSettings"]
    assert 0 < settings["ThrottlingRateLimit"] <= reserved
    assert 0 < settings["ThrottlingBurstLimit"] <= reserved


def test_a_throttled_request_fails_closed_with_429_and_retry_after(synthesised):
    responses = [r["Properties"] for r in synthesised.resources("AWS::ApiGateway::GatewayResponse").values()]
    [throttled] = [r for r in responses if r["ResponseType"] == "THROTTLED"]
    assert throttled["StatusCode"] == "429"
    assert throttled["ResponseParameters"]["gatewayresponse.header.Retry-After"].strip("'").isdigit()


def test_the_cost_of_the_edge_is_one_web_acl_and_four_rules_at_most(synthesised_with_edge_context, synthesised):
    # The WAF bill is per web ACL and per rule (make cost): one ACL, three rules, four with an allowlist.
    assert len(synthesised.resources("AWS::WAFv2::WebACL")) == 1
    assert len(web_acl(synthesised)[1]["Rules"]) == 3
    assert len(web_acl(synthesised_with_edge_context)[1]["Rules"]) == 4


def test_edge_stack_passes_the_nag_gate(synthesised_with_edge_context):
    annotations = synthesised_with_edge_context.annotations
    assert annotations.find_error("*", Match.string_like_regexp("AwsSolutions-.*")) == []
    assert annotations.find_warning("*", Match.string_like_regexp("AwsSolutions-.*")) == []
