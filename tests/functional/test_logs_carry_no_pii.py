"""No log line carries customer or card data, even with debugging switched fully on.

The demo's payloads go through the functions as in the local demo: signed webhooks (and one refused),
the partner bus, posting (what fails is parked or retried), the waiting-room sweep and a partner delivery
Lambda gave up on. Logging runs at DEBUG with every Lambda event logged (POWERTOOLS_LOGGER_LOG_EVENT),
and what the Powertools logger writes, what any other logger emits (root at DEBUG) and the process's
stdout/stderr are searched for every e-mail address, name, phone, street and card field of the input.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import io
import json
import logging
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from billing_sync.domain.errors import ErpRejectedError, ErpTransientError
from billing_sync.domain.journal import ErpCustomer, ErpRef
from billing_sync.erp.ledger import DynamoLedgerErpClient
from billing_sync.handlers import (
    park_failed_delivery,
    post_to_erp,
    stripe_partner_events,
    stripe_webhook,
    sweep_waiting_room,
)
from billing_sync.observability import logger
from billing_sync_ops.demo import DEMO_SEQUENCE
from billing_sync_ops.lambda_runtime import LocalLambdaContext, api_gateway_event, sqs_event
from tests.builders import EVENTS_DIR, event_payload, load_event, sign_stripe_payload
from tests.functional.aws_fixtures import WEBHOOK_SECRET, AwsResources, drain

CONTEXT = LocalLambdaContext("test", 30)
HANDLERS = (stripe_webhook, stripe_partner_events, post_to_erp, park_failed_delivery, sweep_waiting_room)
EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
CARD_FIELDS = frozenset({"last4", "brand", "exp_month", "exp_year", "fingerprint"})
PERSON_FIELDS = frozenset({"phone", "customer_phone", "line1", "customer_name"})
# Test machinery, not the functions: moto's in-process AWS logs what it is sent.
NOT_THE_FUNCTIONS = ("moto", "werkzeug", "responses")


def sample_names() -> list[str]:
    others = sorted(p.stem for p in EVENTS_DIR.glob("stripe_*.json") if p.stem not in DEMO_SEQUENCE)
    return [*DEMO_SEQUENCE, *others]


def _walk(value: Any, key: str = "", parent: dict[str, Any] | None = None) -> Iterator[tuple[str, Any, dict]]:
    if isinstance(value, dict):
        for name, item in value.items():
            yield from _walk(item, name, value)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item, key, parent)
    else:
        yield key, value, parent or {}


def sensitive_values(payloads: list[dict[str, Any]]) -> tuple[set[str], set[tuple[str, str]]]:
    """What must never be logged: text values (e-mails, names, phones, streets, card fingerprints) and
    card fields whose values are too short to search alone (last4, brand, expiry) as `key: value`."""
    anywhere: set[str] = set()
    as_pairs: set[tuple[str, str]] = set()
    for payload in payloads:
        for key, value, parent in _walk(payload):
            if value is None or isinstance(value, bool):
                continue
            text = str(value)
            anywhere.update(EMAIL.findall(text))
            customer_name = key == "name" and parent.get("object") == "customer"
            if key in PERSON_FIELDS or customer_name or key == "fingerprint":
                anywhere.add(text)
            elif key in CARD_FIELDS:
                as_pairs.add((key, text))
    return anywhere, as_pairs


class CapturedLogs:
    def __init__(self) -> None:
        self.powertools = io.StringIO()
        self.others = io.StringIO()

    def text(self) -> str:
        return self.powertools.getvalue() + self.others.getvalue()


@contextlib.contextmanager
def debugging_everything(monkeypatch: pytest.MonkeyPatch) -> Iterator[CapturedLogs]:
    """DEBUG everywhere and every Lambda event logged, as an operator would switch on to debug."""
    captured = CapturedLogs()
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    for module in HANDLERS:  # the decorator reads POWERTOOLS_LOGGER_LOG_EVENT when a handler is defined
        importlib.reload(module)
    service_logger = logging.getLogger(logger.name)
    level = service_logger.level
    logger.setLevel("DEBUG")
    stream = logger.registered_handler.setStream(captured.powertools)  # type: ignore[attr-defined]
    root = logging.getLogger()
    root_level = root.level
    others = logging.StreamHandler(captured.others)
    others.setLevel(logging.DEBUG)
    others.addFilter(lambda record: not record.name.startswith(NOT_THE_FUNCTIONS))
    others.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root.addHandler(others)
    root.setLevel(logging.DEBUG)
    try:
        yield captured
    finally:
        root.removeHandler(others)
        root.setLevel(root_level)
        logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]
        service_logger.setLevel(level)
        monkeypatch.delenv("POWERTOOLS_LOGGER_LOG_EVENT")
        for module in HANDLERS:
            importlib.reload(module)


def webhook(body: bytes, secret: str = WEBHOOK_SECRET) -> dict[str, Any]:
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": sign_stripe_payload(body, secret, int(time.time())),
    }
    event = api_gateway_event(method="POST", path="/webhooks/stripe", headers=headers, body=body, source_ip="127.0.0.1")
    return stripe_webhook.lambda_handler(event, CONTEXT)


def partner_event(stripe_event: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": "6c1e7b2f-3a66-4c9b-8eae-1f9c2e8d7d4b",
        "detail-type": stripe_event["type"],
        "source": "aws.partner/stripe.com/ed_61SbvJ3hpUH5tlrmF16Sb7FaF7Mb",
        "account": "123456789012",
        "time": "2026-11-01T00:00:04Z",
        "region": "us-east-1",
        "resources": [],
        "detail": stripe_event,
    }


def failure_record(stripe_event: dict[str, Any]) -> dict[str, Any]:
    """A Lambda on-failure record the parking function cannot read: the request payload came as text, so
    the reason quotes the start of the record (the customer's e-mail and name within it)."""
    return {
        "requestPayload": json.dumps({"detail": stripe_event["data"]["object"]}),
        "version": "1.0",
        "timestamp": "2026-11-01T00:05:00.000Z",
        "requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
        "responsePayload": {"errorMessage": f"could not take {stripe_event['data']['object'].get('email')}"},
    }


def failing_erp(upsert: Callable[[Any, ErpCustomer], ErpRef]) -> Callable[[Any, ErpCustomer], ErpRef]:
    """The ERP refuses two customers and quotes their data back, as ERPs do: one for now (throttled), one
    for a field it rejects; posting logs both failures and the records return to the queue."""

    def upsert_customer(erp: Any, customer: ErpCustomer) -> ErpRef:
        said = f"customer {customer.name} <{customer.email}>"
        if customer.email and customer.email.endswith(".de"):
            raise ErpTransientError(f"503 while saving {said}", status=503, erp_code="SSS_REQUEST_LIMIT_EXCEEDED")
        if customer.email and customer.email.endswith(".kw"):
            raise ErpRejectedError(f"invalid field value for {said}", status=400, erp_code="INVALID_FLD_VALUE")
        return upsert(erp, customer)

    return upsert_customer


def run_the_demo_flows(aws: AwsResources, names: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(DynamoLedgerErpClient, "upsert_customer", failing_erp(DynamoLedgerErpClient.upsert_customer))
    for name in names:
        response = webhook(event_payload(load_event(name)))
        assert response["statusCode"] == 200, (name, response["body"])
    customer = load_event("stripe_customer_created")
    assert webhook(event_payload(customer), secret="whsec_someone_else")["statusCode"] == 401
    for name in ("stripe_customer_created_eu", "stripe_charge_succeeded", "stripe_payment_method_attached"):
        stripe_partner_events.lambda_handler(partner_event(load_event(name)), CONTEXT)
    while messages := drain(aws.sqs, aws.capture_queue_url):
        for start in range(0, len(messages), 10):
            post_to_erp.lambda_handler(sqs_event(messages[start : start + 10], "arn:aws:sqs:::posting"), CONTEXT)
    sweep_waiting_room.lambda_handler({}, CONTEXT)
    park_failed_delivery.lambda_handler(failure_record(customer), CONTEXT)


def test_no_log_line_carries_customer_or_card_data(
    aws: AwsResources, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    # GIVEN every sample payload, with what in it must never reach a log
    names = sample_names()
    anywhere, as_pairs = sensitive_values([load_event(name) for name in names])
    assert {"billing@brightline-analytics.example.com", "+15125550183", "600 Congress Avenue"} <= anywhere
    assert {("brand", "visa"), ("last4", "4242")} <= as_pairs

    # WHEN the demo's flows run with debugging switched fully on
    with debugging_everything(monkeypatch) as logs:
        run_the_demo_flows(aws, names, monkeypatch)
    out, err = capfd.readouterr()
    text = logs.text() + out + err

    # THEN the payloads went through the logger (the events were logged) ...
    assert '"resource":"/webhooks/stripe"' in text and "evt_1QH6KZNx4RkL2mQemUSGRWS1" in text
    assert "partner delivery parked" in text and "event failed; scheduled to return" in text
    assert "SSS_REQUEST_LIMIT_EXCEEDED" in text and "INVALID_FLD_VALUE" in text
    # ... and nothing in the logs is a person's or a card's data
    assert [value for value in sorted(anywhere) if value.lower() in text.lower()] == []
    assert EMAIL.findall(text) == []
    leaked_pairs = [
        (key, value)
        for key, value in sorted(as_pairs)
        if re.search(rf"""\b{key}\b['"\\]*\s*[:=]\s*['"\\]*{re.escape(value)}\b""", text)
    ]
    assert leaked_pairs == []


def test_an_erased_event_keeps_what_an_operator_needs(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a customer webhook as API Gateway hands it to the function
    payload = load_event("stripe_customer_created")
    body = event_payload(payload)
    buffer = io.StringIO()
    stream = logger.registered_handler.setStream(buffer)  # type: ignore[attr-defined]
    try:
        # WHEN the event is logged
        logger.warning({"body": body.decode(), "path": "/webhooks/stripe"})
    finally:
        logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]

    # THEN the body stays JSON with its ids and types, the customer's data erased
    line = json.loads(buffer.getvalue())
    logged = json.loads(line["message"]["body"])
    assert (logged["id"], logged["type"]) == (payload["id"], "customer.created")
    customer = logged["data"]["object"]
    assert customer["id"] == payload["data"]["object"]["id"]
    assert customer["email"] == customer["name"] == customer["address"] == "*****"


def test_a_base64_body_is_erased_whole() -> None:
    # GIVEN a webhook API Gateway passed on base64-encoded
    body = base64.b64encode(event_payload(load_event("stripe_customer_created"))).decode()
    buffer = io.StringIO()
    stream = logger.registered_handler.setStream(buffer)  # type: ignore[attr-defined]
    try:
        # WHEN the event is logged
        logger.warning({"body": body, "isBase64Encoded": True})
    finally:
        logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]

    # THEN the body, which masking cannot read, is not in the log at all
    assert json.loads(buffer.getvalue())["message"] == {"body": "*****", "isBase64Encoded": True}


class Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("no text")


def test_a_line_that_cannot_be_masked_is_withheld_and_the_invocation_goes_on() -> None:
    # GIVEN a log line with an extra that has no text
    buffer = io.StringIO()
    stream = logger.registered_handler.setStream(buffer)  # type: ignore[attr-defined]
    try:
        # WHEN it is logged
        logger.warning("customer jane@example.com", extra={"customer": Unprintable()})
    finally:
        logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]

    # THEN the line says it was withheld, and nothing of it is written
    line = json.loads(buffer.getvalue())
    assert line["message"] == "log line withheld: it could not be masked"
    assert "customer" not in line and "jane" not in buffer.getvalue()
