"""Shared Powertools logger and metrics; names and namespaces come from POWERTOOLS_* variables.

No X-Ray SDK: importing it costs about 0.45 s of cold start per function (measured with
`python -X importtime`), more than the rest of a handler. Lambda's active tracing still records each
invocation's segment; structured logs carry the correlation id across the pipeline.

No log line carries customer or card data. Every record of the logger passes through `masked`
(Powertools data masking) before any handler sees it: message, extras, exception text and, when
POWERTOOLS_LOGGER_LOG_EVENT is switched on to debug, the whole Lambda event. The SDK's DEBUG lines echo
request and response bodies (the raw webhook on the archive PUT, customers in DynamoDB), so the SDK's
loggers stay at WARNING (what the deployed functions run at) even when the function's level is lowered to
debug it.
"""

from __future__ import annotations

import json
import logging
import traceback
from functools import cache
from typing import Any

from aws_lambda_powertools import Logger, Metrics

# Keys whose values are a person's or a card's data wherever they appear: Stripe objects (customer,
# invoice, charge, payment method), canonical events and ERP customers.
PII_KEYS = frozenset(
    {
        "email",
        "customer_email",
        "receipt_email",
        "name",
        "customer_name",
        "phone",
        "customer_phone",
        "address",
        "customer_address",
        "line1",
        "line2",
        "postal_code",
        "shipping",
        "customer_shipping",
        "shipping_details",
        "billing_details",
        "tax_ids",
        "customer_tax_ids",
        "card",
        "payment_method_details",
        "last4",
        "dynamic_last4",
        "brand",
        "exp_month",
        "exp_year",
        "fingerprint",
        "iin",
    }
)
_ERASED = "*****"
_EMAIL = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+"
# `"last4": "4242"`, `'brand': 'visa'`, `exp_year=2029` inside free text (an exception message, a repr),
# also where the quotes are escaped (JSON quoted inside a message).
_PII_KEY = "|".join(sorted(PII_KEYS, key=len, reverse=True))
_KEY_VALUE = rf"""(?i)([\\'"]*\b(?:{_PII_KEY})\b[\\'"]*\s*[:=]\s*)(\\*['"].*?['"]|[^\s,;)}}\]]+)"""
_SDK_LOGGERS = ("boto3", "botocore", "s3transfer", "urllib3")


@cache
def _masker() -> Any:
    # Imported on the first record that needs it: jsonpath-ng is not on the cold path of every function.
    from aws_lambda_powertools.utilities.data_masking import DataMasking

    return DataMasking()


def _masked_text(text: str) -> str:
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            parsed = json.loads(text)
        except ValueError:
            pass
        else:
            return json.dumps(masked(parsed), separators=(",", ":"), default=str)
    if "@" in text:
        text = _masker().erase(text, regex_pattern=_EMAIL, mask_format=_ERASED)
    if any(key in text for key in PII_KEYS):
        text = _masker().erase(text, regex_pattern=_KEY_VALUE, mask_format=rf"\g<1>{_ERASED}")
    return text


def masked(value: Any) -> Any:
    """`value` as a log line may show it, with customer and card data erased: the values of PII_KEYS at
    any depth, e-mail addresses and `key: value` pairs of PII_KEYS in text, and the same inside JSON
    carried as text (an API Gateway or SQS body; a base64 body is erased whole). Other objects are shown
    as their text, as the logger's JSON default would."""
    if isinstance(value, dict):
        # A base64 body (API Gateway's isBase64Encoded) cannot be read for what to keep: erased whole.
        opaque = {"body"} if value.get("isBase64Encoded") is True else set()
        return {
            key: _masker().erase(item)
            if item is not None and (str(key).lower() in PII_KEYS or key in opaque)
            else masked(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [masked(item) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return _masked_text(value if isinstance(value, str) else str(value))


def error_fields(exc: BaseException) -> dict[str, Any]:
    """What a log line says of a failure: its class and, where the error has them, category, retryable,
    and the ERP's status, code and request id. Never the message: an ERP quotes the customer it refused,
    and the reason is on the event's lineage and exception record for whoever may read it."""
    fields: dict[str, Any] = {"type": type(exc).__name__}
    for name in ("category", "retryable", "status", "erp_code", "request_id"):
        value = getattr(exc, name, None)
        if value is not None:
            fields[name] = value
    return fields


_RECORD_ATTRIBUTES = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class MaskingFilter(logging.Filter):
    """Masks a record in place before any handler sees it (the logger's own, and the root's it propagates
    to): message and arguments, extras, and the exception, which becomes masked text. A record that cannot
    be masked is withheld, never written as it is and never failing the invocation."""

    def filter(self, record: logging.LogRecord) -> bool:
        extras = record.__dict__.keys() - _RECORD_ATTRIBUTES
        try:
            _mask_record(record, extras)
        except Exception:  # a log line must not fail the invocation it describes
            for name in extras:
                delattr(record, name)
            record.msg, record.args = "log line withheld: it could not be masked", ()
            record.exc_info = record.exc_text = None
        return True


def _mask_record(record: logging.LogRecord, extras: set[str]) -> None:
    if record.args:
        record.msg, record.args = record.getMessage(), ()
    record.msg = masked(record.msg)
    for name in extras:
        setattr(record, name, masked(record.__dict__[name]))
    if record.exc_info and record.exc_info[0] is not None:
        kind = record.exc_info[0].__name__
        text = masked("".join(traceback.format_exception(*record.exc_info)).rstrip())
        # The exception object itself (its message, Powertools' structured stack trace) never reaches a
        # handler: only the masked text, where both JSON and plain formatters show it.
        record.exc_info, record.exc_text = None, text
        record.exception, record.exception_name = text, kind


def quiet_sdk_loggers() -> None:
    """Keeps the AWS SDK's DEBUG lines (request and response bodies) out of the function's logs."""
    for name in _SDK_LOGGERS:
        sdk_logger = logging.getLogger(name)
        if sdk_logger.level < logging.WARNING:  # NOTSET included: it would follow the root's level down
            sdk_logger.setLevel(logging.WARNING)


logger = Logger(service="billing-sync")
logger.addFilter(MaskingFilter())
metrics = Metrics(namespace="BillingSync", service="billing-sync")
quiet_sdk_loggers()
