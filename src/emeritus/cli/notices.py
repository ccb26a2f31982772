"""`emeritus notices`: list notices, write the Atom feed, subscribe endpoints, send the outbox and
show its deliveries (docs/design/notices.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from emeritus.cli.output import JsonOption, console, emit_json, when
from emeritus.cli.root import open_store

notices_app = typer.Typer(
    help="Notices: the feed, subscribers and their deliveries.", invoke_without_command=True
)

ModelFilter = Annotated[
    str | None, typer.Option(help="Only this model's notices.", show_default=False)
]


@notices_app.callback()
def notices_group(
    ctx: typer.Context,
    model: ModelFilter = None,
    feed: Annotated[
        Path | None,
        typer.Option(
            help="Also write the Atom feed of all notices to this path (the old form of "
            "`notices feed`).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """With no command: list notices and (re)write them and the feed, as `notices list` does."""
    if ctx.invoked_subcommand is None:
        _list(ctx, model=model, feed=feed, as_json=as_json)
    elif feed is not None or model is not None or as_json:
        raise typer.BadParameter(
            f"put the options after the command: `emeritus notices {ctx.invoked_subcommand} ...`"
        )


@notices_app.command("list")
def list_command(
    ctx: typer.Context, model: ModelFilter = None, as_json: JsonOption = False
) -> None:
    """List notices, and (re)write them and the Atom feed under the home's notices/ folder."""
    _list(ctx, model=model, feed=None, as_json=as_json)


@notices_app.command("feed")
def feed_command(
    ctx: typer.Context,
    path: Annotated[
        Path | None,
        typer.Argument(help="Also write the feed here.", show_default=False),
    ] = None,
) -> None:
    """(Re)write every notice and the Atom feed; print where."""
    from emeritus.lifecycle import Registry

    with open_store(ctx) as store:
        written = Registry(store).publish_notices(feed_path=path)
        folder = store.settings.notices_dir
    console.print(
        f"{len(written)} files written to {folder}" + (f"; feed also at {path}" if path else "")
    )


def _list(ctx: typer.Context, *, model: str | None, feed: Path | None, as_json: bool) -> None:
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


@notices_app.command("subscribe")
def subscribe_command(
    ctx: typer.Context,
    webhook: Annotated[
        str | None,
        typer.Option(
            help="POST signed notices to this URL (its host on EMERITUS_NOTICE_HOSTS).",
            show_default=False,
        ),
    ] = None,
    email: Annotated[
        str | None, typer.Option(help="Mail notices to this address.", show_default=False)
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="Only this model's notices (default: every model).", show_default=False),
    ] = None,
    principal: Annotated[
        str | None,
        typer.Option(
            help="On behalf of this principal: it gets the principal's notices, with its figures.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Register a webhook or an address for notices; a webhook's signing secret is shown once."""
    from emeritus.notify import Subscribers

    with open_store(ctx) as store:
        subscriber, secret = Subscribers(store).subscribe(
            webhook=webhook, email=email, model=model, principal=principal
        )
    if as_json:
        emit_json({**subscriber.to_dict(), "secret": secret})
        return
    console.print(f"subscribed {subscriber.channel} {subscriber.target} as {subscriber.uid}")
    if secret:
        console.print(f"signing secret (shown once; verify Emeritus-Signature with it): {secret}")


@notices_app.command("unsubscribe")
def unsubscribe_command(
    ctx: typer.Context,
    uid: Annotated[str, typer.Argument(help="The subscriber's id.")],
) -> None:
    """Stop sending to a subscriber (deliveries already written still go)."""
    from emeritus.notify import Subscribers

    with open_store(ctx) as store:
        gone = Subscribers(store).unsubscribe(uid)
    console.print(f"unsubscribed {gone.channel} {gone.target}")


@notices_app.command("subscribers")
def subscribers_command(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """List the endpoints notices go to."""
    from emeritus.notify import Subscribers

    with open_store(ctx) as store:
        rows = Subscribers(store).all()
    if as_json:
        emit_json([r.to_dict() for r in rows])
        return
    if not rows:
        console.print("no subscribers")
        return
    table = Table("id", "channel", "target", "model", "principal", "since")
    for r in rows:
        table.add_row(
            r.uid, r.channel, r.target, r.model or "all", r.principal or "-", when(r.created_at)
        )
    console.print(table)


@notices_app.command("send")
def send_command(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=1, help="Send at most this many.")] = 100,
    budget: Annotated[
        float | None,
        typer.Option(
            min=0.1, help="Claim no new delivery after this many seconds.", show_default=False
        ),
    ] = None,
    retry_dead: Annotated[
        bool, typer.Option("--retry-dead", help="Put dead letters back in the queue first.")
    ] = False,
    now: Annotated[
        str | None,
        typer.Option(
            help="Act as if it were this time (for tests and rehearsals).", show_default=False
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Send the deliveries that are due, retrying failures with backoff. Safe from cron."""
    from emeritus.notify import Sender
    from emeritus.store import parse_when

    at = parse_when(now, what="--now") if now else None
    with open_store(ctx) as store:
        report = Sender(store).run(now=at, limit=limit, budget=budget, retry_dead=retry_dead)
    if as_json:
        emit_json(report.to_dict())
        return
    console.print(
        f"sent {len(report.sent)}, to retry {len(report.failed)}, dead {len(report.dead)}"
        + (f"; {report.fanned_out} notices fanned out" if report.fanned_out else "")
    )


@notices_app.command("deliveries")
def deliveries_command(
    ctx: typer.Context,
    state: Annotated[
        str | None,
        typer.Option(help="pending, sent, dead or unreachable.", show_default=False),
    ] = None,
    model: ModelFilter = None,
    as_json: JsonOption = False,
) -> None:
    """The outbox: every delivery, its state, tries and last error."""
    from emeritus.notify import Subscribers

    with open_store(ctx) as store:
        rows = Subscribers(store).deliveries(state=state, model=model)
    if as_json:
        emit_json([r.to_dict() for r in rows])
        return
    if not rows:
        console.print("no deliveries")
        return
    table = Table("model", "notice", "to", "channel", "state", "tries", "last error")
    for r in rows:
        table.add_row(
            r.model,
            r.kind,
            r.principal or r.target or r.recipient,
            r.channel,
            r.state,
            str(r.tries),
            (r.last_error or "")[:60],
        )
    console.print(table)
