"""Output conventions: one JSON object or human text on stdout; logs and progress on stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

EXIT_OK = 0
EXIT_ITEMS_FAILED = 1
EXIT_USAGE = 2
EXIT_TARGET_NOT_FOUND = 3


def emit(as_json: bool, payload: dict[str, Any], human: Callable[[dict[str, Any]], str]) -> None:
    if as_json:
        print(json.dumps(payload, default=str))
    else:
        print(human(payload))


def log(message: str) -> None:
    print(f"billing-sync: {message}", file=sys.stderr)


def age(seconds: float) -> str:
    """`3d 4h`, `2h 5m`, `40s`: the two largest units."""
    remaining = int(seconds)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if remaining >= size or (unit == "s" and not parts):
            parts.append(f"{remaining // size}{unit}")
            remaining %= size
    return " ".join(parts[:2])


def since(moment: datetime, now: datetime) -> float:
    return max((now - moment) / timedelta(seconds=1), 0.0)


@contextmanager
def progress(description: str, total: int | None) -> Iterator[Callable[..., None]]:
    """A rich progress bar on stderr; yields `advance()` (one step), also callable as `advance(done, total)`."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=not console.is_terminal,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task(description, total=total)

        def advance(done: int | None = None, of: int | None = None) -> None:
            if done is None:
                bar.advance(task)
            else:
                bar.update(task, completed=done, total=of)

        yield advance
