"""Notices to the people who use a model: Markdown announcements and an Atom feed.

A notice is composed and stored with the transition that causes it; the files under
`$EMERITUS_HOME/notices/` are rendered from the database, so they can always be rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from emeritus.lifecycle.models import ModelInfo
from emeritus.lifecycle.states import Availability
from emeritus.lifecycle.tables import ModelRecord, NoticeRecord
from emeritus.store import atomic_write, human_day, iso

FEED_NAME = "feed.atom"

_AFTER = {
    Availability.NONE: "it will no longer be served",
    Availability.RESTRICTED: "it stays available to approved researchers and the paid tier "
    "(apply for access)",
    Availability.PUBLIC: "it stays publicly available",
}


@dataclass(frozen=True)
class Notice:
    uid: str
    model: str
    kind: str
    title: str
    body: str
    published_at: datetime

    @property
    def filename(self) -> str:
        return f"{self.published_at:%Y%m%d}-{self.model}-{self.kind}-{self.uid[:8]}.md"

    def to_dict(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "model": self.model,
            "kind": self.kind,
            "title": self.title,
            "published_at": iso(self.published_at),
            "file": self.filename,
            "body": self.body,
        }

    @classmethod
    def from_record(cls, record: NoticeRecord) -> Notice:
        return cls(
            record.uid,
            record.model.name,
            record.kind,
            record.title,
            record.body,
            record.published_at,
        )


def _day(value: datetime | None) -> str:
    return "-" if value is None else f"{value:%d %B %Y}".lstrip("0")


def _label(model: ModelRecord) -> str:
    extra = ", ".join(
        x for x in (model.family, f"version {model.version}" if model.version else "") if x
    )
    return f"**{model.name}**" + (f" ({extra})" if extra else "")


def migration_url(public_url: str, model: str) -> str:
    return f"{public_url}/models/{model}/migration"


def compose_deprecation(
    model: ModelRecord, *, public_url: str, reason: str | None
) -> tuple[str, str]:
    assert model.announced_at is not None and model.retire_at is not None
    days = (model.retire_at - model.announced_at).days
    after = Availability(model.availability_after or Availability.NONE)
    title = f"{model.name} will be retired on {human_day(model.retire_at)}" + _tentative(model)
    lines = [
        f"# {title}",
        "",
        f"{_label(model)} is deprecated as of {_day(model.announced_at)} and will be retired on "
        f"**{_day(model.retire_at)} at {model.retire_at:%H:%M} UTC** ({days} days' notice). "
        f"After that date {_AFTER[after]}.",
        *_firmness(model),
        *_todo_and_dates(model, public_url),
    ]
    if reason:
        lines += ["", f"Note: {reason}"]
    return title, "\n".join(lines) + "\n"


def _todo_and_dates(model: ModelRecord, public_url: str) -> list[str]:
    """What every dated notice ends with: what users should do, then the dates."""
    return [
        "",
        "## What you should do",
        "",
        *_numbered(_steps(model, public_url)),
        "",
        "## Dates",
        "",
        *_dates(model),
    ]


def _tentative(model: ModelRecord) -> str:
    return "" if model.retire_firm else " (tentative date)"


def _firmness(model: ModelRecord) -> list[str]:
    if model.retire_firm:
        return []
    return [
        "",
        "The date is **tentative**: it may still move, and a notice will say so if it does.",
    ]


def _numbered(steps: list[str]) -> list[str]:
    return [f"{n}. {step}" for n, step in enumerate(steps, start=1)]


def _dates(model: ModelRecord) -> list[str]:
    assert model.announced_at is not None and model.retire_at is not None
    after = Availability(model.availability_after or Availability.NONE)
    firmness = "firm" if model.retire_firm else "tentative"
    return [
        "| | |",
        "|---|---|",
        f"| Announced | {iso(model.announced_at)} |",
        f"| Retirement | {iso(model.retire_at)} ({firmness}) |",
        f"| Successor | {_successor_line(model)} |",
        f"| Availability after retirement | {after} |",
    ]


def _successor_line(model: ModelRecord) -> str:
    heir = model.successor
    if heir is None:
        return "none named"
    if heir.state == "deprecated" and heir.retire_at is not None:
        return f"{heir.name} (itself deprecated: retires {human_day(heir.retire_at)})"
    if heir.state == "retired":
        return f"{heir.name} (itself retired)"
    return heir.name


def _steps(model: ModelRecord, public_url: str) -> list[str]:
    after = Availability(model.availability_after or Availability.NONE)
    successor = model.successor.name if model.successor else None
    if successor:
        steps = [
            f"Move to its successor, **{successor}**: try your prompts and workflows with it now, "
            "while both models are available.",
            f"Read the migration guide, which shows side by side how {successor} answers "
            f"differently: {migration_url(public_url, model.name)}",
        ]
    else:
        steps = [
            "No successor has been named. Plan to move your work to another model before "
            "the retirement date."
        ]
    if after is Availability.RESTRICTED:
        steps.append(
            "If your research depends on this model, apply for continued access before "
            "the retirement date."
        )
    return steps


def compose_reminder(model: ModelRecord, *, public_url: str, now: datetime) -> tuple[str, str]:
    """A reminder, counting the days actually left (a tick after a gap sends it late)."""
    assert model.retire_at is not None
    days = -(-(model.retire_at - now) // timedelta(days=1))  # whole days, rounded up
    left = "tomorrow" if days <= 1 else f"in {days} days"
    title = f"Reminder: {model.name} retires {left}, on {human_day(model.retire_at)}"
    title += _tentative(model)
    lines = [
        f"# {title}",
        "",
        f"{_label(model)} will be retired on **{_day(model.retire_at)} at "
        f"{model.retire_at:%H:%M} UTC**.",
        *_firmness(model),
        *_todo_and_dates(model, public_url),
    ]
    return title, "\n".join(lines) + "\n"


def compose_postponement(
    model: ModelRecord, *, previous: datetime, public_url: str, reason: str
) -> tuple[str, str]:
    assert model.retire_at is not None
    moved = "postponed" if model.retire_at > previous else "brought forward"
    title = f"The retirement of {model.name} is {moved} to {human_day(model.retire_at)}"
    title += _tentative(model)
    lines = [
        f"# {title}",
        "",
        f"{_label(model)} was to be retired on {_day(previous)}; it will now be retired on "
        f"**{_day(model.retire_at)} at {model.retire_at:%H:%M} UTC**.",
        *_firmness(model),
        "",
        f"Reason: {reason}",
        *_todo_and_dates(model, public_url),
    ]
    return title, "\n".join(lines) + "\n"


def compose_successor_change(model: ModelRecord, *, public_url: str) -> tuple[str, str]:
    """To the users of a model whose successor has itself been deprecated."""
    heir = model.successor
    assert heir is not None and heir.retire_at is not None
    title = f"{model.name}'s successor {heir.name} is itself deprecated"
    lines = [
        f"# {title}",
        "",
        f"{_label(model)} names **{heir.name}** as its successor. {heir.name} will itself be "
        f"retired on **{_day(heir.retire_at)}**"
        + (
            f"; its successor is **{heir.successor.name}**."
            if heir.successor
            else "; it has no successor named yet."
        ),
        "",
        "If you are moving your work, plan for the whole chain: "
        + " → ".join(successor_chain(model))
        + ".",
        "",
        f"Migration guide: {migration_url(public_url, model.name)}",
    ]
    return title, "\n".join(lines) + "\n"


def successor_chain(model: ModelRecord) -> list[str]:
    """The model, its successor, that one's successor, ...: as `models list` shows it (stops at
    a repeat or after `CHAIN_LIMIT` names)."""
    return [model.name, *ModelInfo.from_record(model).successor_chain]


def compose_cancellation(model: ModelRecord, *, reason: str) -> tuple[str, str]:
    title = f"The retirement of {model.name} is cancelled"
    body = (
        f"# {title}\n\n{_label(model)} is no longer deprecated: it stays active and there is "
        f"no retirement date.\n\nReason: {reason}\n"
    )
    return title, body


def compose_retirement(model: ModelRecord, *, public_url: str) -> tuple[str, str]:
    assert model.retired_at is not None
    availability = Availability(model.availability or Availability.NONE)
    title = f"{model.name} is retired"
    lines = [
        f"# {title}",
        "",
        f"{_label(model)} was retired on {_day(model.retired_at)}; "
        f"{_AFTER[availability].replace('will no longer be', 'is no longer')}.",
    ]
    if model.successor:
        lines += [
            "",
            f"Its successor is **{model.successor.name}**. Migration guide: "
            f"{migration_url(public_url, model.name)}",
        ]
    return title, "\n".join(lines) + "\n"


def compose_availability(model: ModelRecord, *, previous: str) -> tuple[str, str]:
    availability = Availability(model.availability or Availability.NONE)
    title = f"{model.name}: availability changed from {previous} to {availability}"
    body = (
        f"# {title}\n\n{_label(model)} is retired; from now on "
        f"{_AFTER[availability].replace('will no longer be', 'is no longer')}.\n"
    )
    return title, body


def render_feed(notices: list[Notice], *, public_url: str) -> bytes:
    """An Atom feed (RFC 4287) of every notice, newest first."""
    from feedgen.feed import FeedGenerator  # with dateutil and six: a tenth of a second

    feed = FeedGenerator()
    feed.id(f"{public_url}/notices")
    feed.title("Model notices")
    feed.subtitle("Deprecations, retirements and availability of models, from emeritus")
    feed.author({"name": "emeritus"})
    feed.link(href=f"{public_url}/notices/{FEED_NAME}", rel="self")
    feed.language("en")
    newest = max((n.published_at for n in notices), default=None)
    if newest is not None:
        feed.updated(newest)
    for notice in sorted(notices, key=lambda n: (n.published_at, n.uid), reverse=True):
        entry = feed.add_entry(order="append")
        entry.id(f"urn:uuid:{notice.uid}")
        entry.title(notice.title)
        entry.link(href=f"{public_url}/notices/{notice.filename}")
        entry.published(notice.published_at)
        entry.updated(notice.published_at)
        entry.author({"name": "emeritus"})
        entry.category(term=notice.kind)
        entry.content(notice.body, type="text")
    return bytes(feed.atom_str(pretty=True))


def write_notices(
    notices: list[Notice], directory: Path, *, public_url: str, feed_path: Path | None = None
) -> list[Path]:
    """Render every notice and the feed into `directory`, each file replaced atomically."""
    written = []
    for notice in notices:
        path = directory / notice.filename
        atomic_write(path, notice.body.encode("utf-8"))
        written.append(path)
    feed = render_feed(notices, public_url=public_url)
    for path in {directory / FEED_NAME, *([feed_path] if feed_path else [])}:
        atomic_write(path, feed)
        written.append(path)
    return written
