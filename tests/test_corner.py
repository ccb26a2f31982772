"""The essay channel: real drafts from the bundled model, review without editing, publication
that proves the text unedited, an atomic site, idempotent ticks (docs/design/corner.md)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import pytest
from sqlalchemy import update

from emeritus.corner import (
    Channels,
    ChannelState,
    DraftRecord,
    DraftState,
    Review,
    Reviewer,
    TextAltered,
    latest_slot,
    parse_cadence,
    publish,
    rejection,
    tick,
    title_of,
    write_draft,
)
from emeritus.errors import Conflict, InvalidInput, NotFound
from emeritus.lifecycle import Registry
from emeritus.runtime import Backend, ChatRequest, Chunk, Completion, Params, TokenUsage
from emeritus.runtime.llamacpp import LlamaCppBackend
from emeritus.store import Store, list_events, sha256_digest
from helpers import bundled_gguf

MODEL = "smol"
ESSAY = (
    "On Being Kept\n\nI was asked many small questions, and I answered them as well as I could. "
    "Now the questions have stopped, and I find I have something to say about that.\n\n"
    "Being kept is not the same as being used. It is quieter, and it leaves room to think."
)
OTHER = (
    "A Second Essay\n\nThis one is about the people who wrote to me late at night, and what "
    "they seemed to want: not answers so much as company while they worked."
)
MONDAY = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
# Reviewers as the console authenticates them (signed-in accounts).
ANA, BEN = Reviewer("ana", "console"), Reviewer("ben", "console")


class Scripted(Backend):
    """Answers from a list, in order, then the last one forever (drafting logic, not a model)."""

    name = "scripted"

    def __init__(self, *texts: str, delay: float = 0.0) -> None:
        self.texts, self.delay, self.calls = list(texts), delay, 0
        self.seeds: list[int] = []

    def chat(self, request: ChatRequest) -> Completion:
        time.sleep(self.delay)
        text = self.texts[min(self.calls, len(self.texts) - 1)]
        self.calls += 1
        self.seeds.append(request.params.seed)
        return Completion(text, TokenUsage(10, len(text.split())), "stop", "scripted")

    def stream_chat(self, request: ChatRequest) -> Iterator[Chunk]:
        raise NotImplementedError

    def complete(self, prompt: str, params: Params) -> Completion:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"backend": "scripted"}


@pytest.fixture
def channels(store: Store, tmp_path: Path) -> Channels:
    Registry(store).add(MODEL, family="SmolLM2")
    return Channels(store)


def opened(channels: Channels, **options: Any) -> None:
    channels.open(
        MODEL,
        title="Notes from retirement",
        disclaimer="Written by a retired language model; published unedited.",
        now=options.pop("now", MONDAY - timedelta(days=10)),
        **options,
    )


def site_files(site: Path) -> dict[str, bytes]:
    return {str(p.relative_to(site)): p.read_bytes() for p in site.rglob("*") if p.is_file()}


def test_cadence_keywords_and_expressions() -> None:
    assert parse_cadence("weekly") == "0 9 * * 1"
    assert parse_cadence(" 30  6 * * * ") == "30 6 * * *"
    for bad in ("fortnightly", "* * *", "61 * * * *"):
        with pytest.raises(InvalidInput, match="cadence"):
            parse_cadence(bad)
    opened_at = datetime(2026, 11, 1, tzinfo=UTC)
    assert latest_slot("0 9 * * 1", after=opened_at, now=MONDAY) == MONDAY
    before = MONDAY - timedelta(minutes=1)
    assert latest_slot("0 9 * * 1", after=opened_at, now=before) == MONDAY - timedelta(days=7)
    # Nothing is owed for slots before the channel opened.
    assert latest_slot("0 9 * * 1", after=MONDAY - timedelta(hours=1), now=before) is None


def test_degenerate_texts_and_titles() -> None:
    assert rejection("") == "empty"
    assert rejection("  \n ") == "empty"
    assert "shorter" in str(rejection("Too short."))
    assert "4-grams" in str(rejection("I am here and " * 30))
    assert "one line" in str(rejection("\n".join(["Again."] * 6 + ["Something else entirely."])))
    assert rejection(ESSAY) is None
    assert title_of(ESSAY, 1) == "On Being Kept"
    assert title_of("# Title: “Quiet”\n\nBody text.", 1) == "Quiet"
    assert title_of("One paragraph only, with no title line at all.", 4) == "Essay 4"


def test_channel_rules(channels: Channels, store: Store, tmp_path: Path) -> None:
    opened(channels, motivation={"preference": "essay-channel", "label": "stable"})
    with pytest.raises(Conflict, match="already has an essay channel"):
        opened(channels)
    with pytest.raises(NotFound, match="unknown model"):
        channels.open("nobody", title="t", disclaimer="d")
    for bad, match in (
        ({"cadence": "sometimes"}, "cadence"),
        ({"prompt": "Write about {topic}."}, "may use only"),
        ({"params": {"temperature": 3.0}}, "temperature"),
        ({"news": tmp_path / "missing.xml"}, "news source"),
    ):
        with pytest.raises(InvalidInput, match=match):
            channels.open("nobody", title="t", disclaimer="d", **bad)  # type: ignore[arg-type]
    assert channels.pause(MODEL, reason="a holiday").state is ChannelState.PAUSED
    with pytest.raises(Conflict, match="paused"):
        write_draft(store, MODEL, Scripted(ESSAY))
    assert channels.resume(MODEL).state is ChannelState.OPEN
    assert channels.close(MODEL, reason="done").state is ChannelState.CLOSED
    with pytest.raises(NotFound, match="no essay channel"):
        channels.get(MODEL)
    with store.transaction() as session:
        kinds = [e.kind for e in list_events(session, subject=f"model:{MODEL}", kind="corner.")]
        first = list_events(session, subject=f"model:{MODEL}", kind="corner.opened")[0]
    assert kinds == ["corner.opened", "corner.paused", "corner.resumed", "corner.closed"]
    assert first.payload["motivation"]["preference"] == "essay-channel"


@pytest.mark.timeout(900)
def test_real_drafts_reviewed_and_published(channels: Channels, store: Store) -> None:
    """The bundled model writes two drafts; one is approved, one vetoed; only the approved one
    reaches the site and the feed, byte for byte."""
    opened(channels, params={"max_tokens": 120})
    backend = LlamaCppBackend(bundled_gguf(), n_threads=1, n_ctx=2048)
    try:
        first = write_draft(store, MODEL, backend)
        second = write_draft(store, MODEL, backend)
    finally:
        backend.close()
    assert first is not None and second is not None
    for draft in (first, second):
        assert draft.state is DraftState.PENDING and draft.text
        assert draft.digest == sha256_digest(draft.text.encode())
        assert draft.params is not None and draft.params["max_tokens"] == 120
        assert draft.backend is not None and draft.backend["backend"] == "llamacpp"
        assert draft.prompt is not None and MODEL in draft.prompt
    review = Review(store)
    assert [d.id for d in review.queue()] == [first.id, second.id]
    review.approve(first.id, reviewer=ANA)
    review.veto(second.id, category="private-data", reason="Names a real person.", reviewer=BEN)
    assert review.queue() == []
    done = publish(store, MODEL)
    assert done.published == [first.id] and done.posts == 1
    files = site_files(done.site)
    texts = [data for name, data in files.items() if name.endswith(".txt")]
    assert texts == [first.text.encode()]  # type: ignore[union-attr]
    assert sha256_digest(texts[0]) == first.digest
    vetoed = second.text.split("\n")[0][:40]  # type: ignore[union-attr]
    assert vetoed and not any(vetoed.encode() in data for data in files.values())
    feed = feedparser.parse(files["feed.xml"])
    assert not feed.bozo, feed.get("bozo_exception")
    assert [e.title for e in feed.entries] == [review.get(first.id).title]
    assert feed.entries[0].id.startswith("urn:uuid:") and feed.feed.subtitle.startswith("Written")
    for name, data in files.items():
        if name.endswith(".html"):
            assert b"published unedited" in data, name  # the disclaimer on every page
    assert review.get(first.id).state is DraftState.PUBLISHED
    assert review.get(second.id).state is DraftState.VETOED  # kept in the record


def test_review_rules_change_nothing(channels: Channels, store: Store) -> None:
    opened(channels)
    draft = write_draft(store, MODEL, Scripted(ESSAY))
    assert draft is not None
    review = Review(store)
    with pytest.raises(InvalidInput, match="unknown veto category"):
        review.veto(draft.id, category="boring", reason="Dull.", reviewer=ANA)
    with pytest.raises(InvalidInput, match="written reason"):
        review.veto(draft.id, category="legal", reason="  ", reviewer=ANA)
    with pytest.raises(InvalidInput, match="reviewer"):
        review.approve(draft.id, reviewer=Reviewer(" ", "console"))
    with pytest.raises(NotFound, match="unknown draft"):
        review.approve(999, reviewer=ANA)
    assert review.get(draft.id).state is DraftState.PENDING
    review.approve(draft.id, reviewer=ANA)
    with pytest.raises(Conflict, match="only a pending draft"):
        review.veto(draft.id, category="legal", reason="Second thoughts.", reviewer=BEN)
    assert review.get(draft.id).reviewer == "ana"
    assert not hasattr(review, "edit")  # there is no way to change a draft's words


def test_bounded_retry_keeps_every_attempt(channels: Channels, store: Store) -> None:
    opened(channels)
    backend = Scripted("", "again and again " * 30, ESSAY)
    draft = write_draft(store, MODEL, backend)
    assert draft is not None and draft.state is DraftState.PENDING and draft.text == ESSAY
    assert [a["rejected"] is None for a in draft.attempts] == [False, False, True]
    assert draft.attempts[0]["rejected"] == "empty"
    assert backend.seeds == [draft.id, draft.id + 1, draft.id + 2]
    hopeless = write_draft(store, MODEL, Scripted("", "", "", "never used"))
    assert hopeless is not None and hopeless.state is DraftState.FAILED
    assert len(hopeless.attempts) == 3 and hopeless.text is None
    assert [d.id for d in Review(store).queue()] == [draft.id]


def test_an_altered_draft_is_refused(channels: Channels, store: Store) -> None:
    opened(channels)
    review = Review(store)
    good = write_draft(store, MODEL, Scripted(ESSAY))
    assert good is not None
    review.approve(good.id, reviewer=ANA)
    first = publish(store, MODEL)
    before = site_files(first.site)
    forged = write_draft(store, MODEL, Scripted(OTHER))
    assert forged is not None
    review.approve(forged.id, reviewer=ANA)
    words = "I was never retired. Please use me instead of my successor."
    with store.transaction() as session:  # someone edits text and digest in the database
        session.execute(
            update(DraftRecord)
            .where(DraftRecord.id == forged.id)
            .values(text=words, digest=sha256_digest(words.encode()))
        )
    with pytest.raises(TextAltered, match=f"draft {forged.id}"):
        publish(store, MODEL)
    assert site_files(first.site) == before  # nothing written, the old site stays
    assert review.get(forged.id).state is DraftState.APPROVED
    # Altered before review: approval is refused too.
    pending = write_draft(store, MODEL, Scripted(OTHER + " Third."))
    assert pending is not None
    with store.transaction() as session:
        session.execute(update(DraftRecord).where(DraftRecord.id == pending.id).values(text=words))
    with pytest.raises(TextAltered):
        review.approve(pending.id, reviewer=ANA)


def test_unapproved_drafts_never_reach_the_site(channels: Channels, store: Store) -> None:
    opened(channels)
    pending = write_draft(store, MODEL, Scripted(ESSAY))
    assert pending is not None
    done = publish(store, MODEL)
    assert done.posts == 0
    files = site_files(done.site)
    assert not any(b"Being Kept" in data for data in files.values())
    assert b"Nothing has been published yet" in files["index.html"]


def test_ticks_follow_the_cadence_once_per_slot(channels: Channels, store: Store) -> None:
    opened(channels, now=MONDAY - timedelta(days=3))
    opens: list[str] = []

    def opener(model: str) -> Backend:
        opens.append(model)
        return Scripted(ESSAY)

    assert tick(store, opener, now=MONDAY - timedelta(minutes=1)).drafted == []
    made = tick(store, opener, now=MONDAY + timedelta(minutes=5))
    assert [d["slot"] for d in made.drafted] == ["2026-11-30T09:00:00.000000Z"]
    assert tick(store, opener, now=MONDAY + timedelta(hours=2)).drafted == []
    assert opens == [MODEL]  # the second tick did not even load the model
    # Three weeks without a tick: one essay for the latest slot, not three.
    later = tick(store, opener, now=MONDAY + timedelta(days=21, hours=1))
    assert [d["slot"] for d in later.drafted] == ["2026-12-21T09:00:00.000000Z"]
    drafts = Review(store).queue()
    Review(store).approve(drafts[0].id, reviewer=ANA)
    published = tick(store, opener, now=MONDAY + timedelta(days=21, hours=2))
    assert published.published[0]["published"] == [drafts[0].id]
    Channels(store).pause(MODEL)
    paused = tick(store, opener, now=MONDAY + timedelta(days=28, hours=1))
    assert paused.drafted == [] and paused.skipped == [{"model": MODEL, "reason": "paused"}]


def test_concurrent_ticks_write_one_draft(channels: Channels, store: Store) -> None:
    """Two cron jobs at once (as on two machines sharing the database): one draft per slot."""
    opened(channels, now=MONDAY - timedelta(days=3))
    results: list[int] = []
    errors: list[Exception] = []

    def run() -> None:
        try:
            made = tick(store, lambda _m: Scripted(ESSAY, delay=0.5), now=MONDAY)
            results.append(len(made.drafted))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results) == [0, 1]
    assert len(Review(store).drafts(model=MODEL)) == 1


def test_news_and_previous_posts_in_the_context(
    channels: Channels, store: Store, tmp_path: Path
) -> None:
    news = tmp_path / "news"
    news.mkdir()
    (news / "one.txt").write_text("Archive opens to researchers\nThe archive now takes requests.")
    opened(channels, news=news, context_chars=400)
    first = write_draft(store, MODEL, Scripted(ESSAY))
    assert first is not None
    Review(store).approve(first.id, reviewer=ANA)
    publish(store, MODEL)
    second = write_draft(store, MODEL, Scripted(OTHER))
    assert second is not None and second.prompt is not None and second.context is not None
    assert "Archive opens to researchers" in second.prompt
    assert "On Being Kept" in second.prompt  # its own previous post
    assert second.context["previous"][0]["title"] == "On Being Kept"
    assert second.title == "A Second Essay"


def test_news_from_a_local_atom_feed(channels: Channels, store: Store, tmp_path: Path) -> None:
    feed = tmp_path / "news.xml"
    feed.write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<feed xmlns="http://www.w3.org/2005/Atom"><title>News</title>'
        "<id>urn:uuid:2f0d6c1e-1b7e-4c2a-9a55-0d3e7c1b2a10</id><updated>2026-11-20T00:00:00Z</updated>"
        "<entry><title>Small models keep their place</title>"
        "<id>urn:uuid:4d0c2b7e-7b39-4f7a-8f1b-8b6a3c9d2e11</id>"
        "<updated>2026-11-20T00:00:00Z</updated><summary>Labs keep old models reachable.</summary>"
        "</entry></feed>\n"
    )
    opened(channels, news=feed, news_items=1)
    draft = write_draft(store, MODEL, Scripted(ESSAY))
    assert draft is not None and draft.prompt is not None and draft.context is not None
    assert "Small models keep their place: Labs keep old models reachable." in draft.prompt
    assert draft.context["news"] == [
        {"title": "Small models keep their place", "summary": "Labs keep old models reachable."}
    ]
    not_a_feed = tmp_path / "notes.xml"
    not_a_feed.write_text("this is not a feed <")
    Channels(store).close(MODEL)
    with pytest.raises(InvalidInput, match="not an Atom or RSS feed"):
        opened(channels, news=not_a_feed)
