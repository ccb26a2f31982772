"""`emeritus models`: register models and look at them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from emeritus.cli.output import JsonOption, console, day, emit_json, when
from emeritus.cli.root import open_store
from emeritus.errors import EmeritusError, InvalidInput, NotFound

if TYPE_CHECKING:
    from emeritus.report import ChecklistItem
    from emeritus.runtime import Deployment
    from emeritus.store import Store

models_app = typer.Typer(help="Register models and show their lifecycle.", no_args_is_help=True)


@models_app.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Unique name: letters, digits, '.', '_', '-'.")],
    family: Annotated[str, typer.Option(help="Model family, e.g. SmolLM2.")] = "",
    version: Annotated[str, typer.Option(help="Version or variant.")] = "",
    description: Annotated[str, typer.Option(help="One line about the model.")] = "",
    release_date: Annotated[
        str | None, typer.Option(help="Release date, YYYY-MM-DD.", show_default=False)
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Register a model; it starts active."""
    from emeritus.lifecycle import Registry
    from emeritus.store import parse_when

    released = parse_when(release_date, what="release date").date() if release_date else None
    with open_store(ctx) as store:
        info = Registry(store).add(
            name, family=family, version=version, description=description, release_date=released
        )
    if as_json:
        emit_json(info.to_dict())
    else:
        console.print(f"registered [bold]{info.name}[/] (active)")


@models_app.command("list")
def list_models(
    ctx: typer.Context,
    state: Annotated[
        str | None,
        typer.Option(
            help="Only models in this state: active, deprecated or retired.", show_default=False
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List registered models."""
    from emeritus.lifecycle import State, registered_models

    wanted = None
    if state is not None:
        try:
            wanted = State(state)
        except ValueError:
            raise InvalidInput(
                f"unknown state {state!r}: choose active, deprecated or retired"
            ) from None
    with open_store(ctx) as store:
        models = registered_models(store, state=wanted)  # by Core: no ORM loads
    if as_json:
        emit_json([m.to_dict() for m in models])
        return
    if not models:
        console.print("no models registered (add one with `emeritus models add NAME`)")
        return
    table = Table("name", "family", "version", "state", "retires", "successor", "availability")
    for m in models:
        table.add_row(
            m.name,
            m.family,
            m.version,
            str(m.state),
            day(m.retired_at or m.retire_at)
            + ("" if m.retired_at or m.retire_firm else " (tentative)"),
            m.successor or "-",
            str(m.availability or m.availability_after or "-"),
        )
    console.print(table)


@models_app.command("show")
def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Model name.")],
    as_json: JsonOption = False,
) -> None:
    """Show one model: its facts, lifecycle, notices and events."""
    from emeritus.lifecycle import Registry
    from emeritus.report import checklist
    from emeritus.store import list_events

    with open_store(ctx) as store:
        registry = Registry(store)
        info = registry.get(name)
        notices = registry.notices(model=name)
        with store.transaction() as session:
            events = list_events(session, subject=f"model:{name}")
        artifacts = _artifacts(store, name)
        deployment = _deployment(store, name)
        items = checklist(store, name)
    if as_json:
        emit_json(
            {
                **info.to_dict(),
                "deployment": deployment.to_dict() if deployment else None,
                "artifacts": artifacts,
                "checklist": [item.to_dict() for item in items],
                "notices": [n.to_dict() for n in notices],
                "events": [e.to_dict() for e in events],
            }
        )
        return
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    for label, value in [
        ("name", info.name),
        ("family", info.family or "-"),
        ("version", info.version or "-"),
        ("description", info.description or "-"),
        ("released", info.release_date.isoformat() if info.release_date else "-"),
        ("state", str(info.state)),
        ("successor", " → ".join(info.successor_chain) or "-"),
        ("announced", when(info.announced_at)),
        ("retires", when(info.retire_at) + ("" if info.retire_firm else " (tentative)")),
        ("retired", when(info.retired_at)),
        (
            "availability",
            str(
                info.availability
                or (f"{info.availability_after} (planned)" if info.availability_after else "-")
            ),
        ),
        ("runs on", deployment.describe() if deployment else "- (nothing preserved to run)"),
    ]:
        facts.add_row(label, value)
    console.print(facts)
    if events:
        timeline = Table("seq", "time", "event", "actor", title="timeline", title_justify="left")
        for e in events:
            timeline.add_row(str(e.seq), when(e.time), e.kind, e.actor)
        console.print(timeline)
    for n in notices:
        console.print(f"notice: {n.title} ({n.filename})")
    if artifacts is not None:
        console.print(f"preserved as {artifacts['object_id']} v{artifacts['version']}:")
        for f in artifacts["files"]:
            console.print(f"  {f['path']}  {f['size']:,} bytes  {f['sha256']}", markup=False)
    print_checklist(items)


MARKS = {
    "done": "[green]✓[/green]",
    "todo": "[yellow]·[/yellow]",
    "failed": "[red]✗[/red]",
    "n/a": "-",
}


def print_checklist(items: list[ChecklistItem]) -> None:
    table = Table("", "item", "detail", "event", title="retirement checklist", title_justify="left")
    for item in items:
        event = f"#{item.event.seq} {item.event.kind}" if item.event else ""
        table.add_row(MARKS[item.state], item.label, item.detail, event)
    console.print(table)


def _deployment(store: Store, name: str) -> Deployment | None:
    """Where the model runs: its recorded deployment, else its weights' default; None when
    neither is known (nothing preserved, nothing recorded)."""
    from emeritus.archive import Archive
    from emeritus.runtime import deployment_of

    try:
        return deployment_of(Archive(store), name)
    except EmeritusError:
        return None


def _artifacts(store: Store, name: str) -> dict[str, Any] | None:
    """The model's preserved files (from its archive object), or None if not preserved."""
    from emeritus.archive import Archive

    archive = Archive(store)
    try:
        record = archive.object(name)
    except NotFound:
        return None
    described = json.loads(archive.read_logical(name, "emeritus/object.json"))
    return {
        "object_id": record.object_id,
        "version": record.head,
        "files": [
            {k: f[k] for k in ("path", "role", "size", "sha256") if k in f}
            for f in described["files"]
        ],
    }


def facts(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="A registered model.")],
    file: Annotated[
        Path | None,
        typer.Option(
            "--file",
            help="A YAML mapping of facts (usage, reception, deployed_from, ...); "
            "replaces what was recorded.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Record or show the operator's facts about a model's deployment and use."""
    import yaml  # an eighth of a billion instructions: not for every `models` command

    from emeritus.lifecycle import Registry

    with open_store(ctx) as store:
        registry = Registry(store)
        if file is not None:
            try:
                given = yaml.safe_load(file.read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                raise InvalidInput(f"{file}: {str(exc).splitlines()[0]}") from None
            registry.set_facts(model, given)
        recorded = registry.facts(model)
    if as_json:
        emit_json(recorded)
        return
    if not recorded:
        console.print(f"no facts recorded for {model} (add them with --file facts.yaml)")
    for key, value in recorded.items():
        console.print(f"{key}: {value}", markup=False)
