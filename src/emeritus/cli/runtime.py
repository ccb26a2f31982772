"""`emeritus run`, `emeritus fingerprint`, `emeritus models add-bundled`: running preserved
models and proving they are the same models."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from emeritus.cli.deployment import BackendOption, ServerModelOption, UrlOption, override_of
from emeritus.cli.output import JsonOption, byte_progress, console, emit_json
from emeritus.cli.root import open_store
from emeritus.errors import EmeritusError, IntegrityError, InvalidInput, NotFound

if TYPE_CHECKING:
    from emeritus.archive import Archive
    from emeritus.runtime import BehaviourReport, Deployment
    from emeritus.store import Store


def run(
    model: Annotated[str, typer.Argument(help="A preserved model.")],
    prompt: Annotated[str, typer.Argument(help="What to say to it.")],
    ctx: typer.Context,
    system: Annotated[
        str | None, typer.Option(help="A system message.", show_default=False)
    ] = None,
    max_tokens: Annotated[int, typer.Option(help="Most tokens to generate.")] = 256,
    temperature: Annotated[float, typer.Option(help="0 is greedy and reproducible.")] = 0.0,
    seed: Annotated[int, typer.Option(help="Sampling seed.")] = 0,
    backend_name: BackendOption = None,
    url: UrlOption = None,
    server_model: ServerModelOption = None,
) -> None:
    """Chat once with a preserved model where it is deployed, streaming its answer."""
    from emeritus.archive import Archive
    from emeritus.runtime import ChatRequest, Message, Params, open_preserved

    messages = ([Message("system", system)] if system else []) + [Message("user", prompt)]
    request = ChatRequest(
        tuple(messages), Params(max_tokens=max_tokens, temperature=temperature, seed=seed)
    )
    override = override_of(backend_name, url, server_model)
    with open_store(ctx) as store:
        backend, _size = open_preserved(Archive(store), model, override)
    try:
        for chunk in backend.stream_chat(request):
            typer.echo(chunk.text, nl=False)
            if chunk.usage is not None:
                typer.echo()
                typer.echo(
                    f"[{chunk.usage.prompt_tokens} prompt + "
                    f"{chunk.usage.completion_tokens} completion tokens, "
                    f"{chunk.finish_reason}, format {chunk.prompt_format}]",
                    err=True,
                )
    finally:
        backend.close()


def fingerprint(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="A preserved model.")],
    backend_name: BackendOption = None,
    url: UrlOption = None,
    server_model: ServerModelOption = None,
    across_backends: Annotated[
        str | None,
        typer.Option(
            "--across",
            help="BACKEND,BACKEND: answer the canaries on both (the same preserved weights) and "
            "report where each pair of answers parts; nothing is stored. --url and "
            "--server-model apply to a server backend among them.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Answer the canary prompts greedily where the model is deployed and store them as a new
    archive version; or, with --across, compare two backends on them."""
    from emeritus.archive import Archive

    if across_backends is not None:
        if backend_name is not None:
            raise InvalidInput("--across names both backends: leave out --backend")
        _across(ctx, model, across_backends, url, server_model, as_json)
        return
    override = override_of(backend_name, url, server_model)
    with open_store(ctx) as store:
        archive = Archive(store)
        name = take_fingerprint(archive, model, override)
        version = archive.object(model).head
    if as_json:
        emit_json({"model": model, "fingerprint": name, "version": version})
    else:
        console.print(f"fingerprinted {model}: {name} stored as v{version}")


def _across(
    ctx: typer.Context,
    model: str,
    names: str,
    url: str | None,
    server_model: str | None,
    as_json: bool,
) -> None:
    from emeritus.archive import Archive
    from emeritus.runtime import Backend, Deployment, across, backend_class, open_preserved

    chosen = [n.strip() for n in names.split(",") if n.strip()]
    if len(chosen) != 2:
        raise InvalidInput(f"--across takes two backends, BACKEND,BACKEND, not {names!r}")
    sides = []
    for name in chosen:
        remote = not backend_class(name).in_process
        side = Deployment(
            name, url if remote else None, server_model if remote else None, source="override"
        )
        backend_class(name).check_deployment(side)
        sides.append(side)
    opened: list[Backend] = []
    try:
        with open_store(ctx) as store:
            archive = Archive(store)
            for side in sides:
                opened.append(open_preserved(archive, model, side)[0])
        partings = across(opened[0], opened[1])
        runtimes = [b.describe() for b in opened]
    finally:
        for backend in opened:
            backend.close()
    if as_json:
        emit_json(
            {"model": model, "runtimes": runtimes, "canaries": [p.to_dict() for p in partings]}
        )
        return
    first, second = chosen
    table = Table(
        "canary", "compared", "parts at", first, second, title=f"{model}: {first} vs {second}"
    )
    for p in partings:
        where = "never" if p.first_difference is None else f"token {p.first_difference}"
        if p.compared == "text" and p.first_difference is not None:
            where = f"character {p.first_difference}"
        table.add_row(p.id, p.compared, where, _line(p.first), _line(p.second))
    console.print(table)
    same = sum(p.first_difference is None for p in partings)
    console.print(f"{same} of {len(partings)} canaries answered alike on {first} and {second}")


