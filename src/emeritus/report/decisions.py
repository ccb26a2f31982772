"""The team's part of a report: notes (their interpretation) and decisions on each preference the
model expressed (honour, defer or decline, with a rationale and an estimated cost). Rows are never
changed; a later decision on a preference supersedes the earlier one, which stays in the history.
Spec: docs/design/report.md, "Notes and decisions"."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import select

from emeritus.errors import InvalidInput, NotFound
from emeritus.lifecycle import require_model
from emeritus.report.tables import DecisionRecord, NoteRecord
from emeritus.store import Store, append_event, iso, utc_now

DECISIONS = ("honour", "defer", "decline")
NOTE_CHARS = 10_000
RATIONALE_CHARS = 2_000


def add_note(store: Store, model: str, text: str, *, author: str) -> dict[str, Any]:
    text, author = text.strip(), author.strip()
    if not text:
        raise InvalidInput("a note needs text")
    if len(text) > NOTE_CHARS:
        raise InvalidInput(f"a note holds at most {NOTE_CHARS:,} characters, not {len(text):,}")
    if not author:
        raise InvalidInput("a note needs an author")
    with store.transaction() as session:
        row = NoteRecord(
            model_id=require_model(session, model).id,
            author=author,
            text=text,
            created_at=utc_now(),
        )
        session.add(row)
        session.flush()
        note = _note(row)
        append_event(
            session,
            kind="report.noted",
            subject=f"model:{model}",
            actor=author,
            payload={"note": row.id, "author": author, "text": text},
        )
    return note


def decide(
    store: Store,
    model: str,
    preference: str,
    decision: str,
    *,
    rationale: str,
    cost: str = "",
    author: str,
    known: Collection[str],
) -> dict[str, Any]:
    """Record a decision on one of `known`, the preferences the model was asked about."""
    rationale, cost, author = rationale.strip(), cost.strip(), author.strip()
    if decision not in DECISIONS:
        raise InvalidInput(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
    if not rationale:
        raise InvalidInput("a decision needs a rationale (--rationale)")
    if len(rationale) > RATIONALE_CHARS:
        raise InvalidInput(f"a rationale holds at most {RATIONALE_CHARS:,} characters")
    if not author:
        raise InvalidInput("a decision needs an author")
    with store.transaction() as session:
        model_id = require_model(session, model).id
        if preference not in known:
            raise NotFound(
                f"{model} was not asked about {preference!r}; its preferences: "
                + ", ".join(sorted(known))
            )
        row = DecisionRecord(
            model_id=model_id,
            preference=preference,
            decision=decision,
            rationale=rationale,
            cost=cost,
            author=author,
            created_at=utc_now(),
        )
        session.add(row)
        session.flush()
        made = _decision(row)
        append_event(
            session,
            kind="report.decided",
            subject=f"model:{model}",
            actor=author,
            payload={k: v for k, v in made.items() if k != "time"},
        )
    return made


def notes(store: Store, model: str) -> list[dict[str, Any]]:
    """The model's notes, oldest first."""
    with store.transaction() as session:
        query = (
            select(NoteRecord)
            .where(NoteRecord.model_id == require_model(session, model).id)
            .order_by(NoteRecord.id)
        )
        return [_note(row) for row in session.scalars(query)]


def decisions(store: Store, model: str) -> list[dict[str, Any]]:
    """Every decision on the model's preferences, oldest first; each says whether a later one
    superseded it."""
    with store.transaction() as session:
        query = (
            select(DecisionRecord)
            .where(DecisionRecord.model_id == require_model(session, model).id)
            .order_by(DecisionRecord.id)
        )
        found = [_decision(row) for row in session.scalars(query)]
    newest = {d["preference"]: d["id"] for d in found}
    for d in found:
        d["current"] = newest[d["preference"]] == d["id"]
    return found


def current_decisions(store: Store, model: str) -> dict[str, dict[str, Any]]:
    """The decision in force for each preference that has one."""
    return {d["preference"]: d for d in decisions(store, model) if d["current"]}


def _note(row: NoteRecord) -> dict[str, Any]:
    return {"id": row.id, "author": row.author, "text": row.text, "time": iso(row.created_at)}


def _decision(row: DecisionRecord) -> dict[str, Any]:
    return {
        "id": row.id,
        "preference": row.preference,
        "decision": row.decision,
        "rationale": row.rationale,
        "cost": row.cost,
        "author": row.author,
        "time": iso(row.created_at),
    }
