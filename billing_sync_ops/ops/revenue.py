"""`billing-sync recognize` and `billing-sync revenue show`: the revenue recognition job, run by hand.

`recognize --through DATE` posts every month of deferred revenue that ended on or before DATE and is not
posted yet (one journal per source document and month; a second run posts nothing twice). `revenue show
INVOICE` prints an invoice's schedule: per obligation its amount, period, what was recognised at posting
and by month, and what the recognition job has released so far.

`deferred_roll_forward` reads the deferred revenue roll-forward per legal entity and currency off the
ledger (the run report shows it): opening 0 + billed - recognised - credited = closing.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, cast

import pydantic

from billing_sync.domain.bookkeeping import Bookkeeper
from billing_sync.domain.journal import DocumentKind
from billing_sync.domain.mapping import AccountMapping, AccountRole
from billing_sync.domain.money import Money
from billing_sync.domain.ports import PeriodCalendar
from billing_sync.domain.recognition_job import RecognitionService, Release
from billing_sync.erp.ledger import DynamoLedgerErpClient
from billing_sync.settings import DEFAULT_MAPPING_FILE
from billing_sync.state.periods import DynamoPeriodCalendar
from billing_sync_ops.ops.output import EXIT_ITEMS_FAILED, EXIT_OK, EXIT_USAGE, emit, log, progress
from billing_sync_ops.ops.target import Target

INVOICE_PREFIX = "stripe-invoice-"
_RECOGNITION = "-recognition-"


def parse_through(text: str) -> date:
    """The argparse type of `--through`: an ISO date, YYYY-MM-DD."""
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date: use YYYY-MM-DD, e.g. 2026-05-31") from None


def load_mapping(path: Path | None) -> AccountMapping:
    """Raises ValueError with a readable message."""
    path = path or DEFAULT_MAPPING_FILE
    try:
        return AccountMapping.model_validate_json(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"cannot read mapping {path}: {exc.strerror}") from None
    except pydantic.ValidationError as exc:
        raise ValueError(f"mapping {path} is not valid (try `billing-sync mapping check {path}`): {exc}") from None


def ledger_of(target: Target) -> DynamoLedgerErpClient:
    return DynamoLedgerErpClient(target.client("dynamodb"), target.output("LedgerTableName"))


def calendar_of(target: Target) -> DynamoPeriodCalendar | None:
    """The entities' posting calendar (in the master-data table), None on a target without one."""
    table = target.optional_output("MasterDataTableName")
    return DynamoPeriodCalendar(target.client("dynamodb"), table, cache_seconds=0) if table else None


def invoice_external_id(identifier: str) -> str:
    """`in_...` (a Stripe invoice id) or `stripe-invoice-in_...` (its external id) -> the external id."""
    identifier = identifier.strip()
    return identifier if identifier.startswith(INVOICE_PREFIX) else INVOICE_PREFIX + identifier


# ---- recognize ----


def recognise(
    ledger: DynamoLedgerErpClient,
    mapping: AccountMapping,
    through: date,
    *,
    progress: Callable[[int, int], None] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    calendar: PeriodCalendar | None = None,
) -> dict[str, Any]:
    """Runs the recognition job on `ledger` through `through`; returns the summary `recognize --json` prints.

    With the entities' `calendar`, no release posts into a closed period.

    The same code runs from the CLI and the local demo. ErpClient and mapping errors raise.
    """
    bookkeeper = Bookkeeper(mapping=mapping, erp=ledger, periods=calendar)
    service = RecognitionService(erp=ledger, mapping=mapping, clock=clock, bookkeeper=bookkeeper)
    releases = service.run(through, progress=progress)
    return summarise(releases, through, _currencies(ledger))


def _currencies(ledger: DynamoLedgerErpClient) -> dict[str, str]:
    """The currency of every document a release can come from (invoices and credit memos)."""
    return {
        document.external_id: document.currency
        for kind in (DocumentKind.INVOICE, DocumentKind.CREDIT_MEMO)
        for document in ledger.list_documents(kind)
    }


