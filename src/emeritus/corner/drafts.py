"""Drafting: the model writes for a slot with the channel's minimal prompt and its context; an
empty or degenerate text gets a bounded retry, and every attempt is kept. Every change of a
draft's state is a compare-and-set on that state (and, while drafting, on the writer's claim
token), so a stale writer changes nothing. Spec: docs/design/corner.md."""

from __future__ import annotations

import json
import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import CursorResult, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from emeritus.corner.channels import Channel, ChannelState, channel_of, live_channel
from emeritus.corner.context import ContextItem, fit, news_items, render_context
from emeritus.corner.tables import ChannelRecord, DraftRecord
from emeritus.errors import Conflict, NotFound
from emeritus.lifecycle import ModelRecord, require_model
from emeritus.runtime import Backend, ChatRequest, Message, Params
from emeritus.store import Store, append_event, canonical_json, iso, sha256_digest, utc_now

MAX_ATTEMPTS = 3
MIN_CHARS = 40
MIN_DISTINCT_4GRAMS = 0.35
TITLE_CHARS = 120
# A claim older than this belongs to a tick that died mid-generation: another may take it over.
STALE_CLAIM = timedelta(minutes=30)


class DraftState(StrEnum):
    DRAFTING = "drafting"
    PENDING = "pending"
    APPROVED = "approved"
    VETOED = "vetoed"
    PUBLISHED = "published"
    FAILED = "failed"


