"""Notices: the Markdown announcement and the Atom feed, parsed by feedparser."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import feedparser

from emeritus.lifecycle import Availability, Registry
from emeritus.store import Store

NOW = datetime(2030, 3, 1, 9, 30, tzinfo=UTC)


def _retire_one(registry: Registry) -> None:
    registry.add("old", family="SmolLM2", version="135M", now=NOW)
    registry.add("new", now=NOW)
    registry.deprecate(
        "old",
        retire_at=datetime(2030, 5, 1, tzinfo=UTC),
        successor="new",
        availability_after=Availability.RESTRICTED,
        now=NOW,
    )
    registry.tick(now=datetime(2030, 5, 2, tzinfo=UTC))


def test_deprecation_notice_says_what_users_need(registry: Registry) -> None:
    _retire_one(registry)
    notice = registry.notices(model="old")[0]
    assert notice.title == "old will be retired on 2030-05-01"
    body = notice.body
    assert "**old** (SmolLM2, version 135M) is deprecated as of 1 March 2030" in body
    assert "retired on **1 May 2030 at 00:00 UTC** (60 days' notice)" in body
    assert "Move to its successor, **new**" in body
    assert "http://localhost:8000/models/old/migration" in body
    assert "apply for continued access" in body
    assert "| Announced | 2030-03-01T09:30:00.000000Z |" in body


def test_notice_without_successor(registry: Registry) -> None:
    registry.add("solo", now=NOW)
    registry.deprecate("solo", retire_at=NOW + timedelta(days=90), now=NOW)
    body = registry.notices(model="solo")[0].body
    assert "No successor has been named" in body and "migration" not in body
    assert "it will no longer be served" in body


def test_feed_parses_cleanly_and_lists_newest_first(registry: Registry, store: Store) -> None:
    _retire_one(registry)
    paths = registry.publish_notices()
    feed_path = store.settings.notices_dir / "feed.atom"
    assert feed_path in paths
    parsed = feedparser.parse(feed_path.read_bytes())
    assert not parsed.bozo, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.title == "Model notices"
    titles = [e.title for e in parsed.entries]
    assert titles == ["old is retired", "old will be retired on 2030-05-01"]
    uids = {n.uid for n in registry.notices()}
    assert {e.id for e in parsed.entries} == {f"urn:uuid:{u}" for u in uids}
    entry = parsed.entries[1]
    assert entry.published_parsed[:3] == (2030, 3, 1)
    assert "Move to its successor" in entry.content[0].value
    assert entry.tags[0].term == "deprecation"


def test_files_are_rebuilt_from_the_database(registry: Registry, store: Store) -> None:
    _retire_one(registry)
    registry.publish_notices()
    folder = store.settings.notices_dir
    for path in folder.iterdir():
        path.unlink()
    registry.publish_notices()
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 3 and names[-1] == "feed.atom"
    notice = registry.notices(model="old")[0]
    assert (folder / notice.filename).read_text(encoding="utf-8") == notice.body
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_extra_feed_path(registry: Registry, tmp_path: object) -> None:
    from pathlib import Path

    _retire_one(registry)
    target = Path(str(tmp_path)) / "public" / "notices.xml"
    registry.publish_notices(feed_path=target)
    assert not feedparser.parse(target.read_bytes()).bozo
