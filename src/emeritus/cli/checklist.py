"""`emeritus checklist`: how far a model's retirement has come, each item with the event that
satisfied it (also printed by `emeritus models show`).

Exit status: 0 done (whatever the items say); 3 an unknown model.
"""

from __future__ import annotations

from typing import Annotated

import typer

from emeritus.cli.models import print_checklist
from emeritus.cli.output import JsonOption, emit_json
from emeritus.cli.root import open_store


def checklist_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="A registered model.")],
    as_json: JsonOption = False,
) -> None:
    """The retirement checklist: notice, preservation, fingerprint, interview, review, report,
    decisions, access policy, essay channel."""
    from emeritus.report import checklist

    with open_store(ctx) as store:
        items = checklist(store, model)
    if as_json:
        emit_json([item.to_dict() for item in items])
        return
    print_checklist(items)
