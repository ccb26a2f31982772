"""`emeritus deprecate`, `emeritus retire` and `emeritus lifecycle`: moving models along."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from emeritus.cli.app import open_store
from emeritus.cli.output import JsonOption, console, day, emit_json, when

if TYPE_CHECKING:
    from emeritus.store import Store

lifecycle_app = typer.Typer(
    help="Scheduled lifecycle work and cancellations.", no_args_is_help=True
)

ForceOption = Annotated[
    bool, typer.Option("--force", help="Override a notice or date rule; needs --reason.")
]
ReasonOption = Annotated[
    str | None, typer.Option(help="Why: recorded in the event and the notice.", show_default=False)
]


def _publish(store: Store) -> None:
    # The database is the record; the files are rendered from it after the commit.
    from emeritus.lifecycle import Registry

    Registry(store).publish_notices()


def deprecate(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="The model to deprecate.")],
    retire_on: Annotated[
        str,
        typer.Option(
            help="Retirement date (YYYY-MM-DD, 00:00 UTC) or ISO time with offset.",
            show_default=False,
        ),
    ],
    successor: Annotated[
        str | None,
        typer.Option(help="A registered, active model that replaces it.", show_default=False),
    ] = None,
    notice_days: Annotated[
        int | None,
        typer.Option(
            help="Minimum notice in days (default: $EMERITUS_NOTICE_DAYS or 60).",
            show_default=False,
        ),
    ] = None,
    availability_after: Annotated[
        str, typer.Option(help="Availability once retired: none, restricted or public.")
    ] = "none",
    force: ForceOption = False,
    reason: ReasonOption = None,
    as_json: JsonOption = False,
) -> None:
    """Announce a model's retirement: set the date and successor, write a notice."""
    from emeritus.lifecycle import Availability, Registry
    from emeritus.store import parse_when

    retire_at = parse_when(retire_on, what="retirement date")
    after = Availability.parse(availability_after)
    with open_store(ctx) as store:
        info = Registry(store).deprecate(
            model,
            retire_at=retire_at,
            successor=successor,
            notice_days=notice_days,
            force=force,
            reason=reason,
            availability_after=after,
        )
        _publish(store)
        notices_dir = store.settings.notices_dir
    if as_json:
        emit_json(info.to_dict())
        return
    console.print(
        f"[bold]{info.name}[/] deprecated: retires {when(info.retire_at)}"
        + (f", successor {info.successor}" if info.successor else "")
        + f"; notice written to {notices_dir}"
    )


def retire(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="The model to retire.")],
    availability: Annotated[
        str | None,
        typer.Option(
            help="none, restricted or public (default: as planned at deprecation).",
            show_default=False,
        ),
    ] = None,
    force: ForceOption = False,
    reason: ReasonOption = None,
    as_json: JsonOption = False,
) -> None:
    """Retire a deprecated model whose date has come, or change a retired model's availability."""
    from emeritus.lifecycle import Availability, Registry

    chosen = Availability.parse(availability) if availability else None
    with open_store(ctx) as store:
        info, changed = Registry(store).retire(
            model, availability=chosen, force=force, reason=reason
        )
        if changed:
            _publish(store)
    if as_json:
        emit_json({**info.to_dict(), "changed": changed})
    elif changed:
        console.print(f"[bold]{info.name}[/] retired; availability {info.availability}")
    else:
        console.print(f"{info.name} is already retired with availability {info.availability}")


@lifecycle_app.command("tick")
def tick(
    ctx: typer.Context,
    now: Annotated[
        str | None,
        typer.Option(
            help="Act as if it were this time (for tests and rehearsals).", show_default=False
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Retire every deprecated model whose date has passed, and anchor the event log when its
    newest checkpoint is a day old (exit status 5 when the log does not verify). Idempotent;
    safe from cron."""
    from emeritus.archive import Anchor, Archive
    from emeritus.lifecycle import Registry
    from emeritus.store import parse_when, utc_now

    at = parse_when(now, what="--now") if now else utc_now()
    with open_store(ctx) as store:
        retired = Registry(store).tick(now=at)
        if retired:
            _publish(store)
        # At least daily: the events since the last checkpoint are the ones not yet anchored.
        anchored = Anchor(Archive(store)).take_if_older(now=at)
    if as_json:
        emit_json(
            {
                "now": at.isoformat(),
                "retired": [m.to_dict() for m in retired],
                "anchored": anchored.to_dict() if anchored else None,
            }
        )
        return
    for m in retired:
        console.print(
            f"retired [bold]{m.name}[/] (due {day(m.retire_at)}); availability {m.availability}"
        )
    if anchored is not None:
        console.print(f"event log anchored: new checkpoint at event {anchored.seq}")
    if not retired:
        console.print("nothing due")


@lifecycle_app.command("cancel")
def cancel(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="The deprecated model to keep active.")],
    reason: Annotated[
        str, typer.Option(help="Why the deprecation is cancelled.", show_default=False)
    ],
    as_json: JsonOption = False,
) -> None:
    """Cancel a deprecation: the model becomes active again, and a notice says so."""
    from emeritus.lifecycle import Registry

    with open_store(ctx) as store:
        info = Registry(store).cancel(model, reason=reason)
        _publish(store)
    if as_json:
        emit_json(info.to_dict())
    else:
        console.print(f"deprecation of [bold]{info.name}[/] cancelled; it is active again")
