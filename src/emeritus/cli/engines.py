"""`emeritus engines`: the managed engines the gateways of this home run (docs/design/engines.md).

Each supervising process (a gateway, or a command that ran the model) keeps its engine's state in
HOME/engines/MODEL/state-PID.json and its log in engine-PID.log beside it; these commands read
them. Exit status of `logs` and `stop`: 3 when the model has no engine here.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from emeritus.cli.output import JsonOption, console, emit_json
from emeritus.cli.root import settings_of
from emeritus.errors import InvalidInput, NotFound

engines_app = typer.Typer(
    help="Managed inference engines (llama-server, ...): list, logs, stop.", no_args_is_help=True
)


def _states(ctx: typer.Context) -> list[dict[str, Any]]:
    from emeritus.runtime import engine_states

    return engine_states(settings_of(ctx).home)


def _of(ctx: typer.Context, model: str) -> tuple[Path, list[dict[str, Any]]]:
    """The model's engine folder and its engines' states, newest first."""
    states = [s for s in _states(ctx) if s.get("model") == model]
    if "/" in model or model in ("", ".", "..") or not states:
        raise NotFound(f"{model} has no managed engine in this home")
    states.sort(key=lambda s: str(s.get("updated", "")), reverse=True)
    return settings_of(ctx).home / "engines" / model, states


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
    table = Table("model", "kind", "state", "pid", "port", "slots", "supervisor", "last failure")
    for s in states:
        pid = f"{s['pid']}" + ("" if s["alive"] else " (ended)") if s.get("pid") else "-"
        table.add_row(
            s["model"],
            s["kind"],
            s["state"],
            pid,
            str(s.get("port") or "-"),
            str(s.get("slots", "-")),
            str(s.get("supervisor", "-")),
            s.get("failure") or "",
        )
    console.print(table)


@engines_app.command("logs")
def logs(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="The model whose engine's log to show.")],
    lines: Annotated[int, typer.Option(help="How many of the last lines.")] = 40,
) -> None:
    """The end of a model's engine log, of the engine updated last (every start is marked with
    a === line)."""
    if lines < 1:
        raise InvalidInput(f"--lines must be at least 1, not {lines}")
    folder, states = _of(ctx, model)
    log = folder / str(states[0].get("log", ""))
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
    """Stop a model's engines now (SIGTERM), those of every gateway of this home. A gateway
    records the stop and starts its engine again on the next request; an engine whose gateway
    has gone is stopped for good."""
    from emeritus.runtime import stop_engine

    folder, states = _of(ctx, model)
    stopped = [int(s["pid"]) for s in states if s["alive"] and stop_engine(folder, int(s["pid"]))]
    if not stopped:
        console.print(f"{model}'s engine is not running")
        return
    console.print(f"stopped {model}'s engine (pid {', '.join(map(str, stopped))})")
