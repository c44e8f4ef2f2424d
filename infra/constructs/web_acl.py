"""The web ACL in front of the webhook stage: known-bad sources and inputs, a per-IP rate, an optional allowlist.

Rules run in priority order and the first that blocks ends the request:
0. AWS's IP reputation list (addresses AWS threat intelligence has seen attacking);
1. the allowlist, when `webhookSourceIps` is given: the webhook route answers 403 to any other source (the
   lineage API on the same stage is IAM-signed and keeps its callers);
2. a rate-based rule per source IP, answered with 429 so a sender retries as it does for the stage throttle;
3. AWS's known-bad-inputs group (Log4j, Java deserialisation, exploitable paths). Its body rules only count:
   a Stripe event carries customer-chosen text (names, descriptions, metadata), and a customer who names
   themselves `${jndi:...}` must not get their correctly signed events refused (nothing here runs Java).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aws_cdk import aws_wafv2 as wafv2
from constructs import Construct

RATE_WINDOW_SECONDS = 300
# The known-bad-inputs rules that inspect the body; counted (visible in metrics), never blocking.
COUNTED_BODY_RULES = ("JavaDeserializationRCE_BODY", "Log4JRCE_BODY")
IP_REPUTATION_GROUP = "AWSManagedRulesAmazonIpReputationList"
KNOWN_BAD_INPUTS_GROUP = "AWSManagedRulesKnownBadInputsRuleSet"


class WebhookWebAcl(Construct):
    """A REGIONAL web ACL associated with one API Gateway stage."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        stage_arn: str,
        webhook_route: str,
        rate_limit_per_ip: int,
        allowed_source_cidrs: Sequence[str] = (),
        metric_prefix: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self._metric_prefix = metric_prefix
        rules = [self._managed_group_rule(IP_REPUTATION_GROUP, priority=0)]
        if allowed_source_cidrs:
            rules.append(self._allowlist_rule(allowed_source_cidrs, webhook_route, priority=1))
        rules.append(self._rate_rule(rate_limit_per_ip, priority=2))
        rules.append(self._managed_group_rule(KNOWN_BAD_INPUTS_GROUP, priority=3, counted=COUNTED_BODY_RULES))
        self.web_acl = wafv2.CfnWebACL(
            self,
            "WebAcl",
            scope="REGIONAL",
            description="billing-sync webhook edge: IP reputation, source allowlist, per-IP rate, known bad inputs",
            default_action=wafv2.CfnWebACL.DefaultActionProperty(allow={}),
            visibility_config=self._visibility("WebAcl"),
            rules=rules,
        )
        self.association = wafv2.CfnWebACLAssociation(
            self, "StageAssociation", resource_arn=stage_arn, web_acl_arn=self.web_acl.attr_arn
        )

    def _visibility(self, name: str) -> wafv2.CfnWebACL.VisibilityConfigProperty:
        return wafv2.CfnWebACL.VisibilityConfigProperty(
            cloud_watch_metrics_enabled=True,
            metric_name=f"{self._metric_prefix}-{name}",
            sampled_requests_enabled=True,
        )

    def _managed_group_rule(
        self, group: str, *, priority: int, counted: Sequence[str] = ()
    ) -> wafv2.CfnWebACL.RuleProperty:
        return wafv2.CfnWebACL.RuleProperty(
            name=group,
            priority=priority,
            override_action=wafv2.CfnWebACL.OverrideActionProperty(none={}),
            statement=wafv2.CfnWebACL.StatementProperty(
                managed_rule_group_statement=wafv2.CfnWebACL.ManagedRuleGroupStatementProperty(
                    vendor_name="AWS",
                    name=group,
                    rule_action_overrides=[
                        wafv2.CfnWebACL.RuleActionOverrideProperty(
                            name=rule, action_to_use=wafv2.CfnWebACL.RuleActionProperty(count={})
                        )
                        for rule in counted
                    ]
                    or None,
                )
            ),
            visibility_config=self._visibility(group),
        )

    def _rate_rule(self, limit: int, *, priority: int) -> wafv2.CfnWebACL.RuleProperty:
        return wafv2.CfnWebACL.RuleProperty(
            name="RatePerSourceIp",
            priority=priority,
            action=wafv2.CfnWebACL.RuleActionProperty(
                block=wafv2.CfnWebACL.BlockActionProperty(
                    custom_response=wafv2.CfnWebACL.CustomResponseProperty(
                        response_code=429,
                        response_headers=[
                            wafv2.CfnWebACL.CustomHTTPHeaderProperty(name="Retry-After", value=str(RATE_WINDOW_SECONDS))
                        ],
                    )
                )
            ),
            statement=wafv2.CfnWebACL.StatementProperty(
                rate_based_statement=wafv2.CfnWebACL.RateBasedStatementProperty(
                    aggregate_key_type="IP", limit=limit, evaluation_window_sec=RATE_WINDOW_SECONDS
                )
            ),
            visibility_config=self._visibility("RatePerSourceIp"),
        )

    def _allowlist_rule(
        self, cidrs: Sequence[str], webhook_route: str, *, priority: int
    ) -> wafv2.CfnWebACL.RuleProperty:
        networks = [ipaddress.ip_network(cidr) for cidr in cidrs]
        references = []
        for version, label in ((4, "IPV4"), (6, "IPV6")):
            addresses = [str(network) for network in networks if network.version == version]
            if not addresses:
                continue
            ip_set = wafv2.CfnIPSet(
                self,
                f"WebhookSources{label}",
                scope="REGIONAL",
                ip_address_version=label,
                addresses=addresses,
                description=f"{label} sources allowed to call the webhook route, from context webhookSourceIps",
            )
            references.append(
                wafv2.CfnWebACL.StatementProperty(
                    ip_set_reference_statement=wafv2.CfnWebACL.IPSetReferenceStatementProperty(arn=ip_set.attr_arn)
                )
            )
        allowed = (
            references[0]
            if len(references) == 1
            else wafv2.CfnWebACL.StatementProperty(
                or_statement=wafv2.CfnWebACL.OrStatementProperty(statements=references)
            )
        )
        # Anywhere in the path: behind the stage name (`/v1/webhooks/`) or a custom domain's base path. Decoded and
        # normalised first, so `/v1//webhooks/stripe` or `%2Fwebhooks%2F` cannot slip past.
        on_webhook_route = wafv2.CfnWebACL.StatementProperty(
            byte_match_statement=wafv2.CfnWebACL.ByteMatchStatementProperty(
                field_to_match=wafv2.CfnWebACL.FieldToMatchProperty(uri_path={}),
                positional_constraint="CONTAINS",
                search_string=webhook_route,
                text_transformations=[
                    wafv2.CfnWebACL.TextTransformationProperty(priority=0, type="URL_DECODE"),
                    wafv2.CfnWebACL.TextTransformationProperty(priority=1, type="NORMALIZE_PATH"),
                ],
            )
        )
        return wafv2.CfnWebACL.RuleProperty(
            name="WebhookSourceAllowlist",
            priority=priority,
            action=wafv2.CfnWebACL.RuleActionProperty(block={}),
            statement=wafv2.CfnWebACL.StatementProperty(
                and_statement=wafv2.CfnWebACL.AndStatementProperty(
                    statements=[
                        on_webhook_route,
                        wafv2.CfnWebACL.StatementProperty(
                            not_statement=wafv2.CfnWebACL.NotStatementProperty(statement=allowed)
                        ),
                    ]
                )
            ),
            visibility_config=self._visibility("WebhookSourceAllowlist"),
        )
