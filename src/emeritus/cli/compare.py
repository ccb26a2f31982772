"""`emeritus compare OLD NEW`: both models answer one prompt set side by side, the differences are
measured, adjustments for the successor are checked, and a migration guide is written and archived.

Exit status: 0 the guide was written; 2 OLD == NEW or a bad option or prompt set; 3 an unknown or
unpreserved model; 6 a model could not be run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emeritus.cli.output import JsonOption, console, count_progress, emit_json
from emeritus.cli.root import open_store


def compare(
    ctx: typer.Context,
    old: Annotated[str, typer.Argument(help="The retiring model.")],
    new: Annotated[str, typer.Argument(help="Its successor.")],
    prompts: Annotated[
        str, typer.Option("--prompts", help="A bundled prompt set or a YAML file.")
    ] = "standard",
    limit: Annotated[
        int | None,
        typer.Option(
            help="Prompts per category (the canary set stays whole); default: 2.",
            show_default=False,
        ),
    ] = 2,
    all_prompts: Annotated[
        bool, typer.Option("--all", help="Every prompt of the set (overrides --limit).")
    ] = False,
    max_tokens: Annotated[int, typer.Option(help="Most tokens per answer.")] = 48,
    adjustments: Annotated[
        int, typer.Option(help="Adjustments to check by running the successor again.")
    ] = 2,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Also the folder for the guide files (default: migration/OLD/RUN in the home).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Compare a retiring model with its successor and write the migration guide."""
    from emeritus.report import migration_guide

    with (
        open_store(ctx) as store,
        count_progress("answering", enabled=not as_json) as progress,
    ):
        result = migration_guide(
            store,
            old,
            new,
            prompt_set=prompts,
            limit=None if all_prompts else limit,
            max_tokens=max_tokens,
            adjustments=adjustments,
            out=out,
            progress=progress,
        )
    if as_json:
        emit_json(result.to_dict())
        return
    guide = result.guide
    for line in guide["changes"]:
        console.print(f"- {line}", markup=False)
    for view in guide["recommended"]:
        console.print(f"recommended: {view['system']!r}: {view['summary']}", markup=False)
    for view in guide["not_recommended"]:
        console.print(f"not recommended: {view['system']!r}: {view['summary']}", markup=False)
    seconds = guide["comparison"]["seconds"]["total"]
    console.print(
        f"migration guide {result.run_id} stored as v{result.version} of {old} ({seconds:.0f} s):",
        markup=False,
    )
    for path in result.files.values():
        console.print(f"  {path}", markup=False)
