"""`python -m billing_sync_ops.ops ...`: the operator commands without the rest of the CLI."""

from __future__ import annotations

import argparse
import sys

from billing_sync_ops.ops import add_commands, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="billing-sync")
    add_commands(parser.add_subparsers(dest="area", required=True))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
