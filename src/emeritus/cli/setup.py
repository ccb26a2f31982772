"""`emeritus init`: create the home and the database."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from emeritus.cli.app import open_store
from emeritus.cli.output import console, emit_json


def init(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Create the data directory and bring the database schema up to date. Idempotent."""
    with open_store(ctx) as store:
        settings = store.settings
    database = make_url(settings.database_url).render_as_string(hide_password=True)
    if as_json:
        emit_json({"home": str(settings.home), "database": database})
    else:
        console.print(f"home      {settings.home}\ndatabase  {database}")
