"""Traces are sampled at the webhook API, not recorded for every invocation (the cost model's X-Ray item)."""

from __future__ import annotations

from billing_sync_ops import cost
from infra.constructs.ingest_api import WEBHOOK_TRACE_SAMPLING_RATE


def test_functions_pass_the_callers_sampling_decision_on_instead_of_tracing_every_invocation(synthesised):
    # GIVEN the synthesised stack
    functions = synthesised.resources("AWS::Lambda::Function")

    # THEN no function records its own traces under Lambda's fixed sampling
    assert functions
    for logical_id, function in functions.items():
        assert function["Properties"]["TracingConfig"] == {"Mode": "PassThrough"}, logical_id


def test_the_webhook_stage_is_traced_and_a_sampling_rule_records_one_percent_of_its_requests(synthesised):
    # GIVEN the API stage and the X-Ray sampling rules
    stages = synthesised.resources("AWS::ApiGateway::Stage")
    rules = [r["Properties"]["SamplingRule"] for r in synthesised.resources("AWS::XRay::SamplingRule").values()]

    # THEN the stage samples, and the rule for API stages records a fixed 1 % with no reservoir, which
    # at a million events a month would otherwise record every request
    assert [stage["Properties"]["TracingEnabled"] for stage in stages.values()] == [True]
    (rule,) = [rule for rule in rules if rule["ServiceType"] == "AWS::ApiGateway::Stage"]
    assert rule["FixedRate"] == WEBHOOK_TRACE_SAMPLING_RATE == 0.01
    assert rule["ReservoirSize"] == 0
    assert rule["Priority"] < 10000  # before the default rule
    assert rule["HTTPMethod"] == "POST"
    assert len(rule["RuleName"]) <= 32


def test_the_cost_model_reads_sampling_and_log_level_from_the_template(synthesised):
    # WHEN the cost model reads the deployment from the template
    deployment = cost.deployment_from_template(synthesised.template.to_json())

    # THEN a webhook is traced at the rule's rate and the functions log warnings only
    assert deployment.lambda_tracing == "PassThrough"
    assert deployment.traced_fraction(events_per_second=0.39) == 0.01
    assert deployment.log_level == "WARNING"
    assert deployment.webhook_memory_mb == deployment.posting_memory_mb == 512
    assert deployment.access_log_bytes > 100


def test_functions_log_warnings_only_at_the_lambda_and_powertools_level(synthesised):
    for logical_id, function in synthesised.resources("AWS::Lambda::Function").items():
        properties = function["Properties"]
        assert properties["LoggingConfig"]["ApplicationLogLevel"] == "WARN", logical_id
        assert properties["LoggingConfig"]["SystemLogLevel"] == "WARN", logical_id
        assert properties["Environment"]["Variables"]["POWERTOOLS_LOG_LEVEL"] == "WARNING", logical_id
