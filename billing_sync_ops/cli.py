"""billing-sync: operator command line.

`billing-sync local ...` runs the whole stack on this machine: moto on loopback, in memory, no AWS
account. Output meant for you (the summary, `send`'s answer) goes to stdout; progress and logs go to
stderr.
"""

from __future__ import annotations

import argparse
import math
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from billing_sync_ops.runtime import (
    LOCAL_WEBHOOK_SECRET,
    WEBHOOK_SECRET_ENV,
    LocalRuntime,
    PortInUseError,
    webhook_secret_from_env,
)

EXIT_NOT_DRAINED = 4  # `local serve`: stopped at --drain-timeout with work still in the queues
EXIT_FORCED = 130  # `local serve`: a second Ctrl-C stopped it at once (128 + SIGINT)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("billing-sync")
    except PackageNotFoundError:
        return "unknown (not installed; run `make demo` or `pip install -e .`)"


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be between 1 and 65535, not {value}")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text}")
    return value


# ---- operator commands: `billing_sync_ops.ops`, built separately ----------------------------------


def _ops() -> ModuleType | None:
    """The operator commands (dlq, replay, mapping) from `billing_sync_ops.ops`, or None.

    Wiring point for the package `billing_sync_ops.ops`, which provides `add_commands(subparsers)` and
    `run(args)`. It is imported lazily; until it exists (with both) the CLI has only the `local` commands.
    """
    try:
        from billing_sync_ops import ops
    except ModuleNotFoundError as exc:
        if exc.name == "billing_sync_ops.ops":
            return None
        raise
    return ops if hasattr(ops, "add_commands") and hasattr(ops, "run") else None


# ----------------------------------------------------------------------------------------------------


def _parser(ops: ModuleType | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="billing-sync", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}", help="print the version")
    commands = parser.add_subparsers(dest="area", required=True, metavar="COMMAND")
    local = commands.add_parser(
        "local",
        help="run billing-sync on this machine (moto on loopback, in memory, no AWS account)",
        description="Run billing-sync on this machine: the synthesised stack in moto on loopback, in memory. "
        "Stopping loses every event, lineage record and ledger document.",
    )
    local_commands = local.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = local_commands.add_parser(
        "demo",
        help="send the events/ samples through the whole pipeline and print a summary",
        description="Start the local stack, send the samples in events/ as signed webhooks, drain the "
        "posting queue, print the summary on stdout, and stop.",
    )
    demo.add_argument("--report", type=Path, metavar="PATH", help="also write the JSON report to PATH")

    serve = local_commands.add_parser(
        "serve",
        help="serve POST /webhooks/stripe until Ctrl-C or SIGTERM, then drain and report",
        description="Serve POST /webhooks/stripe on 127.0.0.1 until Ctrl-C (SIGINT) or SIGTERM; then stop "
        "accepting, drain the queues, print the summary on stdout and write the report. Exit status: 0 "
        f"drained; {EXIT_NOT_DRAINED} not drained within --drain-timeout; {EXIT_FORCED} a second Ctrl-C "
        "stopped it at once; 2 bad usage or port taken.",
    )
    serve.add_argument(
        "--port", type=_port, default=8000, help="port to listen on, 1-65535, on 127.0.0.1 (default: %(default)s)"
    )
    serve.add_argument("--report", type=Path, metavar="PATH", help="write the JSON report to PATH when stopped")
    serve.add_argument(
        "--drain-timeout",
        type=_positive_seconds,
        default=30,
        metavar="SECONDS",
        help="on stop, wait at most this long for the queues to drain (default: %(default)s)",
    )
    serve.add_argument(
        "--log-level",
        type=str.upper,
        choices=LOG_LEVELS,
        default="INFO",
        help="level of the functions' JSON logs, written to stderr (default: %(default)s)",
    )
    serve.add_argument(
        "--stripe-fixtures",
        type=Path,
        metavar="DIR",
        help="serve the read-only Stripe API (payouts' balance transactions, charges) from the JSON objects "
        "in DIR, e.g. events/stripe_api; without it payouts park as needing the Stripe API",
    )

    send = local_commands.add_parser(
        "send",
        help="sign a Stripe event file and POST it to a webhook endpoint",
        description=f"Sign a Stripe event file with {WEBHOOK_SECRET_ENV} (else the local default "
        f"{LOCAL_WEBHOOK_SECRET}) and POST it; prints the status and answer. Exit status 0 on 200.",
    )
    send.add_argument(
        "event_file", type=Path, help="a Stripe event JSON file, e.g. events/stripe_invoice_finalized.json"
    )
    send.add_argument(
        "--url",
        default="http://127.0.0.1:8000/webhooks/stripe",
        help="the webhook endpoint (default: %(default)s)",
    )
    if ops is not None:
        ops.add_commands(commands)
    return parser


