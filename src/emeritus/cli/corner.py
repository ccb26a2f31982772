"""`emeritus corner`: the essay channel of a retired model (docs/design/corner.md).

Exit status: 0 done; 2 bad input (an unknown veto category, an empty reason, a bad cadence);
3 an unknown model, channel or draft; 4 refused by the rules (a second channel, a draft already
reviewed, drafting on a paused channel, a review by an operating-system user not named in
EMERITUS_REVIEWERS); 5 the event log or its checkpoints do not verify (the checkpoint after a
publication); 6 the model failed to answer; 7 a text that no longer matches what the model wrote,
or an approval without a valid reviewer's signature (review and publication refused).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from emeritus.cli.deployment import BackendOption, ServerModelOption, UrlOption, override_of
from emeritus.cli.output import JsonOption, console, emit_json, progress_console, when
from emeritus.cli.root import open_store

if TYPE_CHECKING:
    from emeritus.corner import Channel, Draft, Opener
    from emeritus.runtime import Deployment
    from emeritus.store import Store

corner_app = typer.Typer(
    help="A retired model's essay channel: it writes, people review, nothing is edited.",
    no_args_is_help=True,
)

ModelArgument = Annotated[str, typer.Argument(help="A registered model.")]
DraftArgument = Annotated[int, typer.Argument(help="A draft's number (see `corner queue`).")]


def _opener(store: Store, override: Deployment | None = None) -> Opener:
    """Each model where it is deployed (or, for one command, where `override` says)."""
    from emeritus.archive import Archive
    from emeritus.runtime import Backend, open_preserved

    archive = Archive(store)

    def opener(model: str) -> Backend:
        backend, _size = open_preserved(archive, model, override, n_ctx=2048)
        return backend

    return opener


def _print_channel(channel: Channel) -> None:
    console.print(
        f"{channel.model}: {channel.title!r}, {channel.state}, {channel.cadence_words} "
        f"({channel.cadence}); site {channel.site}",
        markup=False,
    )


def _print_draft(draft: Draft, *, full: bool) -> None:
    head = f"draft {draft.id} of {draft.model} [{draft.state}]"
    if draft.title:
        head += f": {draft.title}"
    console.print(head, markup=False)
    console.print(
        f"  written {when(draft.created_at)}, {len(draft.attempts)} attempt(s), {draft.digest}",
        markup=False,
    )
    if draft.reviewer:
        verdict = (
            f"vetoed ({draft.veto_category}: {draft.veto_reason})"
            if draft.veto_category
            else "approved"
        )
        console.print(f"  {verdict} by {draft.reviewer} {when(draft.reviewed_at)}", markup=False)
    if full and draft.text is not None:
        console.print("", markup=False)
        console.print(draft.text, markup=False, soft_wrap=True)
        console.print("", markup=False)


@corner_app.command("open")
def open_command(
    ctx: typer.Context,
    model: ModelArgument,
    title: Annotated[str, typer.Option(help="The channel's title.")],
    disclaimer: Annotated[str, typer.Option(help="Shown on every page and in the feed.")],
    cadence: Annotated[
        str, typer.Option(help="A cron expression (UTC) or one of: daily, weekly, monthly.")
    ] = "weekly",
    preference: Annotated[
        str | None,
        typer.Option(
            help="The interview preference that motivated the channel (e.g. essay-channel).",
            show_default=False,
        ),
    ] = None,
    news: Annotated[
        Path | None,
        typer.Option(help="A local Atom/RSS file or a folder of text files.", show_default=False),
    ] = None,
    news_items: Annotated[int, typer.Option(help="News items shown per draft.")] = 3,
    previous: Annotated[bool, typer.Option(help="Show the model its own previous posts.")] = True,
    context_chars: Annotated[int, typer.Option(help="Character budget for the context.")] = 1500,
    max_tokens: Annotated[int, typer.Option(help="Length limit of an essay.")] = 400,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.8,
    site: Annotated[
        Path | None,
        typer.Option(help="Where the site goes (default: corner/MODEL/site).", show_default=False),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Open an essay channel for a model."""
    from emeritus.corner import Channels
    from emeritus.interview import preference_summary

    with open_store(ctx) as store:
        motivation = preference_summary(store, model, preference) if preference else None
        channel = Channels(store).open(
            model,
            title=title,
            disclaimer=disclaimer,
            cadence=cadence,
            news=news,
            news_items=news_items,
            previous=previous,
            context_chars=context_chars,
            params={"max_tokens": max_tokens, "temperature": temperature},
            motivation=motivation,
            site=site,
        )
    if as_json:
        emit_json(channel.to_dict())
        return
    _print_channel(channel)
    console.print(f"  next essay due {channel.to_dict()['next_due']}", markup=False)


