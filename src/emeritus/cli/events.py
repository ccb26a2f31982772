"""`emeritus events`: read and verify the hash-chained event log."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from emeritus.cli.app import open_store
from emeritus.cli.output import console, emit_json, when
from emeritus.errors import IntegrityError, InvalidInput
from emeritus.store import canonical_json, list_events, verify_chain

events_app = typer.Typer(help="The append-only, hash-chained event log.", no_args_is_help=True)


@events_app.command("list")
def list_(
    ctx: typer.Context,
    subject: Annotated[
        str | None,
        typer.Option(
            help="Only events about this subject (TYPE:ID; a bare name means model:NAME).",
            show_default=False,
        ),
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option(
            help="Only this kind of event; a prefix ending in '.' matches a family.",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="Only the newest N events.", show_default=False)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List events, oldest first."""
    if limit is not None and limit < 1:
        raise InvalidInput(f"--limit must be at least 1, not {limit}")
    if subject is not None and ":" not in subject:
        subject = f"model:{subject}"
    with open_store(ctx) as store, store.transaction() as session:
        events = list_events(session, subject=subject, kind=kind, limit=limit)
    if as_json:
        emit_json([e.to_dict() for e in events])
        return
    table = Table("seq", "time", "kind", "subject", "actor", "payload")
    for e in events:
        payload = canonical_json(e.payload)
        table.add_row(
            str(e.seq),
            when(e.time),
            e.kind,
            e.subject,
            e.actor,
            payload if len(payload) <= 80 else payload[:77] + "...",
        )
    console.print(table)


@events_app.command("verify")
def verify(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Re-derive every event's digest and link; name the first bad event (exit status 5)."""
    with open_store(ctx) as store, store.transaction() as session:
        report = verify_chain(session)
    if as_json:
        emit_json(report.to_dict())
        if not report.ok:
            raise typer.Exit(IntegrityError.exit_code)
        return
    if not report.ok:
        raise IntegrityError(f"event chain broken: {report.problem}")
    console.print(f"event chain intact: {report.events} events, head {report.head_digest}")
