"""Stragglers: the principals and keys still calling a deprecated (or retired) model, how much,
and whether they have tried its successor yet (docs/design/notices.md)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from emeritus.access import KeyRecord, PrincipalRecord, UsageRecord
from emeritus.errors import Conflict
from emeritus.lifecycle import State, require_model
from emeritus.store import Store, as_utc, iso, utc_now


@dataclass(frozen=True)
class Straggler:
    principal: str
    contact: str
    keys: tuple[str, ...]
    requests: int
    tokens: int
    last_call: datetime
    per_day: tuple[int, ...]  # requests per day, oldest first, the last entry today
    successor_requests: int
    successor_last_call: datetime | None

    @property
    def moved(self) -> bool:
        return self.successor_requests > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "principal": self.principal,
            "contact": self.contact,
            "keys": list(self.keys),
            "requests": self.requests,
            "tokens": self.tokens,
            "last_call": iso(self.last_call),
            "per_day": list(self.per_day),
            "called_successor": self.moved,
            "successor_requests": self.successor_requests,
            "successor_last_call": (
                iso(self.successor_last_call) if self.successor_last_call else None
            ),
        }


def find_stragglers(
    store: Store, model: str, *, days: int = 30, now: datetime | None = None
) -> tuple[str | None, list[Straggler]]:
    """The model's successor and who called the model in the last `days` days, heaviest
    first."""
    now = now or utc_now()
    since = now - timedelta(days=days)
    with store.transaction() as session:
        record = require_model(session, model)
        if record.state == State.ACTIVE.value:
            raise Conflict(f"{model} is active: stragglers are for a deprecated or retired model")
        heir = record.successor
        rows = session.execute(
            select(
                UsageRecord.principal_id,
                UsageRecord.time,
                UsageRecord.prompt_tokens,
                UsageRecord.completion_tokens,
                KeyRecord.key_id,
            )
            .outerjoin(KeyRecord, KeyRecord.id == UsageRecord.key_id)
            .where(
                UsageRecord.model_id == record.id, UsageRecord.time > since, UsageRecord.time <= now
            )
        ).all()
        people = {
            p.id: p
            for p in session.scalars(
                select(PrincipalRecord).where(PrincipalRecord.id.in_({r[0] for r in rows}))
            )
        }
        moved: dict[int, tuple[int, datetime | None]] = {}
        if heir is not None and people:
            for principal_id, count, last in session.execute(
                select(UsageRecord.principal_id, func.count(), func.max(UsageRecord.time))
                .where(UsageRecord.model_id == heir.id, UsageRecord.principal_id.in_(list(people)))
                .group_by(UsageRecord.principal_id)
            ):
                moved[principal_id] = (int(count), as_utc(last) if last else None)
        found = [
            _straggler(people[pid], [r for r in rows if r[0] == pid], moved.get(pid), now, days)
            for pid in people
        ]
    found.sort(key=lambda s: (-s.requests, s.principal))
    return (heir.name if heir else None), found


def _straggler(
    who: PrincipalRecord,
    rows: list[Any],
    moved: tuple[int, datetime | None] | None,
    now: datetime,
    days: int,
) -> Straggler:
    today = now.date()
    per_day = [0] * days
    for row in rows:
        age = (today - as_utc(row[1]).date()).days
        if 0 <= age < days:
            per_day[days - 1 - age] += 1
    return Straggler(
        principal=who.name,
        contact=who.contact,
        keys=tuple(sorted({r[4] or "console chat" for r in rows})),
        requests=len(rows),
        tokens=sum(r[2] + r[3] for r in rows),
        last_call=max(as_utc(r[1]) for r in rows),
        per_day=tuple(per_day),
        successor_requests=moved[0] if moved else 0,
        successor_last_call=moved[1] if moved else None,
    )


def day_labels(days: int, now: datetime) -> list[date]:
    """The dates `per_day` counts, oldest first."""
    return [(now - timedelta(days=days - 1 - n)).date() for n in range(days)]