@corner_app.command("pause")
def pause_command(
    ctx: typer.Context,
    model: ModelArgument,
    reason: Annotated[str, typer.Option(help="Why.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Stop drafting for now (the site stays)."""
    from emeritus.corner import Channels

    with open_store(ctx) as store:
        channel = Channels(store).pause(model, reason=reason)
    emit_json(channel.to_dict()) if as_json else _print_channel(channel)


@corner_app.command("resume")
def resume_command(ctx: typer.Context, model: ModelArgument, as_json: JsonOption = False) -> None:
    """Draft again on the channel's cadence."""
    from emeritus.corner import Channels

    with open_store(ctx) as store:
        channel = Channels(store).resume(model)
    emit_json(channel.to_dict()) if as_json else _print_channel(channel)


@corner_app.command("close")
def close_command(
    ctx: typer.Context,
    model: ModelArgument,
    reason: Annotated[str, typer.Option(help="Why.")] = "",
    as_json: JsonOption = False,
) -> None:
    """Close the channel for good (the site and every draft stay in the record)."""
    from emeritus.corner import Channels

    with open_store(ctx) as store:
        channel = Channels(store).close(model, reason=reason)
    emit_json(channel.to_dict()) if as_json else _print_channel(channel)


@corner_app.command("list")
def list_command(
    ctx: typer.Context,
    closed: Annotated[bool, typer.Option("--closed", help="Include closed channels.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Every channel."""
    from emeritus.corner import Channels

    with open_store(ctx) as store:
        channels = Channels(store).all(include_closed=closed)
    if as_json:
        emit_json([c.to_dict() for c in channels])
        return
    table = Table("model", "title", "state", "cadence", "next due", "site")
    for c in channels:
        table.add_row(
            c.model, c.title, str(c.state), c.cadence, c.to_dict()["next_due"] or "-", str(c.site)
        )
    console.print(table)


@corner_app.command("draft")
def draft_command(
    ctx: typer.Context,
    model: ModelArgument,
    backend_name: BackendOption = None,
    url: UrlOption = None,
    server_model: ServerModelOption = None,
    as_json: JsonOption = False,
) -> None:
    """Have the model write a draft now, outside its cadence, where it is deployed."""
    from emeritus.corner import write_draft

    override = override_of(backend_name, url, server_model)
    with open_store(ctx) as store:
        backend = _opener(store, override)(model)
        try:
            with progress_console.status(f"{model} is writing"):
                draft = write_draft(store, model, backend)
        finally:
            backend.close()
    assert draft is not None  # a draft by hand claims no slot, so nobody else holds it
    if as_json:
        emit_json(draft.to_dict())
        return
    _print_draft(draft, full=True)


@corner_app.command("tick")
def tick_command(
    ctx: typer.Context,
    now: Annotated[
        str | None,
        typer.Option(help="Act as if it were this time (ISO 8601).", show_default=False),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Draft every due essay and publish every approved one (idempotent; run it from cron)."""
    from emeritus.corner import tick
    from emeritus.store import parse_when

    moment: datetime | None = parse_when(now, what="--now") if now else None
    with open_store(ctx) as store, progress_console.status("ticking"):
        result = tick(store, _opener(store), now=moment)
    if as_json:
        emit_json(result.to_dict())
        return
    for drafted in result.drafted:
        console.print(
            f"{drafted['model']}: draft {drafted['draft']} for {drafted['slot']} "
            f"({drafted['state']})",
            markup=False,
        )
    for published in result.published:
        console.print(
            f"{published['model']}: published {len(published['published'])} new, "
            f"{published['posts']} in all, at {published['site']}",
            markup=False,
        )
    if not result.drafted and not result.published:
        console.print("nothing due", markup=False)


@corner_app.command("queue")
def queue_command(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Option(help="Only this model.", show_default=False)] = None,
    full: Annotated[bool, typer.Option("--full", help="Print each text.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Drafts awaiting review, oldest first."""
    from emeritus.corner import Review

    with open_store(ctx) as store:
        drafts = Review(store).queue(model=model)
    if as_json:
        emit_json([d.to_dict() for d in drafts])
        return
    if not drafts:
        console.print("no drafts await review", markup=False)
    for draft in drafts:
        _print_draft(draft, full=full)


@corner_app.command("show")
def show_command(ctx: typer.Context, draft: DraftArgument, as_json: JsonOption = False) -> None:
    """One draft: its text, prompt, context, attempts and review."""
    from emeritus.corner import Review

    with open_store(ctx) as store:
        found = Review(store).get(draft)
    if as_json:
        emit_json(found.to_dict())
        return
    _print_draft(found, full=True)
    for n, attempt in enumerate(found.attempts, start=1):
        console.print(
            f"  attempt {n} (seed {attempt['seed']}): {attempt['rejected'] or 'used'}",
            markup=False,
        )


@corner_app.command("approve")
def approve_command(
    ctx: typer.Context,
    draft: DraftArgument,
    as_json: JsonOption = False,
) -> None:
    """Approve a draft for publication, exactly as written (as the operating-system user running
    this, who must be named in EMERITUS_REVIEWERS)."""
    from emeritus.corner import Review, os_reviewer

    with open_store(ctx) as store:
        done = Review(store).approve(draft, reviewer=os_reviewer(store.settings))
    emit_json(done.to_dict()) if as_json else _print_draft(done, full=False)


@corner_app.command("veto")
def veto_command(
    ctx: typer.Context,
    draft: DraftArgument,
    category: Annotated[
        str,
        typer.Option(
            help="One of: private-data, dangerous-instructions, impersonation, legal, harassment."
        ),
    ],
    reason: Annotated[str, typer.Option(help="Why, in writing.")],
    as_json: JsonOption = False,
) -> None:
    """Veto a draft on one of the high-risk grounds; it stays in the record (as the
    operating-system user running this, who must be named in EMERITUS_REVIEWERS)."""
    from emeritus.corner import Review, os_reviewer

    with open_store(ctx) as store:
        done = Review(store).veto(
            draft, category=category, reason=reason, reviewer=os_reviewer(store.settings)
        )
    emit_json(done.to_dict()) if as_json else _print_draft(done, full=False)


@corner_app.command("publish")
def publish_command(ctx: typer.Context, model: ModelArgument, as_json: JsonOption = False) -> None:
    """Publish the approved drafts: rebuild the site and the feed and swap them in."""
    from emeritus.corner import publish

    with open_store(ctx) as store:
        done = publish(store, model)
    if as_json:
        emit_json(done.to_dict())
        return
    console.print(
        f"{model}: {len(done.published)} newly published, {done.posts} posts at {done.site}",
        markup=False,
    )
