"""How commands talk: Rich for people, `--json` for scripts, one line on stderr for errors."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from emeritus.store import iso

console = Console(highlight=False)
# Progress goes to stderr, so `--json` output on stdout stays clean.
progress_console = Console(stderr=True, highlight=False)

ByteProgress = Callable[[int], Callable[[int], None]]


def byte_progress(
    description: str, *, enabled: bool = True
) -> contextlib.AbstractContextManager[ByteProgress | None]:
    """A bar in bytes with MB/s; yields `start(total) -> advance(n)` (thread-safe)."""
    return _progress(
        description, enabled, DownloadColumn(binary_units=False), TransferSpeedColumn()
    )


def count_progress(
    description: str, *, enabled: bool = True
) -> contextlib.AbstractContextManager[ByteProgress | None]:
    """A bar counting steps (questions, sessions) with an ETA."""
    return _progress(description, enabled, MofNCompleteColumn())


@contextlib.contextmanager
def _progress(
    description: str, enabled: bool, *columns: ProgressColumn
) -> Iterator[ByteProgress | None]:
    if not enabled or not progress_console.is_terminal:  # no bar in logs and pipes
        yield None
        return
    lock = threading.Lock()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        *columns,
        TimeRemainingColumn(),
        console=progress_console,
        transient=True,
    ) as bar:

        def start(total: int) -> Callable[[int], None]:
            task = bar.add_task(description, total=total)

            def advance(count: int) -> None:
                with lock:
                    bar.advance(task, count)

            return advance

        yield start


def emit_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def when(value: datetime | None) -> str:
    return "-" if value is None else iso(value)[:16].replace("T", " ") + " UTC"


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def day(value: datetime | None) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d}"