def _line(text: str, width: int = 40) -> str:
    return " ".join(text.split())[:width]


def check_behaviour(
    store: Store, model: str, override: Deployment | None = None
) -> list[BehaviourReport]:
    from emeritus.archive import Archive
    from emeritus.runtime import open_preserved, verify_behaviour

    archive = Archive(store)
    backend, _size = open_preserved(archive, model, override)
    try:
        return verify_behaviour(archive, model, backend)
    finally:
        backend.close()


def print_behaviour(reports: list[BehaviourReport], as_json: bool) -> None:
    if as_json:
        emit_json([r.to_dict() for r in reports])
    else:
        for report in reports:
            if not report.comparable:
                console.print(
                    f"{report.fingerprint}: not comparable: {report.reason}", markup=False
                )
                continue
            for result in report.results:
                unit = "token" if result.compared == "token_ids" else "character"
                line = (
                    f"match ({result.compared})"
                    if result.match
                    else (
                        f"MISMATCH at {unit} {result.first_difference}: expected "
                        f"{result.expected[:40]!r}, got {result.got[:40]!r}"
                    )
                )
                console.print(f"{report.fingerprint}: {result.id}: {line}", markup=False)
    comparable = [r for r in reports if r.comparable]
    bad = [r for r in comparable if not r.ok]
    if bad:
        if as_json:
            raise typer.Exit(IntegrityError.exit_code)
        raise IntegrityError(f"{bad[0].model}: behaviour differs from {bad[0].fingerprint}")
    if not comparable:
        if as_json:
            raise typer.Exit(IntegrityError.exit_code)
        raise IntegrityError("no fingerprint was taken under this runtime: nothing to compare")


def add_bundled(
    ctx: typer.Context,
    as_json: JsonOption = False,
    fingerprint_too: Annotated[
        bool,
        typer.Option("--fingerprint/--no-fingerprint", help="Also take a behavioural fingerprint."),
    ] = True,
) -> None:
    """Register and preserve the bundled models (SmolLM2-135M-Instruct, Gemma-3-270m)."""
    from emeritus.archive import Archive
    from emeritus.lifecycle import Registry
    from emeritus.runtime import BUNDLED

    done: list[dict[str, Any]] = []
    with open_store(ctx) as store:
        registry, archive = Registry(store), Archive(store)
        for spec in BUNDLED:
            try:
                registry.get(spec.name)
            except NotFound:
                registry.add(
                    spec.name,
                    family=spec.family,
                    version=spec.version,
                    description=spec.description,
                    release_date=spec.release_date,
                )
            with tempfile.TemporaryDirectory(prefix="emeritus-bundled-") as scratch:
                path = spec.locate(Path(scratch))
                with byte_progress(f"preserving {spec.name}", enabled=not as_json) as progress:
                    result = archive.preserve(spec.name, [path], progress=progress)
            entry: dict[str, Any] = {
                "model": spec.name,
                "version": result.version,
                "changed": result.changed,
            }
            if fingerprint_too and not has_fingerprint(archive, spec.name):
                entry["fingerprint"] = take_fingerprint(archive, spec.name)
                entry["version"] = archive.object(spec.name).head
            done.append(entry)
            if not as_json:
                console.print(
                    f"{spec.name}: preserved as v{entry['version']}"
                    + (f", fingerprint {entry['fingerprint']}" if "fingerprint" in entry else "")
                )
    if as_json:
        emit_json(done)


def take_fingerprint(archive: Archive, model: str, override: Deployment | None = None) -> str:
    from emeritus.runtime import fingerprint_model, open_preserved

    backend, _size = open_preserved(archive, model, override)
    try:
        return fingerprint_model(archive, model, backend)[0]
    finally:
        backend.close()


def has_fingerprint(archive: Archive, model: str) -> bool:
    try:
        return any(f.startswith("fingerprints/") for f in archive.logical_files(model))
    except EmeritusError:
        return False
