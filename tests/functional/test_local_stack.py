from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from billing_sync_ops.local_stack import LocalStack, provision, synthesize_template

pytestmark = pytest.mark.infra

REPO_ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
LOCAL_SECRETS = ["whsec_functional_test"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return synthesize_template(REPO_ROOT, tmp_path_factory.mktemp("cdk-out"))


@pytest.fixture(scope="module")
def endpoint_url() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def session() -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name=REGION)


@pytest.fixture(scope="module")
def local_stack(template, session, endpoint_url) -> LocalStack:
    return provision(template, session=session, endpoint_url=endpoint_url, region=REGION, webhook_secrets=LOCAL_SECRETS)


def resources_of_type(template: dict, resource_type: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == resource_type}


def test_tables_exist_with_the_template_key(local_stack, session, endpoint_url):
    dynamodb = session.client("dynamodb", endpoint_url=endpoint_url)
    for output_id in ("LineageTableName", "LedgerTableName", "MasterDataTableName"):
        table = dynamodb.describe_table(TableName=local_stack.outputs[output_id])["Table"]
        assert table["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}]
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_posting_queue_redrives_to_the_exception_queue(template, local_stack, session, endpoint_url):
    # GIVEN the redrive policy the template declares
    posting_queue_template = next(
        queue["Properties"]
        for queue in resources_of_type(template, "AWS::SQS::Queue").values()
        if "RedrivePolicy" in queue["Properties"]
    )
    sqs = session.client("sqs", endpoint_url=endpoint_url)

    # WHEN the provisioned queues are inspected
    attributes = sqs.get_queue_attributes(QueueUrl=local_stack.outputs["PostingQueueUrl"], AttributeNames=["All"])[
        "Attributes"
    ]
    exception_queue_arn = sqs.get_queue_attributes(
        QueueUrl=local_stack.outputs["ExceptionQueueUrl"], AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]

    # THEN they carry the template's settings
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == exception_queue_arn
    assert int(redrive["maxReceiveCount"]) == posting_queue_template["RedrivePolicy"]["maxReceiveCount"]
    assert int(attributes["VisibilityTimeout"]) == posting_queue_template["VisibilityTimeout"]


def test_canonical_event_on_the_bus_lands_in_the_posting_queue(local_stack, session, endpoint_url):
    # GIVEN the billing bus and its rules, provisioned from the template
    events = session.client("events", endpoint_url=endpoint_url)
    sqs = session.client("sqs", endpoint_url=endpoint_url)
    detail = {"event_id": "stripe:evt_local_1", "type": "invoice.issued"}

    # WHEN a canonical event is put on the bus, and one the rule does not match
    result = events.put_events(
        Entries=[
            {
                "EventBusName": local_stack.outputs["BillingBusName"],
                "Source": "billing-sync",
                "DetailType": "invoice.issued",
                "Detail": json.dumps(detail),
            },
            {
                "EventBusName": local_stack.outputs["BillingBusName"],
                "Source": "billing-sync",
                "DetailType": "usage.rated",
                "Detail": json.dumps({"event_id": "stripe:evt_local_2"}),
            },
        ]
    )
    assert result["FailedEntryCount"] == 0

    # THEN only the matching event reaches the posting queue, as a whole EventBridge event
    received = sqs.receive_message(
        QueueUrl=local_stack.outputs["PostingQueueUrl"], MaxNumberOfMessages=10, WaitTimeSeconds=1
    ).get("Messages", [])
    bodies = [json.loads(message["Body"]) for message in received]
    assert [body["detail-type"] for body in bodies] == ["invoice.issued"]
    assert bodies[0]["detail"] == detail


def test_functions_get_the_real_resource_names(local_stack):
    posting = local_stack.function_for("post_to_erp")
    webhook = local_stack.function_for("stripe_webhook")

    assert posting.handler == "billing_sync.handlers.post_to_erp.lambda_handler"
    assert posting.timeout_seconds == 30
    assert posting.environment["LINEAGE_TABLE_NAME"] == local_stack.outputs["LineageTableName"]
    assert posting.environment["LEDGER_TABLE_NAME"] == local_stack.outputs["LedgerTableName"]
    assert posting.environment["EXCEPTION_QUEUE_URL"] == local_stack.outputs["ExceptionQueueUrl"]
    assert webhook.environment["BILLING_BUS_NAME"] == local_stack.outputs["BillingBusName"]
    assert webhook.environment["RAW_ARCHIVE_BUCKET"] == local_stack.outputs["RawArchiveBucketName"]


def test_webhook_secret_holds_the_local_signing_secrets(local_stack, session, endpoint_url):
    secretsmanager = session.client("secretsmanager", endpoint_url=endpoint_url)
    webhook = local_stack.function_for("stripe_webhook")

    value = secretsmanager.get_secret_value(SecretId=webhook.environment["STRIPE_WEBHOOK_SECRET_NAME"])
    assert json.loads(value["SecretString"]) == LOCAL_SECRETS


def test_raw_archive_bucket_exists(local_stack, session, endpoint_url):
    s3 = session.client("s3", endpoint_url=endpoint_url)
    s3.head_bucket(Bucket=local_stack.outputs["RawArchiveBucketName"])


def test_posting_queue_is_played_by_the_posting_function(local_stack):
    (mapping,) = [m for m in local_stack.event_source_mappings if m.queue_url == local_stack.outputs["PostingQueueUrl"]]
    assert local_stack.functions[mapping.function_logical_id].module == "post_to_erp"
    assert mapping.batch_size == 10
    assert mapping.report_batch_item_failures is True
    assert mapping.maximum_concurrency == 5
    assert mapping.queue_arn.endswith(mapping.queue_url.rsplit("/", 1)[-1])


def test_stripe_webhook_route_maps_to_the_webhook_function(local_stack):
    route = local_stack.route("POST", "/webhooks/stripe")
    assert local_stack.functions[route.function_logical_id].module == "stripe_webhook"
    assert route.required_headers == ("Stripe-Signature",)


def test_outputs_resolve_except_the_api_url(local_stack):
    unresolved = {output_id for output_id, value in local_stack.outputs.items() if value is None}
    assert unresolved <= {"WebhookUrl"} | {o for o in local_stack.outputs if o.startswith("IngestApi")}
    assert local_stack.outputs["BillingBusName"] == "billing-sync-dev"


def test_provisioning_twice_reuses_the_resources(template, local_stack, session, endpoint_url):
    again = provision(
        template, session=session, endpoint_url=endpoint_url, region=REGION, webhook_secrets=LOCAL_SECRETS
    )
    assert again.outputs == local_stack.outputs


def test_synthesis_is_reused_while_the_template_is_fresh(template, tmp_path_factory, capsys):
    out_dir = tmp_path_factory.mktemp("fresh-template")
    (out_dir / "BillingSync.template.json").write_text(json.dumps(template))

    assert synthesize_template(REPO_ROOT, out_dir) == template
    assert "reusing" in capsys.readouterr().err
