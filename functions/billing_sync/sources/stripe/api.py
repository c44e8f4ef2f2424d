"""Read-only Stripe API adapter: implements the domain's SourceReader with a restricted key.

Only GETs: a balance transaction, a charge's balance transaction, the balance transactions a payout
settles, an invoice's lines and, for reconciliation, the objects of a collection created in a window,
paginated by `has_more` / `starting_after`. Money is parsed as strictly
as webhook payloads (integers only; `exchange_rate` a Decimal from the JSON number's text). A 404 is
"not there yet" (None); 429, 5xx, timeouts and refused connections raise StripeApiUnavailableError
(retried); 401/403 raise StripeApiAccessError (the key is wrong or lacks a permission: a person must fix it).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, TypeVar

import pydantic
from pydantic import BaseModel, ConfigDict, Field, Strict, StrictInt

from billing_sync.domain.errors import BillingSyncError, ExceptionCategory, PermanentPostingError, RetryablePostingError
from billing_sync.domain.events import InvoiceLine
from billing_sync.domain.ports import BalanceTransaction
from billing_sync.sources.stripe.wire import StripeInvoiceLine

DEFAULT_API_BASE = "https://api.stripe.com"
API_VERSION = "2025-10-29.clover"
"""The version the reader is written against (the samples' version); sent as `Stripe-Version`."""
DEFAULT_TIMEOUT_SECONDS = 5.0
PAGE_SIZE = 100
MAX_PAGES = 500  # 50,000 balance transactions in one payout: beyond that, something is wrong
LIST_COLLECTIONS = ("invoices", "invoice_payments", "credit_notes", "refunds", "balance_transactions")
"""The collections `list_created` reads for reconciliation."""


class StripeApiError:
    """What every Stripe API failure carries: HTTP status, Stripe error code and request id."""

    reason: str

    def __init__(
        self, reason: str, *, status: int | None = None, code: str | None = None, request_id: str | None = None
    ):
        BillingSyncError.__init__(self, reason)  # type: ignore[arg-type]
        self.status = status
        self.code = code
        self.request_id = request_id

    retryable: bool = False

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(reason={self.reason!r}, status={self.status!r}, code={self.code!r}, "
            f"request_id={self.request_id!r}, retryable={self.retryable!r})"
        )


class StripeApiUnavailableError(StripeApiError, RetryablePostingError):
    """429, 5xx, a timeout or no connection: retried with the queue's back-off."""

    category = ExceptionCategory.INTERNAL
    retryable = True


class StripeApiAccessError(StripeApiError, PermanentPostingError):
    """401/403 (or another 4xx than 404): the restricted key is wrong or lacks a read permission."""

    category = ExceptionCategory.INTERNAL


class StripeApiResponseError(StripeApiError, PermanentPostingError):
    """A 2xx answer that is not the object it should be (money not an integer, a field missing)."""

    category = ExceptionCategory.MALFORMED


# ---- wire models (tolerate unknown fields; money strict) --------------------------------------------


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, defer_build=True)


StrictDecimal = Annotated[Decimal, Strict()]
"""A decimal parsed from the JSON number's text (never through a float)."""


class _FeeDetail(_Wire):
    amount: StrictInt
    currency: str
    type: str


class _Source(_Wire):
    id: str
    object: str | None = None
    payment_intent: str | None = None


class _BalanceTransaction(_Wire):
    id: str = Field(pattern=r"^txn_")
    object: str
    type: str
    amount: StrictInt
    fee: StrictInt
    net: StrictInt
    currency: str
    created: StrictInt
    source: str | _Source | None = None
    exchange_rate: StrictDecimal | None = None
    reporting_category: str | None = None
    fee_details: list[_FeeDetail] = Field(default_factory=list)

    def domain(self) -> BalanceTransaction:
        source = self.source
        return BalanceTransaction(
            id=self.id,
            type=self.type,
            amount=self.amount,
            fee=self.fee,
            net=self.net,
            currency=self.currency.upper(),
            created=datetime.fromtimestamp(self.created, tz=UTC),
            source=source.id if isinstance(source, _Source) else source,
            exchange_rate=self.exchange_rate,
            reporting_category=self.reporting_category,
            fee_details=tuple((detail.type, detail.amount) for detail in self.fee_details),
            payment_intent=source.payment_intent if isinstance(source, _Source) else None,
        )


class _Charge(_Wire):
    id: str
    object: str
    payment_intent: str | None = None
    balance_transaction: str | _BalanceTransaction | None = None


_M = TypeVar("_M", bound=BaseModel)


class _Listed(_Wire):
    id: str
    object: str
    created: StrictInt


class _ListPage(_Wire):
    object: str
    data: list[dict[str, Any]]
    has_more: bool


# ---- the reader --------------------------------------------------------------------------------------


