"""How commands talk: Rich for people, `--json` for scripts, one line on stderr for errors."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:  # rich.progress loads with the first bar: most commands show none
    from rich.progress import ProgressColumn

# Piped into a file or a log, Rich would assume 80 columns and cut table cells ("…"): use a
# width no table reaches instead, unless the caller set COLUMNS.
PIPED_WIDTH = 1000


def _console(**options: Any) -> Console:
    terminal = Console(**options)
    if terminal.is_terminal or os.environ.get("COLUMNS"):
        return terminal
    return Console(width=PIPED_WIDTH, **options)


console = _console(highlight=False, emoji=False)  # "urn:emeritus:model:m" is no emoji
# Progress goes to stderr, so `--json` output on stdout stays clean.
progress_console = Console(stderr=True, highlight=False, emoji=False)

# The one `--json` option every command that prints takes.
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]

ByteProgress = Callable[[int], Callable[[int], None]]


def byte_progress(
    description: str, *, enabled: bool = True
) -> contextlib.AbstractContextManager[ByteProgress | None]:
    """A bar in bytes with MB/s; yields `start(total) -> advance(n)` (thread-safe)."""
    from rich.progress import DownloadColumn, TransferSpeedColumn

    return _progress(
        description, enabled, DownloadColumn(binary_units=False), TransferSpeedColumn()
    )


def count_progress(
    description: str, *, enabled: bool = True
) -> contextlib.AbstractContextManager[ByteProgress | None]:
    """A bar counting steps (questions, sessions) with an ETA."""
    from rich.progress import MofNCompleteColumn

    return _progress(description, enabled, MofNCompleteColumn())


@contextlib.contextmanager
def _progress(
    description: str, enabled: bool, *columns: ProgressColumn
) -> Iterator[ByteProgress | None]:
    if not enabled or not progress_console.is_terminal:  # no bar in logs and pipes
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

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


# The store's display helpers, imported on use: importing the CLI loads no store.
def when(value: datetime | None) -> str:
    from emeritus.store import human_minute

    return human_minute(value, zone=True)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def day(value: datetime | None) -> str:
    from emeritus.store import human_day

    return human_day(value)
