"""`emeritus notices`: list notices and render them with their Atom feed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from emeritus.cli.app import open_store
from emeritus.cli.output import JsonOption, console, emit_json, when


def notices(
    ctx: typer.Context,
    model: Annotated[
        str | None, typer.Option(help="Only this model's notices.", show_default=False)
    ] = None,
    feed: Annotated[
        Path | None,
        typer.Option(
            help="Also write the Atom feed of all notices to this path.", show_default=False
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """List notices, and (re)write them and the Atom feed under the home's notices/ folder."""
    from emeritus.lifecycle import Registry

    with open_store(ctx) as store:
        registry = Registry(store)
        shown = registry.notices(model=model)
        registry.publish_notices(feed_path=feed)
        folder = store.settings.notices_dir
    if as_json:
        emit_json([n.to_dict() for n in shown])
        return
    if not shown:
        console.print("no notices yet")
    else:
        table = Table("published", "model", "kind", "title")
        for n in shown:
            table.add_row(when(n.published_at), n.model, n.kind, n.title)
        console.print(table)
    console.print(
        f"notices and feed.atom written to {folder}" + (f"; feed also at {feed}" if feed else "")
    )