@dataclass(frozen=True)
class Draft:
    id: int
    model: str
    channel: int
    slot: datetime | None
    state: DraftState
    title: str | None
    text: str | None
    digest: str | None
    prompt: str | None
    context: dict[str, Any] | None
    params: dict[str, Any] | None
    backend: dict[str, Any] | None
    attempts: list[dict[str, Any]]
    created_at: datetime
    reviewer: str | None
    reviewed_at: datetime | None
    veto_category: str | None
    veto_reason: str | None
    published_at: datetime | None

    def to_dict(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return iso(value) if value else None

        return {
            "id": self.id,
            "model": self.model,
            "channel": self.channel,
            "slot": when(self.slot),
            "state": str(self.state),
            "title": self.title,
            "text": self.text,
            "digest": self.digest,
            "prompt": self.prompt,
            "context": self.context,
            "params": self.params,
            "backend": self.backend,
            "attempts": self.attempts,
            "created_at": when(self.created_at),
            "reviewer": self.reviewer,
            "reviewed_at": when(self.reviewed_at),
            "veto_category": self.veto_category,
            "veto_reason": self.veto_reason,
            "published_at": when(self.published_at),
        }


def draft_of(row: DraftRecord, model: str) -> Draft:
    def loaded(value: str | None) -> Any:
        return json.loads(value) if value else None

    return Draft(
        row.id,
        model,
        row.channel_id,
        row.slot,
        DraftState(row.state),
        row.title,
        row.text,
        row.digest,
        row.prompt,
        loaded(row.context),
        loaded(row.params),
        loaded(row.backend),
        json.loads(row.attempts),
        row.created_at,
        row.reviewer,
        row.reviewed_at,
        row.veto_category,
        row.veto_reason,
        row.published_at,
    )


def load_draft(session: Session, draft_id: int, *, lock: bool = False) -> tuple[DraftRecord, str]:
    query = (
        select(DraftRecord, ModelRecord.name)
        .join(ChannelRecord, ChannelRecord.id == DraftRecord.channel_id)
        .join(ModelRecord, ModelRecord.id == ChannelRecord.model_id)
        .where(DraftRecord.id == draft_id)
    )
    if lock:
        query = query.with_for_update(of=DraftRecord)
    found = session.execute(query).first()
    if found is None:
        raise NotFound(f"unknown draft {draft_id}")
    return found[0], found[1]


def compare_and_set(
    session: Session,
    draft_id: int,
    *,
    state: DraftState,
    values: dict[str, Any],
    claim: str | None = None,
    digest: str | None = None,
) -> bool:
    """`UPDATE corner_drafts SET values WHERE id = draft_id AND state = state [AND claim = claim]
    [AND digest = digest]`: True when it changed the row, False when the row was no longer in
    that state (another writer got there first)."""
    query = update(DraftRecord).where(DraftRecord.id == draft_id, DraftRecord.state == state.value)
    if claim is not None:
        query = query.where(DraftRecord.claim == claim)
    if digest is not None:
        query = query.where(DraftRecord.digest == digest)
    result = session.execute(query.values(**values).execution_options(synchronize_session="fetch"))
    assert isinstance(result, CursorResult)
    return int(result.rowcount) == 1


def rejection(text: str) -> str | None:
    """Why an attempt is unusable (empty, too short, repetitive), or None when it is usable."""
    stripped = text.strip()
    if not stripped:
        return "empty"
    if len(stripped) < MIN_CHARS:
        return f"shorter than {MIN_CHARS} characters"
    words = stripped.lower().split()
    if len(words) >= 40:
        grams = [tuple(words[i : i + 4]) for i in range(len(words) - 3)]
        share = len(set(grams)) / len(grams)
        if share < MIN_DISTINCT_4GRAMS:
            return f"repetitive: {share:.0%} distinct word 4-grams"
    lines = [line.strip() for line in stripped.splitlines() if line.strip()]
    if len(lines) >= 4:
        _line, count = Counter(lines).most_common(1)[0]
        if count >= 4 and count * 2 >= len(lines):
            return f"repetitive: one line makes up {count} of {len(lines)} lines"
    return None


def title_of(text: str, number: int) -> str:
    """The model's first line when it reads as a title; the text itself is never changed."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) >= 2:
        first = lines[0].lstrip("#").strip().strip("*_").strip()
        if first.lower().startswith("title:"):
            first = first[len("title:") :].strip()
        first = first.strip("\"'“”").strip()
        if first and len(first) <= TITLE_CHARS:
            return first
    return f"Essay {number}"


def _retired(when: datetime | None) -> str:
    return f", retired on {when.day} {when:%B %Y}" if when else ""


def _previous_posts(session: Session, channel_id: int) -> list[ContextItem]:
    rows = session.scalars(
        select(DraftRecord)
        .where(
            DraftRecord.channel_id == channel_id,
            DraftRecord.state == DraftState.PUBLISHED.value,
        )
        .order_by(DraftRecord.published_at.desc(), DraftRecord.id.desc())
    ).all()
    return [
        ContextItem(row.title or "untitled", " ".join((row.text or "").split())[:200])
        for row in rows
    ]


def _claim(
    session: Session, channel: ChannelRecord, slot: datetime | None, now: datetime
) -> tuple[int, str] | None:
    """Reserve the slot for this writer: (draft id, claim token); None when another writer holds
    it or it is done. A claim older than STALE_CLAIM is taken over with a new token, so the
    writer that held it can no longer complete it."""
    token = secrets.token_hex(16)
    if slot is not None:
        held = session.scalar(
            select(DraftRecord)
            .where(DraftRecord.channel_id == channel.id, DraftRecord.slot == slot)
            .with_for_update()
        )
        if held is not None:
            if held.state != DraftState.DRAFTING.value or now - held.created_at < STALE_CLAIM:
                return None
            taken = compare_and_set(
                session,
                held.id,
                state=DraftState.DRAFTING,
                claim=held.claim,
                values={"created_at": now, "claim": token},
            )
            return (held.id, token) if taken else None
    row = DraftRecord(
        channel_id=channel.id,
        slot=slot,
        state=DraftState.DRAFTING.value,
        created_at=now,
        claim=token,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return None  # another tick claimed the slot between our read and our write
    return row.id, token


def _generate(
    backend: Backend, prompt: str, params: dict[str, Any], seed: int
) -> tuple[str | None, list[dict[str, Any]], Params]:
    attempts: list[dict[str, Any]] = []
    used = Params(**params, seed=seed)
    for n in range(MAX_ATTEMPTS):
        used = Params(**params, seed=seed + n)
        done = backend.chat(ChatRequest((Message("user", prompt),), used))
        reason = rejection(done.text)
        attempts.append(
            {
                "seed": used.seed,
                "text": done.text,
                "digest": sha256_digest(done.text.encode("utf-8")),
                "finish_reason": done.finish_reason,
                "completion_tokens": done.usage.completion_tokens,
                "rejected": reason,
            }
        )
        if reason is None:
            return done.text, attempts, used
    return None, attempts, used


def _prompt(
    session: Session, channel_id: int, channel: Channel, model: str
) -> tuple[str, dict[str, Any], int]:
    """The prompt for the next essay, the context it shows (news and previous posts, fitted to
    the channel's budget) and the essay's number."""
    settings = channel.context
    news = news_items(Path(settings["news"]), settings["news_items"]) if settings["news"] else []
    previous = _previous_posts(session, channel_id) if settings["previous"] else []
    shown = fit(news, previous, settings["chars"])
    context_text = render_context(shown)
    prompt = channel.prompt.format(
        model=model,
        retired=_retired(require_model(session, model).retired_at),
        cadence=channel.cadence_words,
        context=context_text + "\n\n" if context_text else "",
    )
    return prompt, shown, 1 + len(previous)


def write_draft(
    store: Store,
    model: str,
    backend: Backend,
    *,
    slot: datetime | None = None,
    now: datetime | None = None,
) -> Draft | None:
    """Have the model write one draft (for `slot`, or by hand when None). Returns None when the
    slot is already drafted or being drafted elsewhere."""
    now = now or utc_now()
    with store.transaction() as session:
        row = live_channel(session, model, lock=True)
        if row.state != ChannelState.OPEN.value:
            raise Conflict(f"{model}'s essay channel is {row.state}: resume it to draft")
        channel = channel_of(store, row, model)
        claim = _claim(session, row, slot, now)
        if claim is None:
            return None
        claim_id, token = claim
        prompt, shown, number = _prompt(session, row.id, channel, model)
    try:
        text, attempts, used = _generate(backend, prompt, channel.params, seed=claim_id)
    except BaseException:
        # Free the slot so the next tick tries again, unless another writer took it over; the
        # failure is the caller's to report.
        with store.transaction() as session:
            session.execute(
                delete(DraftRecord).where(
                    DraftRecord.id == claim_id,
                    DraftRecord.state == DraftState.DRAFTING.value,
                    DraftRecord.claim == token,
                )
            )
        raise
    values: dict[str, Any] = {
        "prompt": prompt,
        "context": canonical_json(shown),
        "params": canonical_json({**channel.params, "seed": used.seed}),
        "backend": canonical_json(backend.describe()),
        "attempts": canonical_json(attempts),
        "claim": None,
    }
    if text is None:
        values["state"] = DraftState.FAILED.value
        kind, payload = "corner.draft-failed", {}
    else:
        digest = sha256_digest(text.encode("utf-8"))
        values.update(
            state=DraftState.PENDING.value, text=text, title=title_of(text, number), digest=digest
        )
        kind, payload = "corner.drafted", {"digest": digest, "title": values["title"]}
    with store.transaction() as session:
        # Only the writer still holding the claim completes the draft: one whose claim expired
        # and was taken over (the draft may be reviewed or published by now) changes nothing.
        if not compare_and_set(
            session, claim_id, state=DraftState.DRAFTING, claim=token, values=values
        ):
            raise Conflict(
                f"draft {claim_id} was taken over by another writer when this one's claim "
                f"expired ({STALE_CLAIM}): its text is discarded and the draft is unchanged"
            )
        append_event(
            session,
            kind=kind,
            subject=f"model:{model}",
            actor=store.settings.actor,
            payload={
                "draft": claim_id,
                "slot": iso(slot) if slot else None,
                "attempts": [{"digest": a["digest"], "rejected": a["rejected"]} for a in attempts],
                **payload,
            },
        )
        row_, _ = load_draft(session, claim_id)
        return draft_of(row_, model)
