"""Publication: approved drafts become a static site and an Atom feed, each text checked against
the digests the event log holds and its approval's signature before it is written, the chain
verified from its newest signed checkpoint, the whole site swapped in atomically, and the log
anchored again once the publication is committed.
Spec: docs/design/corner.md, invariants 2-4 and "The site"."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from feedgen.feed import FeedGenerator
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session

from emeritus.archive import Anchor, Archive
from emeritus.corner.channels import Channel, channel_of, live_channel
from emeritus.corner.drafts import DraftState
from emeritus.corner.proof import TextAltered, check_unedited, signed_reviewers
from emeritus.corner.tables import ChannelRecord, DraftRecord
from emeritus.errors import Conflict, InvalidInput
from emeritus.lifecycle import ModelRecord
from emeritus.store import Store, append_event, as_utc, fsync_path, iso, sha256_digest, utc_now

GENERATION = re.compile(r"^site\.(\d+)$")
# Stable ids for feed entries: uuid5 over the model and draft id, never reused.
FEED_NAMESPACE = uuid.UUID("6f1c1f8e-4b0e-4a55-9d43-2f3f1c0a7e11")


@dataclass(frozen=True)
class Publication:
    model: str
    site: Path
    generation: Path
    posts: int
    published: list[int]  # drafts that reached the site for the first time
    walked: int = 0  # events read to verify the chain (from the newest checkpoint)
    anchored: int | None = None  # the seq of the checkpoint taken after it, if one was

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "site": str(self.site),
            "generation": str(self.generation),
            "posts": self.posts,
            "published": self.published,
            "walked": self.walked,
            "anchored": self.anchored,
        }


def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("emeritus.corner", "templates"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def _slug(number: int, title: str) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:60].strip("-")
    return f"{number:03d}-{words or 'essay'}"


def _day(when: datetime) -> str:
    return f"{when.day} {when:%B %Y}"


def _posts(
    rows: list[DraftRecord], reviewers: dict[int, str], now: datetime
) -> list[dict[str, Any]]:
    posts = []
    for number, row in enumerate(rows, start=1):
        assert row.text is not None and row.title is not None
        when = as_utc(row.published_at) if row.published_at else now
        posts.append(
            {
                "draft": row.id,
                "slug": _slug(number, row.title),
                "title": row.title,
                "text": row.text,
                "paragraphs": [p for p in re.split(r"\n\s*\n", row.text.strip()) if p.strip()],
                "digest": row.digest,
                "reviewer": reviewers.get(row.id, row.reviewer),
                "when": when,
                "iso": iso(when),
                "day": _day(when),
            }
        )
    return posts


def _urn(name: str) -> str:
    return f"urn:uuid:{uuid.uuid5(FEED_NAMESPACE, name)}"


def _feed(channel: Channel, posts: list[dict[str, Any]], now: datetime) -> bytes:
    feed = FeedGenerator()
    feed.id(_urn(f"{channel.model}/channel/{channel.id}"))
    feed.title(channel.title)
    feed.subtitle(channel.disclaimer)
    feed.author({"name": channel.model})
    feed.link(href="feed.xml", rel="self")
    feed.link(href="index.html", rel="alternate")
    feed.language("en")
    feed.updated(max((p["when"] for p in posts), default=now))
    for post in posts:
        entry = feed.add_entry(order="append")
        entry.id(_urn(f"{channel.model}/draft/{post['draft']}"))
        entry.title(post["title"])
        entry.author({"name": channel.model})
        entry.updated(post["when"])
        entry.published(post["when"])
        entry.link(href=f"posts/{post['slug']}.html", rel="alternate")
        entry.content(post["text"], type="text")
    data: bytes = feed.atom_str(pretty=True)
    return data


def _render(
    channel: Channel, model: ModelRecord, posts: list[dict[str, Any]], now: datetime
) -> dict[str, bytes]:
    env = _environment()
    retired = _day(as_utc(model.retired_at)) if model.retired_at else None
    common = {"channel": channel, "retired": retired}
    files: dict[str, bytes] = {
        "index.html": env.get_template("index.html")
        .render(root="", posts=posts, **common)
        .encode(),
        "about.html": env.get_template("about.html")
        .render(
            root="",
            family=model.family,
            successor=model.successor.name if model.successor else None,
            motivation=channel.motivation,
            cadence=channel.cadence_words,
            news=bool(channel.context["news"]),
            previous=bool(channel.context["previous"]),
            **common,
        )
        .encode(),
        "style.css": env.get_template("style.css").render().encode(),
        "feed.xml": _feed(channel, posts, now),
    }
    post_page = env.get_template("post.html")
    for post in posts:
        files[f"posts/{post['slug']}.html"] = post_page.render(
            root="../", post=post, **common
        ).encode()
        data = post["text"].encode("utf-8")
        # The last check before the bytes leave: what is written is what was approved.
        if sha256_digest(data) != post["digest"]:
            raise TextAltered(f"draft {post['draft']} changed while the site was rendered")
        files[f"posts/{post['slug']}.txt"] = data
    return files


def _write_generation(site: Path, files: dict[str, bytes]) -> Path:
    """A complete, fsynced new generation beside the `site` link."""
    taken = [int(m.group(1)) for p in site.parent.iterdir() if (m := GENERATION.match(p.name))]
    number = max(taken, default=0) + 1
    while True:
        folder = site.parent / f"site.{number}"
        try:
            folder.mkdir()  # exclusive: two publishers never share a generation
            break
        except FileExistsError:
            number += 1
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    for directory in sorted({(folder / name).parent for name in files}, reverse=True):
        fsync_path(directory)
    return folder


def _swap(site: Path, generation: Path) -> None:
    """Point `site` at the new generation with one rename; remove older generations."""
    link = site.parent / f".{site.name}.{uuid.uuid4().hex}.link"
    link.symlink_to(generation.name)
    link.replace(site)
    fsync_path(site.parent)
    for old in site.parent.iterdir():
        if GENERATION.match(old.name) and old.name != generation.name:
            shutil.rmtree(old, ignore_errors=True)


def _site_rows(session: Session, channel_id: int) -> list[DraftRecord]:
    """Published posts in publication order, then approved ones in approval order."""
    rows = session.scalars(
        select(DraftRecord).where(
            DraftRecord.channel_id == channel_id,
            DraftRecord.state.in_([DraftState.PUBLISHED.value, DraftState.APPROVED.value]),
        )
    ).all()
    return sorted(
        rows,
        key=lambda r: (
            r.state != DraftState.PUBLISHED.value,
            as_utc(r.published_at or r.reviewed_at or r.created_at),
            r.id,
        ),
    )


def publish(
    store: Store, model: str, *, now: datetime | None = None, actor: str | None = None
) -> Publication:
    """Rebuild the model's site from its approved and published drafts and swap it in."""
    now = now or utc_now()
    anchor = Anchor(Archive(store))
    newest = anchor.newest()
    if newest.problems:
        raise TextAltered(f"the event log's checkpoints do not verify: {newest.problems[0]}")
    key = store.signing_key()
    with store.transaction() as session:
        row: ChannelRecord = live_channel(session, model, lock=True)
        channel = channel_of(store, row, model)
        record = session.scalar(select(ModelRecord).where(ModelRecord.name == model))
        assert record is not None
        rows = _site_rows(session, row.id)
        # From the newest checkpoint, not the first event: the log may hold millions of events.
        chain = check_unedited(session, model, rows, approved=True, key=key, since=newest.position)
        assert chain is not None
        site = channel.site
        if site.exists() and not site.is_symlink():
            raise InvalidInput(f"{site} exists and is not a site emeritus wrote")
        fresh = [r.id for r in rows if r.state == DraftState.APPROVED.value]
        if fresh:
            result = session.execute(
                update(DraftRecord)
                .where(DraftRecord.id.in_(fresh), DraftRecord.state == DraftState.APPROVED.value)
                .values(state=DraftState.PUBLISHED.value, published_at=now)
                .execution_options(synchronize_session="fetch")
            )
            assert isinstance(result, CursorResult)
            if result.rowcount != len(fresh):
                raise Conflict(f"{model}'s approved drafts changed during publication: try again")
        site.parent.mkdir(parents=True, exist_ok=True)
        posts = _posts(rows, signed_reviewers(session, model, key), now)
        generation = _write_generation(site, _render(channel, record, posts, now))
        _swap(site, generation)
        append_event(
            session,
            kind="corner.published",
            subject=f"model:{model}",
            actor=actor or store.settings.actor,
            payload={
                "channel": row.id,
                "generation": generation.name,
                "posts": {str(r.id): r.digest for r in rows},
                "new": fresh,
            },
        )
    # Anchor the log with the publication in it (after the commit: the checkpoint covers it).
    taken = anchor.take().taken
    return Publication(
        model,
        site,
        generation,
        len(rows),
        fresh,
        chain.walked,
        taken.seq if taken is not None else None,
    )
