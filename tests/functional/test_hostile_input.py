"""Hostile input at the front door: no byte sequence, header or size gets a 5xx or a hang.

Each case is driven through the ingest handler on moto and through `local serve`'s real HTTP endpoint
(raw sockets where a client library would refuse to lie), and asserts the status, the JSON error and
what was stored: nothing for a refusal, exactly one MALFORMED record for a signed body that is no event.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from billing_sync.domain.webhook import MAX_JSON_DEPTH, MAX_WEBHOOK_BYTES
from billing_sync.handlers import stripe_webhook
from billing_sync_ops.lambda_runtime import LocalLambdaContext, api_gateway_event
from billing_sync_ops.runtime import LocalRuntime
from tests.builders import event_payload, load_event, sign_stripe_payload
from tests.functional.aws_fixtures import WEBHOOK_SECRET, AwsResources, drain

CONTEXT = LocalLambdaContext("test", 30)
READ_TIMEOUT_SECONDS = 1.0


# ---- hostile bodies ----


def deep_body(levels: int = 5000) -> bytes:
    """A Stripe-shaped event whose object nests `levels` arrays deep."""
    return (
        b'{"id":"evt_deep","object":"event","type":"customer.created","data":{"object":'
        + b"[" * levels
        + b"]" * levels
        + b"}}"
    )


def lone_surrogate_body() -> bytes:
    payload = load_event("stripe_customer_created")
    payload["data"]["object"]["name"] = "SURROGATE"
    return event_payload(payload).replace(b"SURROGATE", b"\\ud800")


INVALID_ENCODINGS = {
    "invalid-utf8": event_payload(load_event("stripe_customer_created")).replace(b"{", b"{\xff", 1),
    "utf16-bom": b"\xff\xfe" + json.dumps(load_event("stripe_customer_created")).encode("utf-16-le"),
    "utf8-bom": b"\xef\xbb\xbf" + event_payload(load_event("stripe_customer_created")),
}
UNPARSEABLE = {"too-deep": deep_body(), "lone-surrogate": lone_surrogate_body()}


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> str:
    return sign_stripe_payload(body, secret, int(time.time()))


# ---- the ingest handler on moto ----


def invoke(body: bytes, signature: str | None, *, method: str = "POST") -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["Stripe-Signature"] = signature
    event = api_gateway_event(method=method, path="/webhooks/stripe", headers=headers, body=body, source_ip="127.0.0.1")
    response = stripe_webhook.lambda_handler(event, CONTEXT)
    return response["statusCode"], json.loads(response["body"])


def stored(aws: AwsResources) -> dict[str, Any]:
    """What the ingest path left behind: archived keys, lineage items, exception messages, bus events."""
    objects = aws.s3.list_objects_v2(Bucket=aws.bucket).get("Contents", [])
    return {
        "archive": [obj["Key"] for obj in objects],
        "lineage": aws.dynamodb.scan(TableName="lineage")["Items"],
        "exceptions": [json.loads(m["Body"]) for m in drain(aws.sqs, aws.exception_queue_url)],
        "published": drain(aws.sqs, aws.capture_queue_url),
    }


def assert_nothing_stored(aws: AwsResources) -> None:
    assert stored(aws) == {"archive": [], "lineage": [], "exceptions": [], "published": []}


@pytest.mark.parametrize("body", INVALID_ENCODINGS.values(), ids=INVALID_ENCODINGS.keys())
def test_handler_refuses_a_signed_body_that_is_not_utf8(aws: AwsResources, body: bytes) -> None:
    # GIVEN a correctly signed body that is not UTF-8 (or carries a byte order mark)
    # WHEN API Gateway invokes the ingest function
    status, answer = invoke(body, sign(body))
    # THEN 400 invalid_encoding and nothing archived, recorded or published
    assert (status, answer["error"]) == (400, "invalid_encoding"), answer
    assert answer["message"]
    assert_nothing_stored(aws)


@pytest.mark.parametrize("body", UNPARSEABLE.values(), ids=UNPARSEABLE.keys())
def test_handler_parks_a_signed_body_it_cannot_read_and_acknowledges_it(aws: AwsResources, body: bytes) -> None:
    # GIVEN a correctly signed body nested far deeper than the limit, or holding a lone surrogate
    # WHEN API Gateway invokes the ingest function
    status, answer = invoke(body, sign(body))
    # THEN 200 (Stripe stops retrying), the raw bytes archived, exactly one MALFORMED record
    assert (status, answer["outcome"]) == (200, "EXCEPTION"), answer
    after = stored(aws)
    [key] = after["archive"]
    assert aws.s3.get_object(Bucket=aws.bucket, Key=key)["Body"].read() == body
    [lineage] = after["lineage"]
    assert (lineage["status"]["S"], lineage["category"]["S"]) == ("EXCEPTION", "MALFORMED")
    [parked] = after["exceptions"]
    assert parked["category"] == "MALFORMED"
    assert parked["source_event_id"] == answer["source_event_id"]
    assert after["published"] == []


def test_handler_depth_limit_is_exact(aws: AwsResources) -> None:
    # GIVEN signed bodies nested exactly at the limit and one level deeper (the envelope is two levels)
    at_limit, over = deep_body(MAX_JSON_DEPTH - 2), deep_body(MAX_JSON_DEPTH - 1)
    # WHEN both arrive
    for body in (at_limit, over):
        assert invoke(body, sign(body))[0] == 200
    # THEN only the deeper one is parked for its depth (the other fails normalisation as a customer)
    reasons = sorted(record["reason"] for record in stored(aws)["exceptions"])
    assert len(reasons) == 2
    assert sum(f"deeper than {MAX_JSON_DEPTH} levels" in reason for reason in reasons) == 1


@pytest.mark.parametrize("body", UNPARSEABLE.values(), ids=UNPARSEABLE.keys())
def test_handler_refuses_an_unreadable_body_without_a_valid_signature(aws: AwsResources, body: bytes) -> None:
    # GIVEN the same bodies unsigned, and signed with another secret
    # WHEN / THEN 400 or 401, the body never parsed, and nothing stored
    status, answer = invoke(body, None)
    assert (status, answer["error"]) == (400, "missing_signature")
    status, answer = invoke(body, sign(body, "whsec_someone_else"))
    assert (status, answer["error"]) == (401, "invalid_signature")
    assert_nothing_stored(aws)


def test_handler_answers_405_to_another_method_on_the_webhook(aws: AwsResources) -> None:
    # GIVEN a GET and a PUT on the webhook resource (a proxy integration would pass them through)
    for method in ("GET", "PUT"):
        # WHEN the function is invoked with them
        response = stripe_webhook.lambda_handler(
            api_gateway_event(method=method, path="/webhooks/stripe", headers={}, body=b"", source_ip="127.0.0.1"),
            CONTEXT,
        )
        # THEN 405 with a JSON error and an Allow header, and nothing stored
        assert response["statusCode"] == 405
        assert response["headers"]["Allow"] == "POST"
        assert json.loads(response["body"])["error"] == "method_not_allowed"
    assert_nothing_stored(aws)


def test_handler_refuses_a_body_that_is_not_base64_though_flagged_so(aws: AwsResources) -> None:
    # GIVEN a proxy event flagged base64 whose body is not base64
    event = api_gateway_event(method="POST", path="/webhooks/stripe", headers={}, body=b"\xff", source_ip="127.0.0.1")
    event["body"] = "not base64!"
    # WHEN / THEN a 400, never an unhandled error
    response = stripe_webhook.lambda_handler(event, CONTEXT)
    assert (response["statusCode"], json.loads(response["body"])["error"]) == (400, "invalid_encoding")
    assert_nothing_stored(aws)


# ---- the local endpoint, over real HTTP ----


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    with LocalRuntime(
        work_dir=Path("build/local"), sweep_interval_seconds=3600, log_level="ERROR", read_timeout_seconds=1.0
    ) as running:
        yield running


def local_stored(runtime: LocalRuntime) -> dict[str, Any]:
    session = boto3.session.Session(region_name="us-east-1")
    s3 = session.client("s3")
    archived = [
        obj["Key"]
        for bucket in s3.list_buckets()["Buckets"]
        for obj in s3.list_objects_v2(Bucket=bucket["Name"]).get("Contents", [])
        if obj["Key"].startswith("raw/")
    ]
    lineage = session.client("dynamodb").scan(TableName=runtime.stack.outputs["LineageTableName"])["Items"]
    return {"archive": sorted(archived), "lineage": lineage}


@pytest.fixture
def before(runtime: LocalRuntime) -> dict[str, Any]:
    return local_stored(runtime)


def exchange(runtime: LocalRuntime, request: bytes, *, close_write: bool = False) -> tuple[int, dict[str, Any], float]:
    """Sends raw bytes to the local endpoint; returns the status, the JSON body and the seconds it took."""
    started = time.monotonic()
    with socket.create_connection((runtime.host, runtime.port), timeout=15) as connection:
        connection.sendall(request)
        if close_write:
            connection.shutdown(socket.SHUT_WR)
        response = b""
        while chunk := connection.recv(65536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body), time.monotonic() - started


def http_request(
    runtime: LocalRuntime, body: bytes, *, method: str = "POST", signature: str | None = None, **headers: str
) -> bytes:
    lines = [f"{method} /webhooks/stripe HTTP/1.1", f"Host: {runtime.host}:{runtime.port}", "Connection: close"]
    if signature is not None:
        lines.append(f"Stripe-Signature: {signature}")
    lines += [f"{name.replace('_', '-')}: {value}" for name, value in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


@pytest.mark.infra
@pytest.mark.parametrize("body", INVALID_ENCODINGS.values(), ids=INVALID_ENCODINGS.keys())
def test_local_refuses_a_signed_body_that_is_not_utf8(runtime: LocalRuntime, before: dict, body: bytes) -> None:
    # GIVEN a signed body that is not UTF-8, sent to the local endpoint
    request = http_request(runtime, body, signature=sign(body, runtime.webhook_secret), Content_Length=str(len(body)))
    # WHEN / THEN 400 invalid_encoding and nothing stored
    status, answer, _ = exchange(runtime, request)
    assert (status, answer["error"]) == (400, "invalid_encoding"), answer
    assert local_stored(runtime) == before


@pytest.mark.infra
@pytest.mark.parametrize("body", UNPARSEABLE.values(), ids=UNPARSEABLE.keys())
def test_local_parks_a_signed_body_it_cannot_read(runtime: LocalRuntime, before: dict, body: bytes) -> None:
    # GIVEN a signed body nested too deep, or with a lone surrogate
    request = http_request(runtime, body, signature=sign(body, runtime.webhook_secret), Content_Length=str(len(body)))
    # WHEN / THEN 200, parked with exactly one new archived object and one MALFORMED lineage record
    status, answer, _ = exchange(runtime, request)
    assert (status, answer["outcome"]) == (200, "EXCEPTION"), answer
    after = local_stored(runtime)
    assert len(after["archive"]) == len(before["archive"]) + 1
    [new] = [item for item in after["lineage"] if item not in before["lineage"]]
    assert (new["status"]["S"], new["category"]["S"]) == ("EXCEPTION", "MALFORMED")


@pytest.mark.infra
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"])
def test_local_answers_405_with_json_to_other_methods(runtime: LocalRuntime, before: dict, method: str) -> None:
    # GIVEN a request on the webhook path with another method
    status, answer, _ = exchange(runtime, http_request(runtime, b"", method=method, Content_Length="0"))
    # THEN 405 with a JSON error, nothing stored
    assert (status, answer["error"]) == (405, "method_not_allowed"), answer
    assert local_stored(runtime) == before


@pytest.mark.infra
def test_local_answers_400_after_a_short_timeout_when_content_length_lies(runtime: LocalRuntime, before: dict) -> None:
    # GIVEN a signed event whose Content-Length promises more bytes than are ever sent
    body = event_payload(load_event("stripe_customer_created"))
    request = http_request(
        runtime, body, signature=sign(body, runtime.webhook_secret), Content_Length=str(len(body) + 100)
    )
    # WHEN the client keeps the connection open and waits
    status, answer, took = exchange(runtime, request)
    # THEN 400 after the read timeout, not a hang, and the event was not processed
    assert (status, answer["error"]) == (400, "incomplete_body"), answer
    assert READ_TIMEOUT_SECONDS <= took < READ_TIMEOUT_SECONDS + 5
    assert local_stored(runtime) == before


@pytest.mark.infra
def test_local_answers_400_when_the_client_closes_before_content_length(runtime: LocalRuntime, before: dict) -> None:
    # GIVEN a lying Content-Length, and the client closes its side after the short body
    # WHEN / THEN 400 at once (no need to wait for the timeout) and nothing processed
    body = event_payload(load_event("stripe_customer_created"))
    request = http_request(
        runtime, body, signature=sign(body, runtime.webhook_secret), Content_Length=str(len(body) + 100)
    )
    status, answer, took = exchange(runtime, request, close_write=True)
    assert (status, answer["error"]) == (400, "incomplete_body"), answer
    assert took < READ_TIMEOUT_SECONDS
    assert local_stored(runtime) == before


@pytest.mark.infra
@pytest.mark.parametrize("length", ["abc", "-5", "1, 2", "9" * 30])
def test_local_refuses_a_content_length_that_is_no_length(runtime: LocalRuntime, before: dict, length: str) -> None:
    # GIVEN a Content-Length that is not one non-negative integer, or one far over the limit
    # WHEN / THEN 400 bad_content_length (or 413), nothing stored
    status, answer, _ = exchange(runtime, http_request(runtime, b"{}", Content_Length=length))
    expected = (413, "payload_too_large") if length.isdigit() else (400, "bad_content_length")
    assert (status, answer["error"]) == expected, answer
    assert local_stored(runtime) == before


@pytest.mark.infra
def test_local_answers_413_to_an_oversize_content_length_without_reading(runtime: LocalRuntime, before: dict) -> None:
    # GIVEN a request announcing a body over the limit, of which nothing is sent
    request = http_request(runtime, b"", signature="t=1,v1=00", Content_Length=str(MAX_WEBHOOK_BYTES + 1))
    # WHEN / THEN 413 at once, without waiting for the body
    status, answer, took = exchange(runtime, request)
    assert (status, answer["error"]) == (413, "payload_too_large"), answer
    assert took < READ_TIMEOUT_SECONDS
    assert local_stored(runtime) == before


def chunked(body: bytes, size: int = 1000) -> bytes:
    pieces = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(piece), piece) for piece in pieces) + b"0\r\n\r\n"


@pytest.mark.infra
def test_local_decodes_a_chunked_body_and_verifies_the_decoded_bytes(runtime: LocalRuntime, before: dict) -> None:
    # GIVEN a signed event sent with Transfer-Encoding: chunked
    payload = load_event("stripe_customer_created")
    payload["id"] = "evt_chunked_hostile_input"
    body = event_payload(payload)
    request = http_request(
        runtime, chunked(body), signature=sign(body, runtime.webhook_secret), Transfer_Encoding="chunked"
    )
    # WHEN / THEN accepted, the archive holding exactly the decoded bytes
    status, answer, _ = exchange(runtime, request)
    assert (status, answer["source_event_id"]) == (200, "evt_chunked_hostile_input"), answer
    assert "raw/stripe/evt_chunked_hostile_input.json" in local_stored(runtime)["archive"]
    # AND the same chunks signed over the chunked framing are refused
    status, answer, _ = exchange(
        runtime,
        http_request(
            runtime, chunked(body), signature=sign(chunked(body), runtime.webhook_secret), Transfer_Encoding="chunked"
        ),
    )
    assert (status, answer["error"]) == (401, "invalid_signature")


@pytest.mark.infra
@pytest.mark.parametrize(
    ("framing", "headers", "expected"),
    [
        pytest.param(
            b"zz\r\n{}\r\n0\r\n\r\n", {"Transfer_Encoding": "chunked"}, (400, "bad_chunked_body"), id="bad-size"
        ),
        pytest.param(b"5\r\n{}", {"Transfer_Encoding": "chunked"}, (400, "incomplete_body"), id="truncated"),
        pytest.param(
            b"%x\r\n" % (MAX_WEBHOOK_BYTES + 1), {"Transfer_Encoding": "chunked"}, (413, "payload_too_large"), id="huge"
        ),
        pytest.param(
            b"2\r\n{}\r\n0\r\n\r\n",
            {"Transfer_Encoding": "gzip, chunked"},
            (400, "unsupported_transfer_encoding"),
            id="gzip",
        ),
        pytest.param(
            b"2\r\n{}\r\n0\r\n\r\n",
            {"Transfer_Encoding": "chunked", "Content_Length": "2"},
            (400, "ambiguous_length"),
            id="both-lengths",
        ),
    ],
)
def test_local_refuses_a_bad_chunked_body(
    runtime: LocalRuntime, before: dict, framing: bytes, headers: dict[str, str], expected: tuple[int, str]
) -> None:
    # GIVEN a chunked body that is malformed, truncated, oversize, otherwise coded, or also has Content-Length
    # WHEN / THEN refused at the HTTP layer before any signature check, promptly, nothing stored
    status, answer, took = exchange(runtime, http_request(runtime, framing, signature="t=1,v1=00", **headers))
    assert (status, answer["error"]) == expected, answer
    assert took < READ_TIMEOUT_SECONDS + 5
    assert local_stored(runtime) == before
