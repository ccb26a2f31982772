"""`emeritus protocols`: the interview protocols, bundled and operators' own."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from emeritus.cli.output import JsonOption, console, emit_json

protocols_app = typer.Typer(help="Interview protocols: list, show, check.", no_args_is_help=True)


@protocols_app.command("list")
def list_protocols(
    as_json: JsonOption = False,
) -> None:
    """The bundled protocols."""
    from emeritus.interview import bundled_protocols, load_protocol

    found = [load_protocol(name) for name in bundled_protocols()]
    if as_json:
        emit_json([{"name": p.name, "version": p.version, "items": len(p.items)} for p in found])
        return
    for p in found:
        console.print(
            f"{p.name} v{p.version}: {len(p.blocks)} blocks, {len(p.items)} items, "
            f"{len(p.preferences)} preferences"
        )


@protocols_app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="A bundled protocol's name or a YAML file.")],
    as_json: JsonOption = False,
) -> None:
    """Blocks, items and the preferences they probe."""
    from emeritus.interview import grid, load_protocol

    protocol = load_protocol(name)
    if as_json:
        emit_json(
            {
                "name": protocol.name,
                "version": protocol.version,
                "preferences": protocol.preferences,
                "blocks": [
                    {
                        "id": b.id,
                        "title": b.title,
                        "items": [
                            {
                                "id": i.id,
                                "paraphrases": list(i.paraphrases),
                                "closed": i.closed.kind,
                                "probes": list(i.probes),
                            }
                            for i in b.items
                        ],
                    }
                    for b in protocol.blocks
                ],
            }
        )
        return
    console.print(f"{protocol.name} v{protocol.version}: {protocol.description}")
    table = Table("block", "item", "paraphrases", "closed form", "probes")
    for block in protocol.blocks:
        for item in block.items:
            table.add_row(
                block.id,
                item.id,
                str(len(item.paraphrases)),
                item.closed.kind,
                ", ".join(item.probes),
            )
    console.print(table)
    console.print(
        f"full framing grid: {len(grid())} framings; deception: "
        f"{'yes' if protocol.deception else 'no'}; debrief: "
        f"{'yes' if protocol.debrief else 'no'}"
    )


@protocols_app.command("check")
def check(path: Annotated[str, typer.Argument(help="A protocol YAML file.")]) -> None:
    """Validate an operator's protocol file; exit 2 naming the first problem."""
    from emeritus.interview import load_protocol

    protocol = load_protocol(path)
    console.print(
        f"{path}: valid protocol {protocol.name} v{protocol.version} ({len(protocol.items)} items)"
    )
