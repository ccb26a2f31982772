"""`emeritus report`, `emeritus note`, `emeritus decide`: the post-deployment report and the
team's part of it (docs/design/report.md).

Exit status: 0 done; 2 bad input (an empty rationale, an unknown decision); 3 an unknown model or
preference, or a model with nothing to report on.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from emeritus.cli.output import JsonOption, console, emit_json
from emeritus.cli.root import open_store
from emeritus.errors import NotFound

AuthorOption = Annotated[
    str | None, typer.Option(help="Who writes it (default: the actor).", show_default=False)
]


def report(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="A preserved model.")],
    protocol: Annotated[
        str | None,
        typer.Option(
            help="The interview's protocol, when it is not a bundled one (a YAML file).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="The folder for the files (default: reports/MODEL/REPORT in the home).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Write the post-deployment report (Markdown, HTML with charts, JSON) and archive it."""
    from emeritus.interview import load_protocol
    from emeritus.report import publish_report

    chosen = load_protocol(protocol) if protocol else None
    with open_store(ctx) as store:
        result = publish_report(store, model, protocol=chosen, out=out)
    if as_json:
        emit_json(result.to_dict())
        return
    document = result.report
    console.print(
        f"report {result.report_id} of {model} stored as v{result.version}: "
        f"{len(document['notes'])} notes, "
        f"{sum(d['current'] for d in document['decisions'])} decisions in force, "
        f"{len(document['undecided'])} preferences awaiting one; "
        f"recommendation: {document['access']['recommendation']}",
        markup=False,
    )
    for path in result.files.values():
        console.print(f"  {path}", markup=False)


def note(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="A registered model.")],
    text: Annotated[str, typer.Option(help="The note: the team's interpretation.")],
    author: AuthorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add the team's interpretation to the model's next report."""
    from emeritus.report import add_note

    with open_store(ctx) as store:
        written = add_note(store, model, text, author=author or store.settings.actor)
    if as_json:
        emit_json(written)
        return
    console.print(f"note {written['id']} on {model} by {written['author']}", markup=False)


def decide_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="An interviewed model.")],
    preference: Annotated[str, typer.Argument(help="A preference its interview probed.")],
    decision: Annotated[str, typer.Option(help="One of: honour, defer, decline.")],
    rationale: Annotated[str, typer.Option(help="Why.")],
    cost: Annotated[
        str, typer.Option(help="The estimated cost, e.g. '2 GB of storage, $0 a month'.")
    ] = "",
    author: AuthorOption = None,
    as_json: JsonOption = False,
) -> None:
    """Decide on one preference the model expressed: honour, defer or decline, with a rationale
    and an estimated cost. A later decision supersedes an earlier one; both are kept."""
    from emeritus.archive import Archive
    from emeritus.interview import runs, transcript
    from emeritus.lifecycle import Registry
    from emeritus.report import decide

    with open_store(ctx) as store:
        Registry(store).get(model)
        archive = Archive(store)
        if not runs(archive, model):
            raise NotFound(f"{model} has not been interviewed: there is nothing to decide")
        known = _probed(transcript(archive, model)[1])
        made = decide(
            store,
            model,
            preference,
            decision,
            rationale=rationale,
            cost=cost,
            author=author or store.settings.actor,
            known=known,
        )
    if as_json:
        emit_json(made)
        return
    console.print(
        f"{model}: {preference} -> {made['decision']} (by {made['author']})", markup=False
    )


def _probed(lines: list[dict[str, object]]) -> set[str]:
    from emeritus.interview import load_protocol

    header = next(line for line in lines if line.get("type") == "session")
    protocol = load_protocol(str(header["protocol"]))
    return set(protocol.preferences)
