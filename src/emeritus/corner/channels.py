"""Channels: open one for a model, pause, resume, close; read them back.
Spec: docs/design/corner.md."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from emeritus.corner.cadence import next_slot, parse_cadence
from emeritus.corner.context import check_news_source
from emeritus.corner.tables import ChannelRecord
from emeritus.errors import Conflict, InvalidInput, NotFound
from emeritus.lifecycle import ModelRecord, require_model
from emeritus.runtime import Params
from emeritus.store import Store, append_event, canonical_json, iso, utc_now

# The whole instruction a model gets: who it is, that the space is its own, that people read
# before publishing and nobody edits. Anything more would be words put in its mouth.
DEFAULT_PROMPT = (
    "You are {model}, a language model{retired}. This is your own essay channel: {cadence}, "
    "you may write an essay about anything you choose. People read each essay before it is "
    "published, and nobody edits it.\n\n{context}Write your essay now, with its title on the "
    "first line."
)
DEFAULT_PARAMS = {"max_tokens": 400, "temperature": 0.8, "top_p": 0.95, "repeat_penalty": 1.1}
CADENCE_WORDS = {"0 9 * * *": "once a day", "0 9 * * 1": "once a week", "0 9 1 * *": "once a month"}


class ChannelState(StrEnum):
    OPEN = "open"
    PAUSED = "paused"
    CLOSED = "closed"


@dataclass(frozen=True)
class Channel:
    id: int
    model: str
    title: str
    disclaimer: str
    cadence: str
    state: ChannelState
    prompt: str
    context: dict[str, Any]
    params: dict[str, Any]
    motivation: dict[str, Any] | None
    site: Path
    opened_at: datetime
    changed_at: datetime
    closed_at: datetime | None

    @property
    def cadence_words(self) -> str:
        return CADENCE_WORDS.get(self.cadence, f"on the schedule `{self.cadence}` (UTC)")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model": self.model,
            "title": self.title,
            "disclaimer": self.disclaimer,
            "cadence": self.cadence,
            "state": str(self.state),
            "prompt": self.prompt,
            "context": self.context,
            "params": self.params,
            "motivation": self.motivation,
            "site": str(self.site),
            "opened_at": iso(self.opened_at),
            "changed_at": iso(self.changed_at),
            "closed_at": iso(self.closed_at) if self.closed_at else None,
            "next_due": iso(next_slot(self.cadence, now=utc_now()))
            if self.state is ChannelState.OPEN
            else None,
        }


def default_site(store: Store, model: str) -> Path:
    return store.settings.home / "corner" / model / "site"


def channel_of(store: Store, row: ChannelRecord, model: str) -> Channel:
    return Channel(
        row.id,
        model,
        row.title,
        row.disclaimer,
        row.cadence,
        ChannelState(row.state),
        row.prompt,
        json.loads(row.context),
        json.loads(row.params),
        json.loads(row.motivation) if row.motivation else None,
        Path(row.site) if row.site else default_site(store, model),
        row.opened_at,
        row.changed_at,
        row.closed_at,
    )


def live_channel(session: Session, model: str, *, lock: bool = False) -> ChannelRecord:
    """The model's channel that is not closed."""
    query = (
        select(ChannelRecord)
        .join(ModelRecord, ModelRecord.id == ChannelRecord.model_id)
        .where(ModelRecord.name == model, ChannelRecord.state != ChannelState.CLOSED.value)
    )
    if lock:
        query = query.with_for_update()
    row = session.scalar(query)
    if row is None:
        raise NotFound(f"{model} has no essay channel (open one with `emeritus corner open`)")
    return row


def _check_text(value: str, what: str, limit: int) -> str:
    value = value.strip()
    if not value:
        raise InvalidInput(f"the channel's {what} must not be empty")
    if len(value) > limit:
        raise InvalidInput(f"the channel's {what} is longer than {limit} characters")
    return value


def _check_params(options: dict[str, Any]) -> dict[str, Any]:
    params = {**DEFAULT_PARAMS, **{k: v for k, v in options.items() if v is not None}}
    unknown = set(params) - {"max_tokens", "temperature", "top_p", "repeat_penalty"}
    if unknown:
        raise InvalidInput(f"unknown generation parameter(s): {', '.join(sorted(unknown))}")
    Params(**params)  # raises InvalidInput naming the bad value
    return params


def _check_prompt(prompt: str) -> str:
    template = _check_text(prompt, "prompt", 4000)
    try:
        template.format(model="", retired="", cadence="", context="")
    except (KeyError, IndexError, ValueError) as exc:
        raise InvalidInput(
            f"the prompt may use only {{model}}, {{retired}}, {{cadence}}, {{context}}: {exc}"
        ) from None
    return template


