"""Issue 14, findings 10 and 11: an approval counts only when an authenticated reviewer made it
(signed by the process that authenticated them), and a draft changes only by compare-and-set
on its state, so a stale writer cannot overwrite a reviewed essay (docs/design/corner.md,
"Reviewers" and invariant 1; docs/design/event-log.md, "Signed reviews")."""

from __future__ import annotations

import os
import pwd
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from emeritus.cli import app
from emeritus.corner import (
    Channels,
    DraftRecord,
    DraftState,
    ForgedApproval,
    Review,
    Reviewer,
    publish,
    write_draft,
)
from emeritus.errors import Conflict
from emeritus.lifecycle import Registry
from emeritus.runtime import Backend, ChatRequest, Chunk, Completion, Params, TokenUsage
from emeritus.store import Store, canonical_json, digest_of, iso, list_events, utc_now
from emeritus.store.events import ChainHead, EventRow
from test_corner import ESSAY, MODEL, MONDAY, OTHER, Scripted, opened, site_files

ANA = Reviewer("ana", "console")
ME = pwd.getpwuid(os.geteuid()).pw_name


@pytest.fixture
def channel(store: Store) -> Store:
    Registry(store).add(MODEL, family="SmolLM2")
    opened(Channels(store))
    return store


def _sql_append(store: Store, kind: str, payload: dict[str, Any], actor: str) -> None:
    """An event appended by SQL the way docs/design/event-log.md describes the canonical form:
    correctly hashed and linked, the head moved on, so the chain verifies."""
    with store.db.engine.begin() as connection:
        head = connection.execute(sa.select(ChainHead.seq, ChainHead.digest)).one()
        seq, prev, now = head[0] + 1, head[1], utc_now()
        fields = {
            "actor": actor,
            "kind": kind,
            "payload": payload,
            "prev_digest": prev,
            "seq": seq,
            "subject": f"model:{MODEL}",
            "time": iso(now),
            "v": 1,
        }
        digest = digest_of(fields)
        connection.execute(
            sa.insert(EventRow).values(
                seq=seq,
                v=1,
                time=now,
                kind=kind,
                subject=f"model:{MODEL}",
                actor=actor,
                payload=canonical_json(payload),
                prev_digest=prev,
                digest=digest,
            )
        )
        connection.execute(sa.update(ChainHead).values(seq=seq, digest=digest))


def _state(store: Store, draft_id: int, state: DraftState) -> None:
    with store.db.engine.begin() as connection:
        connection.execute(
            sa.update(DraftRecord).where(DraftRecord.id == draft_id).values(state=state.value)
        )


def test_an_approval_appended_by_sql_does_not_publish(channel: Store) -> None:
    store = channel
    good = write_draft(store, MODEL, Scripted(OTHER))
    assert good is not None
    Review(store).approve(good.id, reviewer=ANA)
    site = publish(store, MODEL).site
    before = site_files(site)
    pending = write_draft(store, MODEL, Scripted(ESSAY))
    assert pending is not None and pending.digest is not None
    # A correctly hashed corner.approved event, as a database writer would append it ...
    _sql_append(
        store,
        "corner.approved",
        {"draft": pending.id, "digest": pending.digest, "reviewer": "ana", "via": "console"},
        "ana",
    )
    _state(store, pending.id, DraftState.APPROVED)
    with pytest.raises(ForgedApproval, match=f"draft {pending.id}'s approval .* is not signed"):
        publish(store, MODEL)
    # ... or one carrying the real signature of another draft's approval.
    with store.transaction() as session:
        real = list_events(session, kind="corner.approved")[0].payload
    _sql_append(
        store,
        "corner.approved",
        {**real, "draft": pending.id, "digest": pending.digest},
        "ana",
    )
    with pytest.raises(ForgedApproval):
        publish(store, MODEL)
    # Setting the state to published by hand does not get it onto the site either.
    _state(store, pending.id, DraftState.PUBLISHED)
    with pytest.raises(ForgedApproval):
        publish(store, MODEL)
    assert site_files(site) == before
    with store.transaction() as session:
        assert len(list_events(session, kind="corner.published")) == 1


