"""`billing-sync rates load FILE`: ECB euro reference rates into the rate table posting translates with.

Reads both files the ECB publishes: the daily `eurofxref.csv` (one row, `Date, USD, JPY, ...`, dated
like `27 November 2026`) and the history `eurofxref-hist.csv` (a row per business day, ISO dates, `N/A`
where a currency had no rate). Each cell becomes a rate `1 EUR = value CUR` of source `ecb` as of its
row's day; `state.rates` derives inverses and crosses at lookup. The file is parsed whole before
anything is written: a malformed file is bad usage (exit 2) naming its line and column, nothing stored.
After storing, events that waited for a rate the table now holds are sent to the posting queue again
(the waiting-room sweep would release them within its interval anyway).
"""

from __future__ import annotations

import argparse
import csv
import io
import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from billing_sync.aws.posting_queue import SqsPostingQueue
from billing_sync.domain.fx import Rate
from billing_sync.state.dynamo import DynamoWaitingRoom
from billing_sync.state.rates import PIVOT, DynamoRateTable
from billing_sync_ops.ops.output import EXIT_OK, emit, log
from billing_sync_ops.ops.target import Target

ECB_SOURCE = "ecb"
_CURRENCY = re.compile(r"[A-Z]{3}")
_MISSING = frozenset({"", "N/A"})


class EcbFormatError(ValueError):
    """A file that is not an ECB reference-rate CSV; the message names the line and column."""


def parse_ecb_csv(text: str, *, name: str = "rates file") -> list[Rate]:
    """Every rate in an ECB reference-rate CSV (daily or history). Raises EcbFormatError."""
    rows = [(number, row) for number, row in enumerate(csv.reader(io.StringIO(text)), start=1) if any(row)]
    if not rows:
        raise EcbFormatError(f"{name}: empty file, expected a header `Date, USD, JPY, ...`")
    header_line, header = rows[0]
    cells = [cell.strip() for cell in header]
    if cells[0] != "Date":
        raise EcbFormatError(f"{name}: line {header_line}, column 1: expected `Date`, found {cells[0]!r}")
    currencies: list[tuple[int, str]] = []
    for column, cell in enumerate(cells[1:], start=2):
        if cell == "" and column == len(cells):
            continue  # the ECB ends every line with a comma
        if not _CURRENCY.fullmatch(cell) or cell == PIVOT:
            raise EcbFormatError(f"{name}: line {header_line}, column {column}: {cell!r} is not a currency code")
        currencies.append((column, cell))
    if not currencies:
        raise EcbFormatError(f"{name}: line {header_line}: no currency columns")
    columns = {column for column, _ in currencies}
    rates: list[Rate] = []
    seen: dict[date, int] = {}
    for line, row in rows[1:]:
        values = [cell.strip() for cell in row]
        day = _day(values[0], name=name, line=line)
        if day in seen:
            raise EcbFormatError(f"{name}: line {line}, column 1: {day} is also on line {seen[day]}")
        seen[day] = line
        for column, cell in enumerate(values[1:], start=2):
            if cell and column not in columns:
                raise EcbFormatError(f"{name}: line {line}, column {column}: {cell!r} is under no currency")
        for column, currency in currencies:
            cell = values[column - 1] if column - 1 < len(values) else ""
            if cell in _MISSING:
                continue
            rates.append(Rate(PIVOT, currency, _value(cell, name=name, line=line, column=column), ECB_SOURCE, day))
    return rates


def _day(cell: str, *, name: str, line: int) -> date:
    for pattern in ("%Y-%m-%d", "%d %B %Y"):
        try:
            return datetime.strptime(cell, pattern).date()
        except ValueError:
            continue
    raise EcbFormatError(f"{name}: line {line}, column 1: {cell!r} is not a date (2026-11-27 or 27 November 2026)")


def _value(cell: str, *, name: str, line: int, column: int) -> Decimal:
    try:
        value = Decimal(cell)
    except InvalidOperation:
        value = Decimal(0)
    if not value.is_finite() or value <= 0:
        raise EcbFormatError(f"{name}: line {line}, column {column}: {cell!r} is not a positive rate")
    return value


def read_rates_file(path: Path) -> list[Rate]:
    """Raises EcbFormatError (also for an unreadable file)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise EcbFormatError(f"cannot read {path}: {exc}") from exc
    return parse_ecb_csv(text, name=str(path))


def usage_error(args: argparse.Namespace) -> str | None:
    """Parses the file before any target is looked up; keeps the rates on `args.rates`."""
    try:
        args.rates = read_rates_file(args.file)
    except EcbFormatError as exc:
        return str(exc)
    return None


def load_rates(target: Target, path: Path, rates: list[Rate], *, as_json: bool) -> int:
    table = DynamoRateTable(target.client("dynamodb"), target.output("MasterDataTableName"))
    stored = table.put_rates(rates)
    released = _release_waiters(target, table)
    days = sorted({rate.as_of for rate in rates})
    payload: dict[str, Any] = {
        "command": "rates load",
        "target": target.description,
        "file": str(path),
        "rates": stored,
        "days": len(days),
        "first_day": days[0].isoformat() if days else None,
        "last_day": days[-1].isoformat() if days else None,
        "currencies": sorted({rate.quote for rate in rates}),
        "released": released,
    }
    emit(as_json, payload, _render)
    return EXIT_OK


def load_sample_rates(client: Any, table_name: str, path: Path) -> int:
    """Stores the rates of an ECB file (the local runtime's demo rates); raises EcbFormatError."""
    return DynamoRateTable(client, table_name).put_rates(read_rates_file(path))


def _release_waiters(target: Target, table: DynamoRateTable) -> list[str]:
    """Requeues events waiting for a rate the table now answers; an older stack without the outputs skips it."""
    room_name = target.optional_output("WaitingRoomTableName")
    queue_url = target.optional_output("PostingQueueUrl")
    if room_name is None or queue_url is None:
        log("no waiting room or posting queue output: waiting events post at the next sweep")
        return []
    room = DynamoWaitingRoom(target.client("dynamodb"), room_name)
    queue = SqsPostingQueue(target.client("sqs"), queue_url)
    released = []
    for waiter in room.all_waiting():
        parts = waiter.key.split(":")
        if len(parts) != 4 or parts[0] != "rate":
            continue
        try:
            on = date.fromisoformat(parts[3])
        except ValueError:
            continue
        if table.rate(parts[1], parts[2], on) is None:
            continue
        queue.requeue(waiter.event)
        room.drop(waiter.key, waiter.event_id)
        released.append(waiter.event_id)
    return released


def _render(payload: dict[str, Any]) -> str:
    if not payload["rates"]:
        return f"{payload['file']}: no rates in the file; nothing stored in {payload['target']}"
    lines = [
        f"{payload['file']}: stored {payload['rates']} rates for {payload['days']} day(s) "
        f"{payload['first_day']} .. {payload['last_day']} ({', '.join(payload['currencies'])}) in {payload['target']}"
    ]
    if payload["released"]:
        lines.append(f"  released {len(payload['released'])} waiting event(s) to the posting queue")
    return "\n".join(lines)
