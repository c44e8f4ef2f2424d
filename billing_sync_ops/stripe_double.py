"""A local double of the read-only Stripe API the posting function uses, served on 127.0.0.1.

It serves a directory of JSON files. A file holds one Stripe object or a list of them (balance
transactions, charges, payouts, disputes, invoices), or a list object as Stripe answered a list request,
its `url` naming the request it answers (`/v1/balance_transactions?payout=po_…`,
`/v1/invoices/in_…/lines`). Objects are found by id under their collection (`/v1/charges/ch_…`); a
collection with no recorded list (`/v1/invoices?created[gte]=…&created[lt]=…`) lists every object of its type
the double holds, newest first as Stripe does, filtered by `created`; lists honour `limit` and `starting_after`;
`expand[]` replaces an id by the object when the double holds it.
Unknown ids answer 404 as Stripe does; a request without a bearer key answers 401.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import urllib.parse
from collections.abc import Iterable, Mapping
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

COLLECTIONS = {
    "balance_transactions": "balance_transaction",
    "charges": "charge",
    "payouts": "payout",
    "disputes": "dispute",
    "invoices": "invoice",
    "refunds": "refund",
    "invoice_payments": "invoice_payment",
    "credit_notes": "credit_note",
}
LIST_FILTERS = ("payout", "source", "type")
"""Query parameters that select a recorded list; paging and expansion parameters do not."""
MAX_LIMIT = 100


class StripeDouble:
    """`start()`, point a StripeApiReader at `url`, `stop()`; `fail_next(503)` makes the next answers fail."""

    def __init__(self, fixtures: Path | None = None, *, objects: Iterable[Mapping[str, Any]] = ()) -> None:
        self._objects: dict[str, dict[str, Any]] = {}
        self._lists: dict[tuple[str, tuple[tuple[str, str], ...]], list[dict[str, Any]]] = {}
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self.requests: list[str] = []
        if fixtures is not None:
            for path in sorted(fixtures.glob("*.json")):
                self.add(json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal))
        for item in objects:
            self.add(item)
        self._server: ThreadingHTTPServer | None = None

    def add(self, document: Mapping[str, Any] | list[Any]) -> None:
        """Adds an object, a list of objects, or a recorded list answer (an object `list` with a `url`)."""
        if isinstance(document, list):
            for item in document:
                self.add(item)
            return
        if document.get("object") == "list":
            path, query = _list_key(str(document["url"]))
            items = [dict(item) for item in document.get("data", [])]
            self._lists.setdefault((path, query), []).extend(items)
            for item in items:
                self.add(item)
            return
        self._objects[str(document["id"])] = dict(document)

    def fail_next(self, status: int, times: int = 1) -> None:
        """The next `times` requests answer `status` (a 503, a 429) before the double answers again."""
        with self._lock:
            self._failures.extend([status] * times)

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the double first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> StripeDouble:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = double.answer(self.path, self.headers.get("Authorization"))
                payload = _dumps(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("Request-Id", f"req_double_{len(double.requests)}")
                self.end_headers()
                # A reader that gave up (its timeout passed) has closed the connection: nothing to answer.
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="stripe-double", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> StripeDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- answers ----

    def answer(self, raw_path: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.requests.append(raw_path)
            failure = self._failures.pop(0) if self._failures else None
        if failure is not None:
            return failure, _error("api_error", None, f"injected failure {failure}")
        if not authorization or not authorization.startswith("Bearer ") or not authorization[7:].strip():
            return 401, _error("invalid_request_error", None, "You did not provide an API key.")
        parsed = urllib.parse.urlsplit(raw_path)
        params = urllib.parse.parse_qs(parsed.query)
        expand = params.get("expand[]", [])
        parts = [part for part in parsed.path.split("/") if part]
        if len(parts) == 3 and parts[0] == "v1" and parts[1] in COLLECTIONS:
            found = self._objects.get(urllib.parse.unquote(parts[2]))
            if found is None or found.get("object") != COLLECTIONS[parts[1]]:
                return 404, _missing(COLLECTIONS[parts[1]], parts[2])
            return 200, self._expanded(found, expand)
        path, query = _list_key(raw_path)
        items = self._lists.get((path, query))
        if items is None:
            payout = dict(query).get("payout")
            if payout is not None and payout not in self._objects:
                return 404, _missing("payout", payout)
            if len(parts) == 4 and parts[1] == "invoices" and parts[3] == "lines":
                return 404, _missing("invoice", parts[2])
            if len(parts) != 2 or parts[1] not in COLLECTIONS:
                return 404, _error("invalid_request_error", None, f"Unrecognized request URL (GET: {path})")
            items = [] if query else self._collection(COLLECTIONS[parts[1]], params)
        return 200, self._page(path, items, params, expand)

    def _collection(self, kind: str, params: dict[str, list[str]]) -> list[dict[str, Any]]:
        """Every held object of `kind` within `created[gte]` / `created[lt]` (and `created[gt]` / `created[lte]`)."""
        bounds = {
            op: int(params[f"created[{op}]"][0]) for op in ("gte", "gt", "lt", "lte") if f"created[{op}]" in params
        }

        def within(created: int) -> bool:
            return (
                created >= bounds.get("gte", created)
                and created > bounds.get("gt", created - 1)
                and created < bounds.get("lt", created + 1)
                and created <= bounds.get("lte", created)
            )

        with self._lock:
            found = [item for item in self._objects.values() if item.get("object") == kind]
        found = [item for item in found if isinstance(item.get("created"), int) and within(item["created"])]
        return sorted(found, key=lambda item: (-item["created"], str(item["id"])))

    def _page(
        self, path: str, items: list[dict[str, Any]], params: dict[str, list[str]], expand: list[str]
    ) -> dict[str, Any]:
        limit = max(1, min(MAX_LIMIT, int(params.get("limit", ["10"])[0])))
        start = 0
        if after := params.get("starting_after", [None])[0]:
            ids = [item["id"] for item in items]
            start = ids.index(after) + 1 if after in ids else len(items)
        page = items[start : start + limit]
        item_expand = [entry.removeprefix("data.") for entry in expand if entry.startswith("data.")]
        return {
            "object": "list",
            "url": path,
            "has_more": start + limit < len(items),
            "data": [self._expanded(item, item_expand) for item in page],
        }

    def _expanded(self, found: dict[str, Any], expand: list[str]) -> dict[str, Any]:
        result = dict(found)
        for field in expand:
            value = result.get(field)
            if isinstance(value, str) and value in self._objects:
                result[field] = dict(self._objects[value])
        return result


def _dumps(body: dict[str, Any]) -> bytes:
    """JSON with each Decimal written as the number it is (an `exchange_rate` keeps its digits)."""

    def token(value: Any) -> str:
        if isinstance(value, Decimal):
            return f"__decimal__{value}__"
        raise TypeError(f"{type(value).__name__} is not JSON")

    text = json.dumps(body, default=token)
    return re.sub(r'"__decimal__([-+0-9.eE]+)__"', r"\1", text).encode()


def _list_key(url: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    parsed = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qsl(parsed.query)
    return parsed.path, tuple(sorted((name, value) for name, value in query if name in LIST_FILTERS))


def _error(kind: str, code: str | None, message: str) -> dict[str, Any]:
    return {"error": {"type": kind, "code": code, "message": message}}


def _missing(kind: str, object_id: str) -> dict[str, Any]:
    return _error("invalid_request_error", "resource_missing", f"No such {kind}: '{object_id}'")
