"""`emeritus deprecate`, `emeritus retire` and `emeritus lifecycle`: moving models along."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from emeritus.cli.output import JsonOption, console, day, emit_json, when
from emeritus.cli.root import open_store

if TYPE_CHECKING:
    from datetime import datetime

    from emeritus.lifecycle import Registry
    from emeritus.notify import DeliveryConfig
    from emeritus.store import Checkpoint, Store

# A tick sends for at most this long; the rest goes on the next tick (docs/design/notices.md).
TICK_SEND_BUDGET_S = 30.0

lifecycle_app = typer.Typer(
    help="Scheduled lifecycle work and cancellations.", no_args_is_help=True
)

ForceOption = Annotated[
    bool, typer.Option("--force", help="Override a notice or date rule; needs --reason.")
]
ReasonOption = Annotated[
    str | None, typer.Option(help="Why: recorded in the event and the notice.", show_default=False)
]


def _registry(store: Store) -> Registry:
    # Every notice a command writes carries its deliveries (docs/design/notices.md).
    from emeritus.notify import notifying_registry

    return notifying_registry(store)


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
    tentative: Annotated[
        bool,
        typer.Option("--tentative", help="The date may still move: notices say so."),
    ] = False,
    force: ForceOption = False,
    reason: ReasonOption = None,
    as_json: JsonOption = False,
) -> None:
    """Announce a model's retirement: set the date and successor, write a notice."""
    from emeritus.lifecycle import Availability
    from emeritus.store import parse_when

    retire_at = parse_when(retire_on, what="retirement date")
    after = Availability.parse(availability_after)
    with open_store(ctx) as store:
        info = _registry(store).deprecate(
            model,
            retire_at=retire_at,
            successor=successor,
            notice_days=notice_days,
            force=force,
            reason=reason,
            availability_after=after,
            tentative=tentative,
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
    from emeritus.lifecycle import Availability

    chosen = Availability.parse(availability) if availability else None
    with open_store(ctx) as store:
        info, changed = _registry(store).retire(
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
    """Retire every deprecated model whose date has passed, send the reminders that are due
    and the outbox's deliveries, and anchor the event log when its newest checkpoint is a day
    old (exit status 5 when the log does not verify). Idempotent; safe from cron."""
    from emeritus.lifecycle import any_deprecated
    from emeritus.notify import DeliveryConfig
    from emeritus.store import parse_when, utc_now

    at = parse_when(now, what="--now") if now else utc_now()
    config = DeliveryConfig.from_env()  # refused settings are refused whether or not work is due
    # Most ticks have nothing due: Core reads say so, and the ORM, the registry's and the
    # outbox's modules are then never loaded (a third of a tick's instructions).
    retired, reminded = [], []
    with open_store(ctx) as store:
        if any_deprecated(store):  # the only models a tick retires or reminds about
            registry = _registry(store)
            retired = registry.tick(now=at)
            reminded = registry.remind(now=at)
            if retired or reminded:
                _publish(store)
        sent = _send(store, config, now=at if now else None)
        anchored = _anchor_if_due(store, at)
    if as_json:
        emit_json(
            {
                "now": at.isoformat(),
                "retired": [m.to_dict() for m in retired],
                "reminders": [n.to_dict() for n in reminded],
                "deliveries": sent,
                "anchored": anchored.to_dict() if anchored else None,
            }
        )
        return
    for n in reminded:
        console.print(f"reminder: {n.title}")
    if sent["sent"] or sent["failed"] or sent["dead"]:
        console.print(
            f"deliveries: sent {len(sent['sent'])}, to retry {len(sent['failed'])}, "
            f"dead {len(sent['dead'])}"
        )
    for m in retired:
        console.print(
            f"retired [bold]{m.name}[/] (due {day(m.retire_at)}); availability {m.availability}"
        )
    if anchored is not None:
        console.print(f"event log anchored: new checkpoint at event {anchored.seq}")
    if not (retired or reminded or sent["sent"] or sent["failed"] or sent["dead"]):
        console.print("nothing due")


def _send(store: Store, config: DeliveryConfig, *, now: datetime | None) -> dict[str, Any]:
    """The outbox's due deliveries, sent (`SendReport.to_dict()`); when none is due the sender
    (and with it the ORM) is not loaded."""
    from emeritus.notify import NOTHING_SENT, deliveries_due
    from emeritus.store import utc_now

    if not deliveries_due(store, now or utc_now()):
        return dict(NOTHING_SENT)
    from emeritus.notify import Sender

    return Sender(store, config).run(now=now, budget=TICK_SEND_BUDGET_S).to_dict()


def _anchor_if_due(store: Store, at: datetime) -> Checkpoint | None:
    """At least daily: the events since the last checkpoint are the ones not yet anchored.
    The database's checkpoint says, most days, that none is due: then the archive (and its
    copies, S3 ones included) is left unread."""
    from emeritus.store import ANCHOR_EVERY

    if store.anchored_within(ANCHOR_EVERY, at):
        return None
    from emeritus.archive import Anchor, Archive

    return Anchor(Archive(store)).take_if_older(ANCHOR_EVERY, now=at)


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
    with open_store(ctx) as store:
        info = _registry(store).cancel(model, reason=reason)
        _publish(store)
    if as_json:
        emit_json(info.to_dict())
    else:
        console.print(f"deprecation of [bold]{info.name}[/] cancelled; it is active again")


@lifecycle_app.command("postpone")
def postpone(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="The deprecated model whose date moves.")],
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="The new retirement date (YYYY-MM-DD, 00:00 UTC) or ISO time with offset.",
            show_default=False,
        ),
    ],
    reason: Annotated[
        str, typer.Option(help="Why the date moves: in the notice.", show_default=False)
    ],
    firm: Annotated[
        bool | None,
        typer.Option(
            "--firm/--tentative",
            help="Whether the new date is firm (default: as the old one was).",
            show_default=False,
        ),
    ] = None,
    notice_days: Annotated[
        int | None,
        typer.Option(help="Minimum notice when the date moves earlier.", show_default=False),
    ] = None,
    force: ForceOption = False,
    as_json: JsonOption = False,
) -> None:
    """Move a deprecated model's retirement date, with one notice; the notice period applies
    only when the date moves earlier. Reminders start over from the new date."""
    from emeritus.store import parse_when

    at = parse_when(to, what="--to")
    with open_store(ctx) as store:
        info = _registry(store).postpone(
            model,
            to=at,
            reason=reason,
            tentative=None if firm is None else not firm,
            notice_days=notice_days,
            force=force,
        )
        _publish(store)
    if as_json:
        emit_json(info.to_dict())
    else:
        console.print(
            f"[bold]{info.name}[/] now retires {when(info.retire_at)}"
            + ("" if info.retire_firm else " (tentative)")
        )


