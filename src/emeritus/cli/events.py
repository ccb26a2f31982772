"""`emeritus events`: read and verify the hash-chained event log (docs/design/event-log.md).

Exit status of `verify`: 0 the chain is intact and agrees with the newest checkpoint (a new one
was taken); 5 it is broken, truncated or forked, or a checkpoint's signature does not verify;
1 the chain verified but the new checkpoint could not be written.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from emeritus.cli.output import JsonOption, console, emit_json, when
from emeritus.cli.root import open_store
from emeritus.errors import IntegrityError, InvalidInput

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
    as_json: JsonOption = False,
) -> None:
    """List events, oldest first."""
    from emeritus.store import canonical_json, list_events

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
    as_json: JsonOption = False,
) -> None:
    """Re-derive every event's digest and link, compare the chain with the newest signed
    checkpoint, and anchor it (exit status 5 when broken, truncated, forked or badly signed)."""
    from emeritus.archive import Anchor, Archive
    from emeritus.store import iso

    with open_store(ctx) as store:
        report = Anchor(Archive(store)).verify()
    if as_json:
        emit_json(report.to_dict())
        if not report.ok:
            raise typer.Exit(IntegrityError.exit_code)
        return
    if not report.ok:
        raise IntegrityError(str(report.problem))
    chain, newest = report.chain, report.newest
    console.print(f"event chain intact: {chain.events} events, head {chain.head_digest}")
    if newest.checkpoint is None:
        console.print("no checkpoint yet: every event was not yet anchored")
    else:
        cp = newest.checkpoint
        console.print(
            f"agrees with the newest checkpoint: event {cp.seq}, signed {iso(cp.time)}, "
            f"held by {', '.join(newest.sources)}",
            markup=False,
        )
        if chain.not_anchored_count:
            console.print(f"{chain.not_anchored_count} event(s) after it not yet anchored:")
            for event in chain.not_anchored[:20]:
                console.print(f"  {event['seq']} {event['kind']} {event['subject']}", markup=False)
            if chain.not_anchored_count > 20:
                console.print(f"  ... and {chain.not_anchored_count - 20} more")
    for skipped in newest.skipped:
        console.print(f"copy not read: {skipped}", markup=False)
    if report.taken is not None:
        console.print(f"anchored: new checkpoint at event {report.taken.seq}")
