"""The public list of deprecations: every deprecated or retired model, its dates and their
firmness, its successor chain and where to read more (docs/design/notices.md)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from emeritus.lifecycle.notices import Notice, migration_url, successor_chain
from emeritus.lifecycle.reminders import schedule_of
from emeritus.lifecycle.states import State
from emeritus.lifecycle.tables import ModelRecord, NoticeRecord
from emeritus.store import Store, iso


def deprecation_list(store: Store) -> list[dict[str, Any]]:
    """Deprecated models first (soonest retirement first), then retired ones (latest first)."""
    public = store.settings.public_url
    with store.transaction() as session:
        models = (
            session.scalars(
                select(ModelRecord).where(
                    ModelRecord.state.in_((State.DEPRECATED.value, State.RETIRED.value))
                )
            )
            .unique()
            .all()
        )
        entries = [_entry(model, schedule_of(session, model), public) for model in models]
    deprecated = sorted(
        (e for e in entries if e["state"] == State.DEPRECATED), key=lambda e: e["retire_at"]
    )
    retired = sorted(
        (e for e in entries if e["state"] == State.RETIRED),
        key=lambda e: e["retired_at"] or "",
        reverse=True,
    )
    return deprecated + retired


def _entry(model: ModelRecord, notice: NoticeRecord | None, public: str) -> dict[str, Any]:
    retired = model.state == State.RETIRED.value
    return {
        "model": model.name,
        "state": model.state,
        "announced_at": iso(model.announced_at) if model.announced_at else None,
        "retire_at": iso(model.retire_at) if model.retire_at else None,
        "date_firmness": None if retired else ("firm" if model.retire_firm else "tentative"),
        "retired_at": iso(model.retired_at) if model.retired_at else None,
        "successor": model.successor.name if model.successor else None,
        "successor_chain": successor_chain(model)[1:],
        "availability_after": model.availability if retired else model.availability_after,
        "notice": (f"{public}/notices/{Notice.from_record(notice).filename}" if notice else None),
        "migration_guide": migration_url(public, model.name) if model.successor else None,
    }