def summarise(releases: Iterable[Release], through: date, currencies: dict[str, str]) -> dict[str, Any]:
    created: list[dict[str, Any]] = []
    already_posted = 0
    by_month: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    by_currency: dict[str, int] = defaultdict(int)
    for release in releases:
        if not release.created:
            already_posted += 1
            continue
        currency = currencies.get(release.source, "?")
        created.append(
            {
                "source": release.source,
                "month": release.month,
                "amount": release.amount,
                "currency": currency,
                "external_id": f"{release.source}{_RECOGNITION}{release.month}",
                "document_id": release.document_id,
            }
        )
        by_month[release.month[:7]][currency] += release.amount  # a daily release counts in its month
        by_currency[currency] += release.amount
    created.sort(key=lambda entry: (entry["month"], entry["source"]))
    return {
        "through": through.isoformat(),
        "created": created,
        "already_posted": already_posted,
        "by_month": {month: dict(sorted(amounts.items())) for month, amounts in sorted(by_month.items())},
        "by_currency": dict(sorted(by_currency.items())),
    }


def run_recognize(target: Target, through: date, *, mapping_file: Path | None, as_json: bool) -> int:
    try:
        mapping = load_mapping(mapping_file)
    except ValueError as exc:
        log(str(exc))
        return EXIT_USAGE
    ledger = ledger_of(target)
    try:
        with progress(f"recognising revenue through {through.isoformat()}", None) as advance:
            summary = recognise(
                ledger,
                mapping,
                through,
                progress=advance,
                calendar=calendar_of(target),
            )
    except Exception as exc:  # an ERP or mapping error stops the run; what was posted stays posted
        log(f"recognition stopped: {type(exc).__name__}: {exc}; run it again once fixed (nothing posts twice)")
        return EXIT_ITEMS_FAILED
    payload = {"command": "recognize", "target": target.description, **summary}
    emit(as_json, payload, _render_recognize)
    return EXIT_OK


def _amount(amount: int, currency: str) -> str:
    try:
        return f"{Money(amount=amount, currency=currency).to_decimal()} {currency}"
    except Exception:
        return f"{amount} {currency} (minor units)"


def _render_recognize(payload: dict[str, Any]) -> str:
    lines = [
        f"revenue recognised through {payload['through']} on {payload['target']}",
        f"  releases created: {len(payload['created'])}  already posted: {payload['already_posted']}",
    ]
    for month, amounts in payload["by_month"].items():
        lines.append(f"  {month:<8} " + ", ".join(_amount(amount, currency) for currency, amount in amounts.items()))
    for entry in payload["created"]:
        lines.append(
            f"    {entry['month']:<8} {_amount(entry['amount'], entry['currency']):>18}  {entry['source']}"
            f"  ({entry['document_id']})"
        )
    return "\n".join(lines)


# ---- revenue show ----


def revenue_show(target: Target, identifier: str, *, as_json: bool) -> int:
    external_id = invoice_external_id(identifier)
    ledger = ledger_of(target)
    invoice = ledger.get_document(external_id)
    if invoice is None or invoice.kind is not DocumentKind.INVOICE:
        emit(
            as_json,
            {
                "command": "revenue show",
                "invoice": external_id,
                "found": False,
                "error": f"no invoice {external_id} in the ledger of {target.description}",
            },
            lambda p: p["error"],
        )
        return EXIT_ITEMS_FAILED
    service = RecognitionService(erp=ledger, mapping=load_mapping(None), clock=lambda: datetime.now(UTC))
    obligations = service.schedule(external_id)
    released: dict[str, int] = defaultdict(int)
    for document in ledger.applied_to(external_id):
        if document.kind is DocumentKind.RECOGNITION:
            period = document.external_id.rpartition(_RECOGNITION)[2] or document.posting_date.strftime("%Y-%m")
            released[period[:7]] += document.total  # a daily release counts in its month
    to_release = sum(cast(int, row["amount"]) - cast(int, row["recognised_at_posting"]) for row in obligations)
    payload = {
        "command": "revenue show",
        "invoice": external_id,
        "found": True,
        "legal_entity": invoice.legal_entity,
        "customer": invoice.customer_external_id,
        "currency": invoice.currency,
        "posting_date": invoice.posting_date.isoformat(),
        "obligations": obligations,
        "released": dict(sorted(released.items())),
        "released_total": sum(released.values()),
        "deferred_remaining": to_release - sum(released.values()),
    }
    emit(as_json, payload, _render_show)
    return EXIT_OK


