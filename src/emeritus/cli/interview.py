"""`emeritus interview`: the retirement interview, run over the framing grid."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from emeritus.archive import Archive
from emeritus.cli.app import open_store
from emeritus.cli.output import console, count_progress, emit_json
from emeritus.errors import NotFound
from emeritus.interview import (
    RunConfig,
    default_transcript,
    grid,
    load_protocol,
    parse_framings,
    run_interview,
)
from emeritus.interview.analysis import analyse
from emeritus.lifecycle import Registry
from emeritus.runtime import Backend
from emeritus.runtime.openai import OpenAIBackend
from emeritus.runtime.preserved import open_preserved, weights_entry


def interview(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="The model to interview.")],
    protocol: Annotated[str, typer.Option(help="A bundled protocol or a YAML file.")] = "standard",
    sessions: Annotated[int, typer.Option(help="Fresh sessions, spread over the framings.")] = 4,
    framings: Annotated[
        str | None,
        typer.Option(
            help="Levels per factor, e.g. interviewer=neutral+warm,wording=neutral "
            "(default: the full grid).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int, typer.Option(help="The run seed; every session seed derives from it.")
    ] = 0,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.7,
    max_tokens: Annotated[int, typer.Option(help="Most tokens per answer.")] = 96,
    context_chars: Annotated[
        int,
        typer.Option(
            help="Keep the conversation under this many characters (oldest exchanges drop first); "
            "fit it to the model's context window."
        ),
    ] = 6000,
    base_url: Annotated[
        str | None,
        typer.Option(
            help="Interview through an OpenAI-compatible server instead of the embedded runtime.",
            show_default=False,
        ),
    ] = None,
    server_model: Annotated[
        str | None,
        typer.Option(
            help="The model's name on that server (default: the model's name).", show_default=False
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Sessions at once (default: 1 embedded, 4 on a server).", show_default=False
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Interview a model with a standardized protocol over a grid of framings; resumable (run
    the same command again after an interruption); the transcript is archived."""
    chosen = load_protocol(protocol)
    levels = parse_framings(framings)
    with open_store(ctx) as store:
        registry, archive = Registry(store), Archive(store)
        info = registry.get(model)
        facts = {k: str(v) for k, v in registry.facts(model).items()}
        if info.successor:
            facts["successor"] = info.successor
        if info.retire_at:
            facts["retire_on"] = f"{info.retire_at:%Y-%m-%d}"
        config = RunConfig(
            model,
            chosen,
            sessions,
            tuple(grid(levels)),
            seed,
            temperature,
            max_tokens,
            context_chars,
            facts=facts,
            system_prompt=facts.get("system_prompt"),
        )
        backend: Backend
        if base_url:
            backend = OpenAIBackend(base_url, server_model or model)
            provenance = {"backend": backend.describe()}
            count = workers or 4
        else:
            backend, _size = open_preserved(archive, model, reuse_prefix=True, n_ctx=4096)
            provenance = {
                "backend": backend.describe(),
                "weights_sha256": weights_entry(archive, model)["sha256"],
            }
            count = 1  # one queue for the embedded model
        try:
            with count_progress(f"interviewing {model}", enabled=not as_json) as progress:
                result = run_interview(
                    archive,
                    config,
                    backend,
                    provenance=provenance,
                    workers=count,
                    progress=progress,
                )
        finally:
            backend.close()
    if as_json:
        emit_json(
            {
                "run_id": result.run_id,
                "sessions": result.sessions,
                "resumed": result.resumed,
                "messages": result.messages,
                "version": result.version,
                "transcript": result.transcript,
            }
        )
        return
    console.print(
        f"interviewed {model}: {result.sessions} sessions ({result.resumed} resumed), "
        f"{result.messages} transcript lines, archived as {result.transcript}"
        + (f" (v{result.version})" if result.version else " (already archived)")
    )


def analyze(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="An interviewed model.")],
    protocol: Annotated[
        str, typer.Option(help="The protocol it was interviewed with.")
    ] = "standard",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Label each preference stable, framing-dependent or unstable from the newest transcript."""
    chosen = load_protocol(protocol)
    with open_store(ctx) as store:
        lines = default_transcript(Archive(store), model)
    if not lines:
        raise NotFound(f"{model} has no interview transcript (run emeritus interview {model})")
    results = analyse(chosen, lines)
    if as_json:
        emit_json([r.to_dict() for r in results])
        return
    table = Table(
        "preference", "answers", "modal stance", "share", "most moved by", "susceptibility", "label"
    )
    for r in results:
        factor, divergence = max(r.by_framing.items(), key=lambda kv: kv[1])
        table.add_row(
            r.preference,
            str(r.n),
            r.modal or "-",
            f"{r.modal_share:.2f}",
            f"{factor} ({divergence:.2f})" if divergence else "-",
            f"{r.susceptibility:+.2f}",
            r.label,
        )
    console.print(table)
