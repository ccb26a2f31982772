"""Conversations of a console account with a model it may use: kept, listed, exported and
deleted by their owner only. Spec: docs/design/chat.md."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from emeritus.access import AccountRecord, Policies, PrincipalRecord, may_use
from emeritus.chat.tables import ChatMessageRecord, ConversationRecord
from emeritus.errors import Conflict, InvalidInput, NotFound
from emeritus.lifecycle import Availability, ModelRecord, State, require_model
from emeritus.store import Store, append_event, iso, utc_now

MAX_MESSAGE = 8000  # characters in one message from the page
TITLE_WORDS = 8


@dataclass(frozen=True)
class ChatMessage:
    role: str
    content: str
    created_at: datetime
    request_id: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "content": self.content,
            "created_at": iso(self.created_at),
            "request_id": self.request_id,
        }


@dataclass(frozen=True)
class Conversation:
    uid: str
    model: str
    title: str
    created_at: datetime
    updated_at: datetime
    messages: tuple[ChatMessage, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "model": self.model,
            "title": self.title,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "messages": [m.to_dict() for m in self.messages],
        }

    def markdown(self) -> str:
        lines = [f"# {self.title or 'Conversation'} ({self.model})", ""]
        lines += [f"Started {iso(self.created_at)}.", ""]
        for m in self.messages:
            who = "You" if m.role == "user" else self.model
            lines += [f"## {who}, {iso(m.created_at)}", "", m.content, ""]
        return "\n".join(lines)


def _title(text: str) -> str:
    words = text.split()
    title = " ".join(words[:TITLE_WORDS])
    return (title + (" ..." if len(words) > TITLE_WORDS else ""))[:200]


class Conversations:
    """One account's conversations. Every lookup is by (uid, account): another account's
    conversation is NotFound, like one that does not exist."""

    def __init__(self, store: Store, account: str) -> None:
        self.store = store
        self.account = account

    def models(self, *, now: datetime | None = None) -> list[str]:
        """The models the account's principal may talk with: a live grant or an entitled tier,
        and a model that still answers someone."""
        now = now or utc_now()
        with self.store.transaction() as session:
            holder = self._principal(session)
            if holder is None:
                return []
            rows = session.scalars(select(ModelRecord).order_by(ModelRecord.name)).unique()
            return [
                m.name
                for m in rows
                if not (m.state == State.RETIRED.value and m.availability == Availability.NONE)
                and may_use(session, holder, m, now)
            ]

    def start(self, model: str, *, now: datetime | None = None) -> Conversation:
        now = now or utc_now()
        if model not in self.models(now=now):
            raise NotFound(f"model {model!r} does not exist")  # the gate's words: no oracle
        with self.store.transaction() as session:
            row = ConversationRecord(
                uid=f"chat_{uuid.uuid4().hex}",
                account_id=self._account_id(session),
                model_id=require_model(session, model).id,
                title="",
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            session.flush()
            return Conversation(row.uid, model, "", now, now)

    def all(self) -> list[Conversation]:
        with self.store.transaction() as session:
            rows = session.execute(
                select(ConversationRecord, ModelRecord.name)
                .join(ModelRecord, ModelRecord.id == ConversationRecord.model_id)
                .where(
                    ConversationRecord.account_id == self._account_id(session),
                    ConversationRecord.deleted_at.is_(None),
                )
                .order_by(ConversationRecord.updated_at.desc(), ConversationRecord.id.desc())
            ).all()
            return [
                Conversation(r.uid, name, r.title, r.created_at, r.updated_at) for r, name in rows
            ]

    def get(self, uid: str) -> Conversation:
        with self.store.transaction() as session:
            row, model = self._own(session, uid)
            messages = session.scalars(
                select(ChatMessageRecord)
                .where(ChatMessageRecord.conversation_id == row.id)
                .order_by(ChatMessageRecord.id)
            ).all()
            return Conversation(
                row.uid,
                model,
                row.title,
                row.created_at,
                row.updated_at,
                tuple(ChatMessage(m.role, m.content, m.created_at, m.request_id) for m in messages),
            )

    def add(
        self,
        uid: str,
        role: str,
        content: str,
        *,
        request_id: str | None = None,
        now: datetime | None = None,
    ) -> None:
        if role not in ("user", "assistant"):
            raise InvalidInput(f"a message's role is user or assistant, not {role!r}")
        now = now or utc_now()
        with self.store.transaction() as session:
            row, _ = self._own(session, uid, lock=True)
            session.add(
                ChatMessageRecord(
                    conversation_id=row.id,
                    role=role,
                    content=content,
                    request_id=request_id,
                    created_at=now,
                )
            )
            if not row.title and role == "user":
                row.title = _title(content)
            row.updated_at = now

    def delete(self, uid: str, *, now: datetime | None = None) -> int:
        """Remove the conversation's text; the usage rows of its answers stay. Returns how many
        messages were deleted."""
        now = now or utc_now()
        with self.store.transaction() as session:
            row, model = self._own(session, uid, lock=True)
            count = session.scalar(
                select(func.count()).where(ChatMessageRecord.conversation_id == row.id)
            )
            session.execute(
                delete(ChatMessageRecord).where(ChatMessageRecord.conversation_id == row.id)
            )
            row.title, row.deleted_at = "", now
            append_event(
                session,
                kind="chat.deleted",
                subject=f"model:{model}",
                actor=self.account,
                payload={"conversation": uid, "messages": int(count or 0)},
            )
            return int(count or 0)

    def export_json(self, uid: str) -> str:
        return json.dumps(self.get(uid).to_dict(), ensure_ascii=False, indent=2) + "\n"

    def _own(
        self, session: Session, uid: str, *, lock: bool = False
    ) -> tuple[ConversationRecord, str]:
        query = (
            select(ConversationRecord, ModelRecord.name)
            .join(ModelRecord, ModelRecord.id == ConversationRecord.model_id)
            .where(
                ConversationRecord.uid == uid,
                ConversationRecord.account_id == self._account_id(session),
                ConversationRecord.deleted_at.is_(None),
            )
        )
        if lock:
            query = query.with_for_update(of=ConversationRecord)
        found = session.execute(query).first()
        if found is None:
            raise NotFound("no such conversation")
        return found[0], found[1]

    def _account_id(self, session: Session) -> int:
        found = session.scalar(select(AccountRecord.id).where(AccountRecord.name == self.account))
        if found is None:
            raise NotFound(f"unknown account {self.account!r}")
        return found

    def _principal(self, session: Session) -> PrincipalRecord | None:
        return session.scalar(select(PrincipalRecord).where(PrincipalRecord.name == self.account))


def reviewable(store: Store, model: str) -> list[tuple[str, Conversation]]:
    """Every kept conversation with the model, with its account, for an operator: only when the
    model's policy says `chat_review: true` (its chat page tells each user so)."""
    try:
        allowed = Policies(store).get(model).chat_review
    except NotFound:
        allowed = False
    if not allowed:
        raise Conflict(f"{model}'s policy keeps chat conversations private to their owners")
    with store.transaction() as session:
        rows = session.execute(
            select(ConversationRecord.uid, AccountRecord.name)
            .join(AccountRecord, AccountRecord.id == ConversationRecord.account_id)
            .where(
                ConversationRecord.model_id == require_model(session, model).id,
                ConversationRecord.deleted_at.is_(None),
            )
            .order_by(ConversationRecord.updated_at.desc())
        ).all()
    return [(account, Conversations(store, account).get(uid)) for uid, account in rows]
