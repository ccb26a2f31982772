"""`emeritus engines`: the managed engines the gateways of this home run (docs/design/engines.md).

Each supervisor keeps its engine's state in HOME/engines/MODEL/state.json and its log in
engine.log beside it; these commands read them. Exit status of `logs` and `stop`: 3 when the
model has no engine here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from emeritus.cli.app import settings_of
from emeritus.cli.output import JsonOption, console, emit_json
from emeritus.errors import InvalidInput, NotFound

engines_app = typer.Typer(
    help="Managed inference engines (llama-server, ...): list, logs, stop.", no_args_is_help=True
)


def _states(ctx: typer.Context) -> list[dict[str, Any]]:
    from emeritus.runtime import engine_states

    return engine_states(settings_of(ctx).home)


def _folder(ctx: typer.Context, model: str) -> Path:
    folder = settings_of(ctx).home / "engines" / model
    if "/" in model or model in ("", ".", "..") or not (folder / "state.json").is_file():
        raise NotFound(f"{model} has no managed engine in this home")
    return folder


@engines_app.command("list")
def list_(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every engine started from this home: its state, process, port and slots."""
    states = _states(ctx)
    if as_json:
        emit_json(states)
        return
    if not states:
        console.print("no managed engines have run from this home")
        return
    table = Table("model", "kind", "state", "pid", "port", "slots", "last failure")
    for s in states:
        pid = f"{s['pid']}" + ("" if s["alive"] else " (ended)") if s.get("pid") else "-"
        table.add_row(
            s["model"],
            s["kind"],
            s["state"],
            pid,
            str(s.get("port") or "-"),
            str(s.get("slots", "-")),
            s.get("failure") or "",
        )
    console.print(table)


@engines_app.command("logs")
def logs(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="The model whose engine's log to show.")],
    lines: Annotated[int, typer.Option(help="How many of the last lines.")] = 40,
) -> None:
    """The end of a model's engine log (every start is marked with a === line)."""
    if lines < 1:
        raise InvalidInput(f"--lines must be at least 1, not {lines}")
    log = _folder(ctx, model) / "engine.log"
    if not log.is_file():
        raise NotFound(f"{model}'s engine has written no log yet")
    with log.open("rb") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        handle.seek(max(0, size - 256 * 1024))
        text = handle.read().decode("utf-8", errors="replace")
    typer.echo("\n".join(text.splitlines()[-lines:]))


@engines_app.command("stop")
def stop(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="The model whose engine to stop.")],
) -> None:
    """Stop a model's engine now (SIGTERM). Its gateway records the stop and starts the engine
    again on the next request; an engine whose gateway has gone is stopped for good."""
    from emeritus.runtime import stop_engine

    folder = _folder(ctx, model)
    state = next((s for s in _states(ctx) if s["model"] == model), None)
    if state is None or not state["alive"] or not stop_engine(folder, int(state["pid"])):
        console.print(f"{model}'s engine is not running")
        return
    console.print(f"stopped {model}'s engine (pid {state['pid']})")
