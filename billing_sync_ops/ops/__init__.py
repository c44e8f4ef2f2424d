"""Operator commands: `dlq list|show|redrive|purge`, `replay`, `mapping check`, `recognize`, `revenue show`,
`period close|reopen|list`, `rates load`, `ledger trial-balance`, `fx revalue`, `reconcile`, `lineage show`.

Wire into the `billing-sync` parser with `add_commands(subparsers)` and dispatch with `run(args)` when
`args.ops_command` is set. Every command prints one JSON object with `--json`, human text otherwise;
logs and progress go to stderr. Exit codes: 0 ok, 1 some items failed, 2 bad usage, 3 target not found.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from billing_sync.domain.errors import ExceptionCategory
from billing_sync_ops.ops.output import EXIT_TARGET_NOT_FOUND, EXIT_USAGE, log
from billing_sync_ops.ops.target import TargetNotFoundError, add_target_arguments, resolve_target

__all__ = ["add_commands", "run"]


def _category(text: str) -> str:
    value = text.strip().upper()
    if value not in ExceptionCategory.__members__:
        raise argparse.ArgumentTypeError(f"unknown category {text!r}; one of {', '.join(ExceptionCategory)}")
    return value


def _duration(text: str) -> str:
    from billing_sync_ops.ops.dlq import parse_duration

    try:
        parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be positive")
        return value

    return parse


def _instant(text: str) -> Any:
    from billing_sync_ops.ops.replay import parse_instant

    try:
        return parse_instant(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time, e.g. 2026-01-31T12:00:00Z") from None


def _through(text: str) -> Any:
    from billing_sync_ops.ops.revenue import parse_through

    return parse_through(text)


def _period(text: str) -> Any:
    from billing_sync_ops.ops.periods import period_argument

    return period_argument(text)


def _common(parser: argparse.ArgumentParser, *, target: bool = True) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    if target:
        add_target_arguments(parser)


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--category", action="append", type=_category, default=[], help="e.g. MAPPING (repeatable)")
    parser.add_argument("--event-type", action="append", default=[], help="canonical type, e.g. invoice.issued")
    parser.add_argument("--event-id", action="append", default=[], help="canonical or source event id (repeatable)")
    parser.add_argument("--older-than", type=_duration, help="first seen longer ago than this: 90s, 15m, 2h, 3d, 1w")
    parser.add_argument("--limit", type=_positive(int), help="act on at most this many messages")
    parser.add_argument("--dry-run", action="store_true", help="change nothing; list what would be done")


def add_commands(subparsers: Any) -> None:
    """Registers `dlq`, `replay`, `mapping`, `recognize`, `revenue`, `period` and `rates` on the sub-parsers."""
    dlq = subparsers.add_parser("dlq", help="the exception queue: list, show, redrive, purge")
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True)

    listing = dlq_commands.add_parser("list", help="open exceptions by category, source and type; queue depth")
    _common(listing)
    listing.set_defaults(ops_command="dlq list")

    show = dlq_commands.add_parser("show", help="one exception: record, lineage, reason and what to do")
    show.add_argument("id", help="canonical event id, Stripe event id (evt_...) or SQS message id")
    _common(show)
    show.set_defaults(ops_command="dlq show")

    redrive = dlq_commands.add_parser("redrive", help="send selected exceptions through the pipeline again")
    _filters(redrive)
    redrive.add_argument("--rate", type=_positive(float), help="at most this many messages per second")
    redrive.add_argument(
        "--default-legal-entity", default="US01", help="for ingest exceptions normalised again (the stack's setting)"
    )
    _common(redrive)
    redrive.set_defaults(ops_command="dlq redrive")

    purge = dlq_commands.add_parser("purge", help="delete selected exceptions (needs a filter and --confirm)")
    _filters(purge)
    purge.add_argument("--confirm", action="store_true", help="required: purging cannot be undone")
    _common(purge)
    purge.set_defaults(ops_command="dlq purge")

    replay = subparsers.add_parser("replay", help="publish archived raw events again (non-destructive)")
    scope = replay.add_mutually_exclusive_group(required=True)
    scope.add_argument("--event-id", action="append", help="source event id, e.g. evt_... (repeatable)")
    scope.add_argument("--from", dest="start", type=_instant, help="ISO 8601; with --to: archived in this range")
    replay.add_argument("--to", dest="end", type=_instant, help="ISO 8601 end of the range (inclusive)")
    replay.add_argument("--source", default="stripe", choices=["stripe"])
    replay.add_argument("--dry-run", action="store_true", help="publish nothing; list what would be published")
    replay.add_argument("--force", action="store_true", help="publish events lineage says are POSTED too")
    replay.add_argument("--rate", type=_positive(float), help="at most this many events per second")
    replay.add_argument("--default-legal-entity", default="US01", help="the stack's DEFAULT_LEGAL_ENTITY")
    _common(replay)
    replay.set_defaults(ops_command="replay")

    mapping = subparsers.add_parser("mapping", help="account mapping files")
    mapping_commands = mapping.add_subparsers(dest="mapping_command", required=True)
    check = mapping_commands.add_parser("check", help="validate an account mapping file")
    check.add_argument("file", type=Path)
    _common(check, target=False)
    check.set_defaults(ops_command="mapping check")

    recognize = subparsers.add_parser("recognize", help="release deferred revenue for every month ended by --through")
    recognize.add_argument(
        "--through", type=_through, required=True, metavar="YYYY-MM-DD", help="post every month ended by this day"
    )
    recognize.add_argument("--mapping", type=Path, metavar="FILE", help="account mapping (default: the bundled one)")
    _common(recognize)
    recognize.set_defaults(ops_command="recognize")

    revenue = subparsers.add_parser("revenue", help="revenue recognition schedules")
    revenue_commands = revenue.add_subparsers(dest="revenue_command", required=True)
    revenue_show = revenue_commands.add_parser("show", help="an invoice's recognition schedule and releases so far")
    revenue_show.add_argument("invoice", help="Stripe invoice id (in_...) or external id (stripe-invoice-in_...)")
    _common(revenue_show)
    revenue_show.set_defaults(ops_command="revenue show")

    lineage = subparsers.add_parser("lineage", help="the trail from raw event to ERP document to reconciliation")
    lineage_commands = lineage.add_subparsers(dest="lineage_command", required=True)
    lineage_show = lineage_commands.add_parser("show", help="an event's or a billing document's trail")
    lineage_show.add_argument("id", help="event id (uuid or evt_...) or billing document as SOURCE/ID (stripe/in_...)")
    _common(lineage_show)
    lineage_show.set_defaults(ops_command="lineage show")

    period = subparsers.add_parser("period", help="each legal entity's posting calendar: close, reopen, list")
    period_commands = period.add_subparsers(dest="period_command", required=True)
    for verb, text in (("close", "close a period: nothing posts into it"), ("reopen", "open a closed period again")):
        change = period_commands.add_parser(verb, help=text)
        change.add_argument("entity", help="legal entity code, e.g. US01")
        change.add_argument("period", type=_period, metavar="YYYY-MM")
        change.add_argument("--mapping", type=Path, metavar="FILE", help="account mapping (default: the bundled one)")
        _common(change)
        change.set_defaults(ops_command=f"period {verb}")
    period_list = period_commands.add_parser("list", help="every period ever closed or reopened, with its trail")
    period_list.add_argument("--entity", help="only this legal entity")
    period_list.add_argument("--mapping", type=Path, metavar="FILE", help="account mapping (default: the bundled one)")
    _common(period_list)
    period_list.set_defaults(ops_command="period list")

    rates = subparsers.add_parser("rates", help="exchange rates posting translates with")
    rates_commands = rates.add_subparsers(dest="rates_command", required=True)
    rates_load = rates_commands.add_parser("load", help="store an ECB reference-rate CSV (daily or history)")
    rates_load.add_argument("file", type=Path, help="eurofxref.csv or eurofxref-hist.csv")
    _common(rates_load)
    rates_load.set_defaults(ops_command="rates load")

    ledger = subparsers.add_parser("ledger", help="the embedded ledger")
    ledger_commands = ledger.add_subparsers(dest="ledger_command", required=True)
    trial = ledger_commands.add_parser("trial-balance", help="debits and credits per entity, account and currency")
    trial.add_argument("--entity", help="only this legal entity, e.g. US01")
    trial.add_argument("--as-of", type=_through, metavar="YYYY-MM-DD", help="only documents posted on or before it")
    trial.add_argument("--currency", choices=["transaction", "functional"], default="transaction", dest="basis")
    trial.add_argument("--mapping", type=Path, metavar="FILE", help="account mapping (default: the bundled one)")
    _common(trial)
    trial.set_defaults(ops_command="ledger trial-balance")

    fx = subparsers.add_parser("fx", help="foreign currency: month-end revaluation")
    fx_commands = fx.add_subparsers(dest="fx_command", required=True)
    fx_revalue = fx_commands.add_parser("revalue", help="revalue open foreign balances at a month end, and reverse")
    fx_revalue.add_argument("--period", type=_period, required=True, metavar="YYYY-MM", help="the month to revalue")
    fx_revalue.add_argument("--entity", help="only this legal entity (default: every entity of the mapping)")
    fx_revalue.add_argument("--mapping", type=Path, metavar="FILE", help="account mapping (default: the bundled one)")
    _common(fx_revalue)
    fx_revalue.set_defaults(ops_command="fx revalue")

    reconcile = subparsers.add_parser("reconcile", help="billing against the ERP for a period: documents, controls")
    reconcile.add_argument("--period", type=_period, required=True, metavar="YYYY-MM", help="the month to reconcile")
    reconcile.add_argument("--entity", help="only this legal entity (default: every entity)")
    reconcile.add_argument("--out", type=Path, metavar="DIR", help="for extracts and reports (build/reconciliation)")
    reconcile.add_argument("--mapping", type=Path, metavar="FILE", help="account mapping (default: the bundled one)")
    reconcile.add_argument("--default-legal-entity", default="US01", help="the stack's DEFAULT_LEGAL_ENTITY")
    _common(reconcile)
    reconcile.set_defaults(ops_command="reconcile")


def run(args: argparse.Namespace) -> int:
    """Runs the operator command `args` was parsed for; returns the exit code."""
    command = getattr(args, "ops_command", None)
    if command == "mapping check":
        from billing_sync_ops.ops.mapping_check import check_mapping

        return check_mapping(args.file, as_json=args.json)
    if command == "dlq purge" and not args.confirm:
        log("dlq purge deletes messages for good: pass --confirm (and try --dry-run first)")
        return EXIT_USAGE
    if command == "replay" and args.start is not None and args.end is None:
        log("replay --from needs --to")
        return EXIT_USAGE
    if command is not None and command.startswith("period "):
        from billing_sync_ops.ops.periods import usage_error

        if (problem := usage_error(getattr(args, "entity", None), args.mapping)) is not None:
            log(problem)
            return EXIT_USAGE
    if command == "rates load":
        from billing_sync_ops.ops.rates import usage_error as rates_usage_error

        if (problem := rates_usage_error(args)) is not None:
            log(problem)
            return EXIT_USAGE
    try:
        target = resolve_target(args)
        return _run_on_target(command, args, target)
    except TargetNotFoundError as exc:
        log(str(exc))
        return EXIT_TARGET_NOT_FOUND


def _run_on_target(command: str | None, args: argparse.Namespace, target: Any) -> int:
    from billing_sync_ops.ops import dlq

    if command == "dlq list":
        return dlq.list_exceptions(target, as_json=args.json)
    if command == "dlq show":
        return dlq.show_exception(target, args.id, as_json=args.json)
    if command in ("dlq redrive", "dlq purge"):
        filters = dlq.Filters(
            categories=tuple(args.category),
            event_types=tuple(args.event_type),
            event_ids=tuple(args.event_id),
            older_than=args.older_than,
        )
        return dlq.run_sweep(
            target,
            filters,
            action=command.split()[1],
            dry_run=args.dry_run,
            limit=args.limit,
            rate=getattr(args, "rate", None),
            as_json=args.json,
            default_legal_entity=getattr(args, "default_legal_entity", "US01"),
        )
    if command == "replay":
        from billing_sync_ops.ops.replay import replay

        return replay(
            target,
            source=args.source,
            event_ids=tuple(args.event_id or ()),
            start=args.start,
            end=args.end,
            dry_run=args.dry_run,
            force=args.force,
            rate=args.rate,
            default_legal_entity=args.default_legal_entity,
            as_json=args.json,
        )
    if command == "recognize":
        from billing_sync_ops.ops.revenue import run_recognize

        return run_recognize(target, args.through, mapping_file=args.mapping, as_json=args.json)
    if command == "lineage show":
        from billing_sync_ops.ops.lineage import lineage_show

        return lineage_show(target, args.id, as_json=args.json)
    if command == "revenue show":
        from billing_sync_ops.ops.revenue import revenue_show

        return revenue_show(target, args.invoice, as_json=args.json)
    if command in ("period close", "period reopen"):
        from billing_sync_ops.ops.periods import set_period

        return set_period(target, args.entity, args.period, closed=command == "period close", as_json=args.json)
    if command == "period list":
        from billing_sync_ops.ops.periods import list_periods

        return list_periods(target, args.entity, as_json=args.json)
    if command == "rates load":
        from billing_sync_ops.ops.rates import load_rates

        return load_rates(target, args.file, args.rates, as_json=args.json)
    if command == "ledger trial-balance":
        from billing_sync_ops.ops.ledger import run_trial_balance

        return run_trial_balance(
            target,
            legal_entity=args.entity,
            as_of=args.as_of,
            basis=args.basis,
            mapping_file=args.mapping,
            as_json=args.json,
        )
    if command == "fx revalue":
        from billing_sync_ops.ops.fx import run_revalue

        return run_revalue(target, args.period, legal_entity=args.entity, mapping_file=args.mapping, as_json=args.json)
    if command == "reconcile":
        from billing_sync_ops.ops.reconcile import run_reconcile

        return run_reconcile(
            target,
            args.period,
            entity=args.entity,
            out=args.out,
            mapping_file=args.mapping,
            default_legal_entity=args.default_legal_entity,
            stack_name=args.stack_name,
            as_json=args.json,
        )
    log(f"unknown operator command {command!r}")
    return EXIT_USAGE
