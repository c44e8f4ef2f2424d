"""The cost model's arithmetic and its price table: counts and prices in, dollars out, to the cent."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from billing_sync_ops import cost

REQUIRED_ITEMS = {
    "lambda_arm64_gb_second",
    "lambda_requests",
    "api_gateway_rest_requests",
    "eventbridge_custom_events",
    "sqs_standard_requests",
    "dynamodb_on_demand_wru",
    "dynamodb_on_demand_rru",
    "s3_standard_put",
    "xray_traces_recorded",
    "cloudwatch_logs_ingestion_gb",
    "cloudwatch_custom_metric_month",
    "secrets_manager_api_calls",
}


def a_price_table(tmp_path: Path, **overrides: dict) -> Path:
    prices = {
        "api_gateway_rest_requests": {"usd": 3.5, "per": 1_000_000},
        "s3_standard_put": {"usd": 0.005, "per": 1000},
        "dynamodb_on_demand_wru": {"usd": 0.625, "per": 1_000_000},
        "xray_traces_recorded": {"usd": 5.0, "per": 1_000_000},
        "cloudwatch_custom_metric_month": {"usd": 0.30, "per": 1},
    }
    entries = {
        item: {"unit": "unit", "source": "https://aws.amazon.com/pricing/", "as_of": "2025-06-01", **price}
        for item, price in prices.items()
    }
    for item, entry in overrides.items():
        entries[item] = {**entries[item], **entry}
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"region": "us-east-1", "as_of": "2025-06-01", "prices": entries}))
    return path


def test_the_committed_price_table_is_dated_and_every_price_names_its_source():
    # WHEN the committed table is loaded (it raises on a missing date or source)
    table = cost.PriceTable.load()

    # THEN it covers every item the model prices, each with a date and an aws.amazon.com pricing page
    assert table.region == "us-east-1"
    assert set(table.prices) >= REQUIRED_ITEMS
    for item, price in table.prices.items():
        assert price.source.startswith("https://aws.amazon.com/"), item
        assert "pricing" in price.source, item
        assert date(2024, 1, 1) <= price.as_of <= date.today(), item
        assert price.unit, item


@pytest.mark.parametrize("missing", ["source", "as_of"])
def test_a_price_without_a_source_or_date_is_refused(tmp_path, missing):
    path = a_price_table(tmp_path)
    data = json.loads(path.read_text())
    del data["prices"]["s3_standard_put"][missing]
    path.write_text(json.dumps(data))

    with pytest.raises(cost.PriceTableError):
        cost.PriceTable.load(path)


def test_a_source_that_is_not_a_url_is_refused(tmp_path):
    path = a_price_table(tmp_path, s3_standard_put={"source": "my notes"})

    with pytest.raises(cost.PriceTableError, match="not a URL"):
        cost.PriceTable.load(path)


def test_a_million_events_times_counted_calls_times_prices_is_the_expected_dollars(tmp_path):
    # GIVEN one API request, one S3 PUT and some DynamoDB writes per event, and one trace per event for invoices
    table = cost.PriceTable.load(a_price_table(tmp_path))
    usage = {
        "customer": {"api_gateway_rest_requests": 1, "s3_standard_put": 1, "dynamodb_on_demand_wru": 3},
        "invoice": {
            "api_gateway_rest_requests": 1,
            "s3_standard_put": 1,
            "dynamodb_on_demand_wru": 2,
            "xray_traces_recorded": 1,
        },
        "payment": {"api_gateway_rest_requests": 1, "s3_standard_put": 1, "dynamodb_on_demand_wru": 2},
    }

    # WHEN the mix 20/40/40 is priced with 3 custom metrics at a million events a month
    priced = cost.price_mix(usage, prices=table, fixed_monthly_units={"cloudwatch_custom_metric_month": 3})

    # THEN each item is units x 1M x price: API 3.50, S3 5.00, WRU (0.2x3 + 0.8x2) x 0.625 = 1.375,
    # X-Ray 0.4 x 5.00 = 2.00, metrics 3 x 0.30 = 0.90
    assert priced["by_item_usd"] == {
        "s3_standard_put": 5.0,
        "api_gateway_rest_requests": 3.5,
        "xray_traces_recorded": 2.0,
        "dynamodb_on_demand_wru": 1.375,
        "cloudwatch_custom_metric_month": 0.9,
    }
    assert priced["usd_per_million_events"] == 12.78
    assert priced["variable_usd_per_million_events"] == 11.88
    assert priced["by_event_type_usd_per_million"] == {"customer": 10.375, "invoice": 14.75, "payment": 9.75}
    assert priced["units_per_million_events"]["dynamodb_on_demand_wru"] == 2_200_000


def test_a_mix_that_does_not_add_up_is_refused(tmp_path):
    table = cost.PriceTable.load(a_price_table(tmp_path))

    with pytest.raises(ValueError, match="does not add up"):
        cost.price_mix({"invoice": {}}, prices=table, mix={"invoice": 0.5})


def test_billed_duration_is_cpu_at_the_memory_share_of_a_vcpu_plus_awaited_calls_rounded_up():
    # GIVEN 10 ms of CPU at 512 MB (512/1769 of a vCPU) and two DynamoDB round trips
    profile = cost.FunctionProfile(
        aws_calls={"dynamodb.PutItem": 1, "dynamodb.UpdateItem": 1},
        cpu_ms=10.0,
        log_bytes=1024**3 / 1000,
        memory_mb=512,
        traced_fraction=0.01,
        ddb_wru=2,
    )

    # THEN 10 / (512/1769) = 34.55 ms + 2 x 6 ms = 46.55, billed 47 ms; 0.047 s x 0.5 GB
    assert cost.billed_ms(profile) == 47
    usage = cost.function_usage(profile)
    assert usage["lambda_arm64_gb_second"] == pytest.approx(0.0235)
    assert usage["lambda_requests"] == 1
    assert usage["dynamodb_on_demand_wru"] == 2
    assert usage["xray_traces_recorded"] == 0.01
    assert usage["cloudwatch_logs_ingestion_gb"] == pytest.approx(0.001)


def test_around_the_code_each_event_pays_an_api_request_and_three_sqs_requests():
    webhook = cost.FunctionProfile(
        aws_calls={"s3.PutObject": 1, "events.PutEvents": 1}, cpu_ms=1, log_bytes=0, memory_mb=512, traced_fraction=0
    )
    posting = cost.FunctionProfile(aws_calls={}, cpu_ms=1, log_bytes=0, memory_mb=512, traced_fraction=0)
    deployment = cost.Deployment(
        webhook_memory_mb=512,
        posting_memory_mb=512,
        lambda_tracing="PassThrough",
        api_tracing=True,
        api_sampling_rate=0.01,
        access_log_bytes=0,
        log_level="WARNING",
    )

    usage = cost.usage_per_event(webhook=webhook, posting=posting, deployment=deployment)

    assert usage["api_gateway_rest_requests"] == 1
    # EventBridge's SendMessage, the event source mapping's ReceiveMessage and DeleteMessageBatch
    assert usage["sqs_standard_requests"] == 3
    assert usage["s3_standard_put"] == 1
    assert usage["eventbridge_custom_events"] == 1
    assert usage["lambda_requests"] == 2
    # 2,592,000 s a month / 300 s cache / 1M events
    assert usage["secrets_manager_api_calls"] == pytest.approx(0.00864)


def test_lambda_active_tracing_records_every_request_below_one_a_second():
    assert cost.lambda_active_traced_fraction(0.39) == 1.0
    assert cost.lambda_active_traced_fraction(21.0) == pytest.approx(2 / 21)


def test_the_deployment_is_read_from_the_template():
    # GIVEN a template with active tracing on one function and a stage with a sampled access log
    def function(handler: str, mode: str) -> dict:
        return {
            "Type": "AWS::Lambda::Function",
            "Properties": {
                "Handler": f"billing_sync.handlers.{handler}.lambda_handler",
                "MemorySize": 1024,
                "TracingConfig": {"Mode": mode},
                "Environment": {"Variables": {"POWERTOOLS_LOG_LEVEL": "INFO"}},
            },
        }

    template = {
        "Resources": {
            "Webhook": function("stripe_webhook", "PassThrough"),
            "Posting": function("post_to_erp", "Active"),
            "Stage": {
                "Type": "AWS::ApiGateway::Stage",
                "Properties": {"TracingEnabled": True, "AccessLogSetting": {"Format": '{"s":"$context.status"}'}},
            },
        }
    }

    deployment = cost.deployment_from_template(template)

    assert deployment.lambda_tracing == "Active"
    assert deployment.traced_fraction(0.39) == 1.0
    assert deployment.webhook_memory_mb == 1024
    assert deployment.access_log_bytes == len('{"s":"' + "x" * 16 + '"}') + 1
    assert deployment.log_level == "INFO"


def test_the_security_controls_are_read_from_the_template_and_priced_per_request_or_month():
    # GIVEN a template with a web ACL of three rules, two customer keys, a secret on one and a backup plan
    # keeping 35 daily (every day but the 1st) and 12 monthly copies
    template = {
        "Resources": {
            "Webhook": {
                "Type": "AWS::Lambda::Function",
                "Properties": {"Handler": "billing_sync.handlers.stripe_webhook.lambda_handler"},
            },
            "Posting": {
                "Type": "AWS::Lambda::Function",
                "Properties": {"Handler": "billing_sync.handlers.post_to_erp.lambda_handler"},
            },
            "Acl": {
                "Type": "AWS::WAFv2::WebACL",
                "Properties": {"Rules": [{"Name": "rate"}, {"Name": "ip"}, {"Name": "bad"}]},
            },
            "DataKey": {"Type": "AWS::KMS::Key", "Properties": {}},
            "LogsKey": {"Type": "AWS::KMS::Key", "Properties": {}},
            "Secret": {"Type": "AWS::SecretsManager::Secret", "Properties": {"KmsKeyId": {"Ref": "DataKey"}}},
            "Plan": {
                "Type": "AWS::Backup::BackupPlan",
                "Properties": {
                    "BackupPlan": {
                        "BackupPlanRule": [
                            {"ScheduleExpression": "cron(0 5 2-31 * ? *)", "Lifecycle": {"DeleteAfterDays": 35}},
                            {"ScheduleExpression": "cron(0 5 1 * ? *)", "Lifecycle": {"DeleteAfterDays": 365}},
                        ]
                    }
                },
            },
        }
    }

    # WHEN the deployment is read and one event is priced
    deployment = cost.deployment_from_template(template)
    none = cost.FunctionProfile(aws_calls={}, cpu_ms=1, log_bytes=0, memory_mb=512, traced_fraction=0)
    usage = cost.usage_per_event(webhook=none, posting=none, deployment=deployment)

    # THEN WAF inspects each webhook once and each secret read decrypts once with the customer key
    assert (deployment.web_acls, deployment.web_acl_rules, deployment.kms_keys) == (1, 3, 2)
    assert deployment.secrets_on_customer_keys
    assert deployment.backup_copies_retained == 35 + 12
    assert usage["waf_requests"] == 1
    assert usage["kms_requests"] == usage["secrets_manager_api_calls"]