def send(event_file: Path, url: str) -> int:
    import json
    import time

    from billing_sync_ops.demo import post_webhook
    from billing_sync_ops.signing import sign_stripe_payload

    try:
        body = event_file.read_bytes()
    except OSError as exc:
        print(f"billing-sync: cannot read {event_file}: {exc.strerror}", file=sys.stderr)
        return 2
    signature = sign_stripe_payload(body, webhook_secret_from_env(), int(time.time()))
    try:
        status, answer = post_webhook(url, body, signature)
    except OSError as exc:
        print(f"billing-sync: cannot reach {url}: {exc}", file=sys.stderr)
        return 2
    print(f"{status} {json.dumps(answer)}")
    return 0 if status == 200 else 1


class ForcedStop(Exception):
    """A second Ctrl-C while `local serve` was stopping."""


def serve(
    port: int,
    report_path: Path | None,
    drain_timeout: float,
    log_level: str,
    *,
    stripe_fixtures: Path | None = None,
    runtime_factory: Callable[..., Any] = LocalRuntime,
    collect: Callable[[Any], dict[str, Any]] | None = None,
) -> int:
    """Serves until SIGINT/SIGTERM; then drains, stops the workers, reports, and stops the backend.

    Returns 0 when drained, EXIT_NOT_DRAINED when the queues still held work at `drain_timeout`,
    EXIT_FORCED on a second SIGINT, 2 when the port is taken.
    """
    from billing_sync_ops.demo import collect_report, write_report
    from billing_sync_ops.report import render_summary, unsettled

    collect = collect or collect_report
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        if signum == signal.SIGINT and stop.is_set():
            signal.signal(signal.SIGINT, signal.SIG_DFL)  # a third Ctrl-C kills outright
            raise ForcedStop
        stop.set()

    previous = {signum: signal.signal(signum, on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    runtime: Any = None
    try:
        try:
            stripe_api = {"stripe_fixtures": stripe_fixtures} if stripe_fixtures is not None else {}
            runtime = runtime_factory(
                webhook_secret=webhook_secret_from_env(), port=port, log_level=log_level, **stripe_api
            ).start()
        except PortInUseError as exc:
            print(f"billing-sync: {exc}; choose another with --port", file=sys.stderr)
            return 2
        secret_note = (
            f"from {WEBHOOK_SECRET_ENV}" if runtime.webhook_secret != LOCAL_WEBHOOK_SECRET else LOCAL_WEBHOOK_SECRET
        )
        print(f"listening on {runtime.webhook_url} (signing secret: {secret_note}); Ctrl-C to stop", file=sys.stderr)
        print(f"  stripe listen --forward-to {runtime.webhook_url}", file=sys.stderr)
        # Waits in short slices: a signal delivered to another thread only runs its Python handler
        # when the main thread next executes bytecode, so an unbounded wait could sleep through it.
        while not stop.wait(timeout=0.2):
            pass
        print(
            f"stopping: no new webhooks accepted; draining the queues (at most {drain_timeout:g} s; "
            "Ctrl-C again to stop at once) ...",
            file=sys.stderr,
        )
        runtime.stop_accepting()
        drained = runtime.drain(timeout_seconds=drain_timeout)
        runtime.stop_workers()  # the report is read from a state nothing changes any more
        report = collect(runtime)
        if hasattr(runtime, "processes"):
            report["runtime"] = runtime.processes()
        runtime.stop()
    except ForcedStop:
        print("billing-sync: stopped at once (second Ctrl-C): nothing drained, no report", file=sys.stderr)
        if runtime is not None:
            runtime.stop(wait=False)
        return EXIT_FORCED
    finally:
        if runtime is not None:
            runtime.stop(wait=False)  # a no-op once stopped
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    print(render_summary(report))
    write_report(report, report_path)
    if not drained:
        counts = unsettled(report)
        print(
            f"billing-sync: not drained within --drain-timeout {drain_timeout:g} s: "
            f"{sum(counts.values())} accepted events not settled (pending {counts['pending']}, "
            f"claimed {counts['claimed']}, waiting {counts['waiting']}); they are lost with the local state",
            file=sys.stderr,
        )
        return EXIT_NOT_DRAINED
    return 0


def main(argv: list[str] | None = None) -> int:
    ops = _ops()
    args = _parser(ops).parse_args(argv)
    if args.area != "local":
        assert ops is not None  # only the ops package registers other areas
        return int(ops.run(args))
    if args.command == "demo":
        from billing_sync_ops.demo import run_demo

        report = run_demo(args.report)
        return 0 if report["ledger"]["balanced"] else 1
    if args.command == "send":
        return send(args.event_file, args.url)
    return serve(args.port, args.report, args.drain_timeout, args.log_level, stripe_fixtures=args.stripe_fixtures)


if __name__ == "__main__":
    sys.exit(main())
