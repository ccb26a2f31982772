"""`emeritus init`: create the home and the database."""

from __future__ import annotations

import typer

from emeritus.cli.output import JsonOption, console, emit_json
from emeritus.cli.root import open_store


def init(
    ctx: typer.Context,
    as_json: JsonOption = False,
) -> None:
    """Create the data directory and bring the database schema up to date. Idempotent."""
    from sqlalchemy.engine import make_url

    with open_store(ctx) as store:
        settings = store.settings
    database = make_url(settings.database_url).render_as_string(hide_password=True)
    if as_json:
        emit_json({"home": str(settings.home), "database": database})
    else:
        console.print(f"home      {settings.home}\ndatabase  {database}")
