"""A registered model as the interfaces show it, and the one lookup by name."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from emeritus.errors import NotFound
from emeritus.lifecycle.notices import successor_chain
from emeritus.lifecycle.states import Availability, State
from emeritus.lifecycle.tables import ModelRecord
from emeritus.store import iso


@dataclass(frozen=True)
class ModelInfo:
    """A registered model as the interfaces show it."""

    name: str
    family: str
    version: str
    description: str
    release_date: date | None
    state: State
    successor: str | None
    announced_at: datetime | None
    retire_at: datetime | None
    retired_at: datetime | None
    availability_after: Availability | None
    availability: Availability | None
    created_at: datetime
    retire_firm: bool = True
    successor_chain: tuple[str, ...] = ()  # the successor, its successor, ...

    @classmethod
    def from_record(cls, r: ModelRecord) -> ModelInfo:
        return cls(
            r.name,
            r.family,
            r.version,
            r.description,
            r.release_date,
            State(r.state),
            r.successor.name if r.successor else None,
            r.announced_at,
            r.retire_at,
            r.retired_at,
            Availability(r.availability_after) if r.availability_after else None,
            Availability(r.availability) if r.availability else None,
            r.created_at,
            bool(r.retire_firm) if r.retire_firm is not None else True,
            tuple(successor_chain(r)[1:]),
        )

    def to_dict(self) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return None if value is None else iso(value)

        return {
            "name": self.name,
            "family": self.family,
            "version": self.version,
            "description": self.description,
            "release_date": self.release_date.isoformat() if self.release_date else None,
            "state": str(self.state),
            "successor": self.successor,
            "announced_at": when(self.announced_at),
            "retire_at": when(self.retire_at),
            "retire_firm": self.retire_firm if self.retire_at else None,
            "successor_chain": list(self.successor_chain),
            "retired_at": when(self.retired_at),
            "availability_after": self.availability_after and str(self.availability_after),
            "availability": self.availability and str(self.availability),
            "created_at": iso(self.created_at),
        }


def require_model(session: Session, name: str, *, lock: bool = False) -> ModelRecord:
    """The registered model called NAME, or NotFound: the one lookup every package uses
    (`lock` takes the row for update, for a change that must not race another)."""
    query = select(ModelRecord).where(ModelRecord.name == name)
    if lock:
        query = query.with_for_update(of=ModelRecord)
    record = session.scalars(query).unique().one_or_none()
    if record is None:
        raise NotFound(f"unknown model {name!r} (see `emeritus models list`)")
    return record