def _render_show(payload: dict[str, Any]) -> str:
    currency = payload["currency"]
    lines = [
        f"invoice {payload['invoice']} ({payload['legal_entity']}, {payload['customer']}), "
        f"posted {payload['posting_date']}",
    ]
    if not payload["obligations"]:
        lines.append("  no obligations: nothing is deferred (every line was revenue at posting)")
    for row in payload["obligations"]:
        start, end = row["period"]
        lines.append(
            f"  {row['source']} line {row['line']}: {_amount(row['amount'], row['currency'])} over {start} .. {end}"
            f", recognised at posting {_amount(row['recognised_at_posting'], row['currency'])}"
        )
        for month, amount in row["by_month"].items():
            lines.append(f"    {month:<8} {_amount(amount, row['currency']):>18}")
    lines.append("released by the recognition job:" if payload["released"] else "released by the recognition job: none")
    for month, amount in payload["released"].items():
        lines.append(f"  {month:<8} {_amount(amount, currency):>18}")
    lines.append(f"still deferred: {_amount(payload['deferred_remaining'], currency)}")
    return "\n".join(lines)


# ---- the deferred revenue roll-forward ----


def deferred_revenue_accounts(mapping: AccountMapping) -> set[str]:
    """Every account the mapping can book deferred revenue to (its default and any rule's)."""
    role = AccountRole.DEFERRED_REVENUE
    accounts = {rule.accounts[role] for rule in mapping.rules if role in rule.accounts}
    if role in mapping.default_accounts:
        accounts.add(mapping.default_accounts[role])
    return accounts


def deferred_roll_forward(ledger: DynamoLedgerErpClient, accounts: set[str]) -> list[dict[str, Any]]:
    """Per legal entity and currency, from the ledger's documents by kind (credit-positive amounts):

    opening 0 + billed - recognised - credited = closing, where billed is what invoices deferred at
    posting (their credits to deferred revenue: the share earned by the posting date was revenue at once),
    recognised what recognition journals released (net of a void's reversal), credited what every other
    document took off deferred revenue (credit memos, their voids, invoice voids, write-offs; by kind in
    `credited_by_kind`), and closing the deferred revenue balance.
    """
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for kind in DocumentKind:
        for document in ledger.list_documents(kind):
            moved: dict[str, int] = defaultdict(int)  # credits minus debits, per currency
            for line in document.journal:
                if line.account in accounts:
                    moved[line.currency] += line.credit - line.debit
            for currency, amount in moved.items():
                row = rows.setdefault(
                    (document.legal_entity, currency),
                    {
                        "legal_entity": document.legal_entity,
                        "currency": currency,
                        "opening": 0,
                        "billed": 0,
                        "recognised": 0,
                        "credited": 0,
                        "credited_by_kind": {},
                        "closing": 0,
                    },
                )
                if kind is DocumentKind.INVOICE:
                    row["billed"] += amount
                elif kind is DocumentKind.RECOGNITION:
                    row["recognised"] -= amount
                else:
                    row["credited"] -= amount
                    row["credited_by_kind"][kind.value] = row["credited_by_kind"].get(kind.value, 0) - amount
                row["closing"] += amount
    return [rows[key] for key in sorted(rows)]


def render_roll_forward(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        f"{'entity':<8} {'currency':<8} {'opening':>14} {'+ billed':>14} {'- recognised':>14} "
        f"{'- credited':>14} {'= closing':>14}"
    ]
    for row in rows:

        def figure(amount: int, currency: str = row["currency"]) -> str:
            try:
                return str(Money(amount=amount, currency=currency).to_decimal())
            except Exception:
                return str(amount)

        lines.append(
            f"{row['legal_entity']:<8} {row['currency']:<8} {figure(row['opening']):>14} {figure(row['billed']):>14} "
            f"{figure(row['recognised']):>14} {figure(row['credited']):>14} {figure(row['closing']):>14}"
        )
    return lines