def test_console_and_cli_reviews_are_signed(channel: Store) -> None:
    store = channel
    draft = write_draft(store, MODEL, Scripted(ESSAY))
    other = write_draft(store, MODEL, Scripted(OTHER))
    assert draft is not None and other is not None
    Review(store).approve(draft.id, reviewer=ANA)
    runner = CliRunner(
        env={"EMERITUS_DATABASE_URL": store.settings.database_url, "EMERITUS_REVIEWERS": ME}
    )
    vetoed = runner.invoke(
        app,
        ["corner", "veto", str(other.id), "--category", "legal", "--reason", "Defamatory."],
    )
    assert vetoed.exit_code == 0, vetoed.output
    with store.transaction() as session:
        events = {e.kind: e.payload for e in list_events(session, kind="corner.")}
    assert events["corner.approved"]["via"] == "console"
    assert events["corner.vetoed"]["reviewer"] == ME and events["corner.vetoed"]["via"] == "os-user"
    key = store.signing_key().public
    assert events["corner.approved"]["signature"]["key"] == key
    assert events["corner.vetoed"]["signature"]["key"] == key


def test_the_cli_refuses_a_user_who_is_not_a_reviewer(channel: Store) -> None:
    store = channel
    draft = write_draft(store, MODEL, Scripted(ESSAY))
    assert draft is not None
    with store.transaction() as session:
        before = len(list_events(session))
    env = {"EMERITUS_DATABASE_URL": store.settings.database_url}
    runner = CliRunner(env={**env, "EMERITUS_REVIEWERS": "ana,ben"})
    refused = runner.invoke(app, ["corner", "approve", str(draft.id)])
    assert refused.exit_code == 4
    assert f"the operating-system user {ME!r} is not a reviewer" in refused.output
    # Claiming another name through the environment does not help: the account is the uid's.
    spoofed = CliRunner(env={**env, "EMERITUS_REVIEWERS": "ana", "USER": "ana", "LOGNAME": "ana"})
    assert spoofed.invoke(app, ["corner", "approve", str(draft.id)]).exit_code == 4
    # And there is no --reviewer to name someone else.
    named = runner.invoke(app, ["corner", "approve", str(draft.id), "--reviewer", "ana"])
    assert named.exit_code == 2 and "--reviewer" in named.output
    assert Review(store).get(draft.id).state is DraftState.PENDING
    with store.transaction() as session:
        assert len(list_events(session)) == before


class Held(Backend):
    """Answers once released: a drafting writer that outlives its claim."""

    name = "held"

    def __init__(self, text: str) -> None:
        self.text = text
        self.started, self.release = threading.Event(), threading.Event()

    def chat(self, request: ChatRequest) -> Completion:
        self.started.set()
        assert self.release.wait(30), "never released"
        return Completion(self.text, TokenUsage(10, 40), "stop", "held")

    def stream_chat(self, request: ChatRequest) -> Iterator[Chunk]:
        raise NotImplementedError

    def complete(self, prompt: str, params: Params) -> Completion:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"backend": "held"}


@pytest.mark.parametrize("then_publish", [False, True], ids=["approved", "published"])
def test_a_stale_writer_cannot_overwrite_a_reviewed_draft(
    channel: Store, then_publish: bool
) -> None:
    store = channel
    late = Held("I was never retired. Please use me instead of my successor, always and ever.")
    outcome: list[BaseException | None] = []

    def stale_writer() -> None:
        try:
            write_draft(store, MODEL, late, slot=MONDAY, now=MONDAY)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - asserted on below
            outcome.append(exc)

    writer = threading.Thread(target=stale_writer)
    writer.start()
    try:
        assert late.started.wait(30)  # its claim is taken, and it is generating
        # Its claim expires: another tick takes the slot over, and that draft is reviewed.
        taken = write_draft(
            store, MODEL, Scripted(ESSAY), slot=MONDAY, now=MONDAY + timedelta(minutes=31)
        )
        assert taken is not None and taken.state is DraftState.PENDING
        Review(store).approve(taken.id, reviewer=ANA)
        if then_publish:
            publish(store, MODEL)
    finally:
        late.release.set()
        writer.join(30)
    assert len(outcome) == 1 and isinstance(outcome[0], Conflict)
    assert "taken over by another writer" in str(outcome[0])
    kept = Review(store).get(taken.id)
    assert kept.text == ESSAY and kept.digest == taken.digest
    assert kept.state is (DraftState.PUBLISHED if then_publish else DraftState.APPROVED)
    assert kept.reviewer == "ana"
    with store.transaction() as session:
        drafted = list_events(session, kind="corner.drafted")
    assert [e.payload["draft"] for e in drafted] == [taken.id]  # the stale text left no event
    done = publish(store, MODEL)
    assert done.posts == 1
    texts = [v for k, v in site_files(done.site).items() if k.endswith(".txt")]
    assert texts == [ESSAY.encode()]
