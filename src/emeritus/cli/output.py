"""How commands talk: Rich for people, `--json` for scripts, one line on stderr for errors."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import typer
from rich.console import Console

from emeritus.store import iso

console = Console(highlight=False)


def emit_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, ensure_ascii=False))


def when(value: datetime | None) -> str:
    return "-" if value is None else iso(value)[:16].replace("T", " ") + " UTC"


def day(value: datetime | None) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d}"