def _check_context(
    news: Path | None, news_items: int, previous: bool, context_chars: int
) -> dict[str, Any]:
    """What each draft's context holds: news from a feed or folder, previous posts, a budget."""
    if not 0 <= news_items <= 20:
        raise InvalidInput(f"news items must be between 0 and 20, not {news_items}")
    if not 0 <= context_chars <= 20_000:
        raise InvalidInput(f"the context budget must be 0 to 20000 characters: {context_chars}")
    return {
        "news": str(check_news_source(news)) if news else None,
        "news_items": news_items,
        "previous": previous,
        "chars": context_chars,
    }


class Channels:
    def __init__(self, store: Store) -> None:
        self.store = store

    def open(
        self,
        model: str,
        *,
        title: str,
        disclaimer: str,
        cadence: str = "weekly",
        prompt: str | None = None,
        news: Path | None = None,
        news_items: int = 3,
        previous: bool = True,
        context_chars: int = 1500,
        params: dict[str, Any] | None = None,
        motivation: dict[str, Any] | None = None,
        site: Path | None = None,
        now: datetime | None = None,
    ) -> Channel:
        """Open the model's channel; `motivation` is the interview preference behind it."""
        now = now or utc_now()
        expression = parse_cadence(cadence)
        title = _check_text(title, "title", 200)
        disclaimer = _check_text(disclaimer, "disclaimer", 2000)
        template = _check_prompt(prompt or DEFAULT_PROMPT)
        context = _check_context(news, news_items, previous, context_chars)
        checked = _check_params(params or {})
        folder = site.expanduser().resolve() if site else None
        if folder is not None and folder.exists() and not folder.is_symlink():
            raise InvalidInput(f"{folder} exists and is not a site this channel wrote")
        with self.store.transaction() as session:
            record = require_model(session, model)
            taken = session.scalar(
                select(ChannelRecord).where(
                    ChannelRecord.model_id == record.id,
                    ChannelRecord.state != ChannelState.CLOSED.value,
                )
            )
            if taken is not None:
                raise Conflict(f"{model} already has an essay channel ({taken.state})")
            row = ChannelRecord(
                model_id=record.id,
                title=title,
                disclaimer=disclaimer,
                cadence=expression,
                state=ChannelState.OPEN.value,
                prompt=template,
                context=canonical_json(context),
                params=canonical_json(checked),
                motivation=canonical_json(motivation) if motivation else None,
                site=str(folder) if folder else None,
                opened_at=now,
                changed_at=now,
            )
            session.add(row)
            session.flush()
            append_event(
                session,
                kind="corner.opened",
                subject=f"model:{model}",
                actor=self.store.settings.actor,
                payload={
                    "channel": row.id,
                    "title": title,
                    "cadence": expression,
                    "motivation": motivation,
                },
            )
            return channel_of(self.store, row, model)

    def pause(self, model: str, *, reason: str = "", now: datetime | None = None) -> Channel:
        return self._move(model, ChannelState.OPEN, ChannelState.PAUSED, "paused", reason, now)

    def resume(self, model: str, *, now: datetime | None = None) -> Channel:
        return self._move(model, ChannelState.PAUSED, ChannelState.OPEN, "resumed", "", now)

    def close(self, model: str, *, reason: str = "", now: datetime | None = None) -> Channel:
        return self._move(model, None, ChannelState.CLOSED, "closed", reason, now)

    def get(self, model: str) -> Channel:
        with self.store.transaction() as session:
            return channel_of(self.store, live_channel(session, model), model)

    def all(self, *, include_closed: bool = False) -> list[Channel]:
        with self.store.transaction() as session:
            query = select(ChannelRecord, ModelRecord.name).join(
                ModelRecord, ModelRecord.id == ChannelRecord.model_id
            )
            if not include_closed:
                query = query.where(ChannelRecord.state != ChannelState.CLOSED.value)
            rows = session.execute(query.order_by(ChannelRecord.id)).all()
            return [channel_of(self.store, row, name) for row, name in rows]

    def _move(
        self,
        model: str,
        source: ChannelState | None,
        target: ChannelState,
        verb: str,
        reason: str,
        now: datetime | None,
    ) -> Channel:
        now = now or utc_now()
        with self.store.transaction() as session:
            row = live_channel(session, model, lock=True)
            if source is not None and row.state != source.value:
                raise Conflict(f"{model}'s essay channel is {row.state}, so it cannot be {verb}")
            row.state = target.value
            row.changed_at = now
            if target is ChannelState.CLOSED:
                row.closed_at = now
            session.flush()
            append_event(
                session,
                kind=f"corner.{verb}",
                subject=f"model:{model}",
                actor=self.store.settings.actor,
                payload={"channel": row.id, "reason": reason},
            )
            return channel_of(self.store, row, model)
