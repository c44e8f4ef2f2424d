"""billing-sync: operator command line (local runtime today)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from billing_sync_ops.runtime import (
    LOCAL_WEBHOOK_SECRET,
    WEBHOOK_SECRET_ENV,
    LocalRuntime,
    PortInUseError,
    webhook_secret_from_env,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="billing-sync", description=__doc__)
    commands = parser.add_subparsers(dest="area", required=True)
    local = commands.add_parser("local", help="run billing-sync on this machine (moto on loopback, no AWS account)")
    local_commands = local.add_subparsers(dest="command", required=True)

    demo = local_commands.add_parser("demo", help="send the events/ samples through the whole pipeline and report")
    demo.add_argument("--report", type=Path, help="write the JSON report here")

    serve = local_commands.add_parser("serve", help="serve POST /webhooks/stripe until stopped (SIGINT/SIGTERM)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--report", type=Path, help="write the JSON report here when stopped")
    serve.add_argument("--drain-timeout", type=float, default=30, help="seconds to finish work in flight on stop")
    serve.add_argument("--log-level", default="INFO")

    send = local_commands.add_parser("send", help="sign a Stripe event file and POST it to a webhook endpoint")
    send.add_argument(
        "event_file", type=Path, help="a Stripe event JSON file, e.g. events/stripe_invoice_finalized.json"
    )
    send.add_argument("--url", default="http://127.0.0.1:8000/webhooks/stripe")
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


def serve(port: int, report_path: Path | None, drain_timeout: float, log_level: str) -> int:
    from billing_sync_ops.demo import collect_report, write_report
    from billing_sync_ops.report import render_summary

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        runtime = LocalRuntime(webhook_secret=webhook_secret_from_env(), port=port, log_level=log_level).start()
    except PortInUseError as exc:
        print(f"billing-sync: {exc}; choose another with --port", file=sys.stderr)
        return 2
    try:
        secret_note = (
            f"from {WEBHOOK_SECRET_ENV}" if runtime.webhook_secret != LOCAL_WEBHOOK_SECRET else LOCAL_WEBHOOK_SECRET
        )
        print(f"listening on {runtime.webhook_url} (signing secret: {secret_note}); Ctrl-C to stop", file=sys.stderr)
        print(f"  stripe listen --forward-to {runtime.webhook_url}", file=sys.stderr)
        # Waits in short slices: a signal delivered to another thread only runs its Python handler
        # when the main thread next executes bytecode, so an unbounded wait could sleep through it.
        while not stop.wait(timeout=0.2):
            pass
        print("stopping: no new webhooks accepted; draining work in flight ...", file=sys.stderr)
        runtime.stop_accepting()
        if not runtime.drain(timeout_seconds=drain_timeout):
            print(f"work still in flight after {drain_timeout} s; reported as PENDING", file=sys.stderr)
        report = collect_report(runtime)
    finally:
        runtime.stop()
    print(render_summary(report))
    write_report(report, report_path)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "demo":
        from billing_sync_ops.demo import run_demo

        report = run_demo(args.report)
        return 0 if report["ledger"]["balanced"] else 1
    if args.command == "send":
        return send(args.event_file, args.url)
    return serve(args.port, args.report, args.drain_timeout, args.log_level)


if __name__ == "__main__":
    sys.exit(main())