class StripeApiReader:
    """GETs against `base_url` with the key `api_key_provider` returns (read once per request, cached by it)."""

    def __init__(
        self,
        base_url: str,
        api_key_provider: Callable[[], str],
        *,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
        api_version: str = API_VERSION,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._key = api_key_provider
        self._timeout = timeout_seconds
        self._api_version = api_version

    def balance_transaction(self, balance_transaction_id: str) -> BalanceTransaction | None:
        found = self._get(f"/v1/balance_transactions/{_quote(balance_transaction_id)}", [("expand[]", "source")])
        return None if found is None else _parse(_BalanceTransaction, found).domain()

    def charge_balance_transaction(self, charge_id: str) -> BalanceTransaction | None:
        found = self._get(f"/v1/charges/{_quote(charge_id)}", [("expand[]", "balance_transaction")])
        if found is None:
            return None
        charge = _parse(_Charge, found)
        txn = charge.balance_transaction
        if txn is None:
            return None  # not captured yet
        if isinstance(txn, str):
            fetched = self.balance_transaction(txn)
            if fetched is None:
                return None
            return _with_payment_intent(fetched, charge.payment_intent)
        return _with_payment_intent(txn.domain(), charge.payment_intent)

    def payout_balance_transactions(self, payout_id: str) -> list[BalanceTransaction] | None:
        pages = self._list("/v1/balance_transactions", [("payout", payout_id), ("expand[]", "data.source")])
        if pages is None:
            return None
        return [_parse(_BalanceTransaction, item).domain() for item in pages]

    def invoice_lines(self, invoice_id: str) -> list[dict[str, Any]] | None:
        return self._list(f"/v1/invoices/{_quote(invoice_id)}/lines", [])

    def complete_invoice_lines(self, invoice_id: str) -> tuple[InvoiceLine, ...] | None:
        """The invoice's lines read the way its webhook's lines are (same wire model and mapping)."""
        from billing_sync.sources.stripe.invoices import invoice_line

        raw = self.invoice_lines(invoice_id)
        if raw is None:
            return None
        return tuple(invoice_line(_parse(StripeInvoiceLine, line)) for line in raw)

    def list_created(self, collection: str, start: datetime, end: datetime) -> list[dict[str, Any]]:
        """Every object of `collection` created in [start, end) (Stripe's `created[gte]` / `created[lt]`), each
        with an `id` and an integer `created`; raises ValueError for a collection it does not list."""
        if collection not in LIST_COLLECTIONS:
            raise ValueError(f"{collection!r} is not one of {LIST_COLLECTIONS}")
        window = [("created[gte]", str(int(start.timestamp()))), ("created[lt]", str(int(end.timestamp())))]
        items = self._list(f"/v1/{collection}", window)
        if items is None:
            raise StripeApiResponseError(f"GET /v1/{collection}: Stripe answered 404 to a list request")
        for item in items:
            _parse(_Listed, item)
        return items

    # ---- HTTP ----

    def _list(self, path: str, params: list[tuple[str, str]]) -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = []
        after: str | None = None
        for _ in range(MAX_PAGES):
            query = [*params, ("limit", str(PAGE_SIZE))] + ([("starting_after", after)] if after else [])
            found = self._get(path, query)
            if found is None and after is not None:
                raise StripeApiUnavailableError(f"GET {path}: the list vanished after {after}; read it again")
            if found is None:
                return None
            page = _parse(_ListPage, found)
            items.extend(page.data)
            if not page.has_more or not page.data:
                return items
            last = page.data[-1].get("id")
            if not isinstance(last, str):
                raise StripeApiResponseError(f"GET {path}: a list item has no id to continue after")
            after = last
        raise StripeApiResponseError(f"GET {path}: more than {MAX_PAGES} pages")

    def _get(self, path: str, params: list[tuple[str, str]]) -> dict[str, Any] | None:
        url = f"{self._base}{path}" + (f"?{urllib.parse.urlencode(params)}" if params else "")
        request = urllib.request.Request(
            url,
            headers={
                "Authorization": f"Bearer {self._key()}",
                "Stripe-Version": self._api_version,
                "Accept": "application/json",
                "User-Agent": "billing-sync (read-only)",
            },
            method="GET",
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                body = response.read()
        except urllib.error.HTTPError as exc:
            _raise_unless_missing(path, exc)
            return None
        except (TimeoutError, urllib.error.URLError, ConnectionError) as exc:
            raise StripeApiUnavailableError(f"GET {path}: Stripe API unreachable: {exc}") from exc
        try:
            document = json.loads(body, parse_float=Decimal)
        except ValueError as exc:
            raise StripeApiResponseError(f"GET {path}: the answer is not JSON") from exc
        if not isinstance(document, dict):
            raise StripeApiResponseError(f"GET {path}: the answer is not a JSON object")
        return document


def _raise_unless_missing(path: str, exc: urllib.error.HTTPError) -> None:
    """Returns for a 404 (not there yet); otherwise raises the typed error for the status."""
    status = exc.code
    request_id = exc.headers.get("Request-Id") if exc.headers else None
    code = None
    try:
        error = json.loads(exc.read() or b"{}").get("error") or {}
        code = error.get("code") or error.get("type")
        message = error.get("message")
    except (ValueError, AttributeError):
        message = None
    if status == 404:
        return None
    reason = f"GET {path}: Stripe answered {status}" + (f" ({message})" if message else "")
    if status == 429 or status >= 500:
        raise StripeApiUnavailableError(reason, status=status, code=code, request_id=request_id) from exc
    if status in (401, 403):
        reason += ": check the restricted key and its read permissions (balance, charges, payouts, invoices)"
    raise StripeApiAccessError(reason, status=status, code=code, request_id=request_id) from exc


def _parse(model: type[_M], data: dict[str, Any]) -> _M:
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "object"
        raise StripeApiResponseError(
            f"Stripe {model.__name__.strip('_')} {data.get('id')}: {where}: {first['msg']}"
        ) from exc


def _with_payment_intent(txn: BalanceTransaction, payment_intent: str | None) -> BalanceTransaction:
    if payment_intent is None or txn.payment_intent is not None:
        return txn
    return replace(txn, payment_intent=payment_intent)


def _quote(object_id: str) -> str:
    return urllib.parse.quote(object_id, safe="")