_BARS = " ▁▂▃▄▅▆▇█"


def sparkline(counts: tuple[int, ...] | list[int]) -> str:
    """Requests per day as one line of block characters, scaled to the busiest day."""
    top = max(counts, default=0)
    if top == 0:
        return _BARS[0] * len(counts)
    return "".join(_BARS[0] if c == 0 else _BARS[max(1, round(c / top * 8))] for c in counts)


@lifecycle_app.command("stragglers")
def stragglers_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="A deprecated or retired model.")],
    days: Annotated[int, typer.Option(min=1, max=365, help="How many days back to look.")] = 30,
    as_json: JsonOption = False,
) -> None:
    """Who still calls a deprecated model: requests per day, tokens, the last call, and whether
    they have called its successor yet."""
    from rich.table import Table

    from emeritus.notify import find_stragglers

    with open_store(ctx) as store:
        successor, found = find_stragglers(store, model, days=days)
    if as_json:
        emit_json(
            {
                "model": model,
                "successor": successor,
                "days": days,
                "stragglers": [s.to_dict() for s in found],
            }
        )
        return
    if not found:
        console.print(f"nobody called {model} in the last {days} days")
        return
    table = Table(
        "principal",
        "keys",
        f"requests per day ({days} d, today last)",
        "requests",
        "tokens",
        "last call",
        f"called {successor}" if successor else "successor",
    )
    for s in found:
        heir = (
            "-"
            if successor is None
            else (
                f"yes, {s.successor_requests} (last {day(s.successor_last_call)})"
                if s.moved
                else "no"
            )
        )
        table.add_row(
            s.principal,
            ", ".join(s.keys),
            sparkline(s.per_day),
            str(s.requests),
            str(s.tokens),
            when(s.last_call),
            heir,
        )
    console.print(table)
