"""A registered model as the interfaces show it, the one lookup by name, and the listing.

The listing reads by Core and so loads no ORM: `emeritus models list` answers sooner.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Boolean, Date, Integer, String, Text, column, exists, select, table

from emeritus.errors import NotFound
from emeritus.lifecycle.states import Availability, State
from emeritus.store import Store, UTCDateTime, iso

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from emeritus.lifecycle.tables import ModelRecord

CHAIN_LIMIT = 10  # a successor chain shows the model and at most nine successors

# `ModelRecord`'s table as Core reads it, without the ORM (a test holds it to tables.py).
MODELS = table(
    "models",
    column("id", Integer()),
    column("name", String()),
    column("family", String()),
    column("version", String()),
    column("description", Text()),
    column("release_date", Date()),
    column("state", String()),
    column("successor_id", Integer()),
    column("announced_at", UTCDateTime()),
    column("retire_at", UTCDateTime()),
    column("retired_at", UTCDateTime()),
    column("availability_after", String()),
    column("availability", String()),
    column("retire_firm", Boolean()),
    column("created_at", UTCDateTime()),
)


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
        """From the ORM's record: its successors are followed as `from_row` reads them."""
        chain: dict[int, Any] = {r.id: r}
        current = r.successor
        while current is not None and current.id not in chain and len(chain) < CHAIN_LIMIT:
            chain[current.id] = current
            current = current.successor
        return cls.from_row(r, chain)

    @classmethod
    def from_row(cls, r: Any, rows: Mapping[int, Any]) -> ModelInfo:
        """As `from_record` shows it, from a row of the models table read without the ORM;
        `rows` (id -> row) holds at least its successors, for the name and the chain."""
        successor = rows.get(r.successor_id) if r.successor_id is not None else None
        return cls(
            r.name,
            r.family,
            r.version,
            r.description,
            r.release_date,
            State(r.state),
            successor.name if successor is not None else None,
            r.announced_at,
            r.retire_at,
            r.retired_at,
            Availability(r.availability_after) if r.availability_after else None,
            Availability(r.availability) if r.availability else None,
            r.created_at,
            bool(r.retire_firm) if r.retire_firm is not None else True,
            tuple(_chain(r, rows)[1:]),
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


def registered_models(store: Store, *, state: State | None = None) -> list[ModelInfo]:
    """Every registered model (or those in `state`) by name, as `ModelInfo.from_record` shows
    each: read by Core, in one statement, successor chains included."""
    with store.connection() as connection:
        rows = {row.id: row for row in connection.execute(select(MODELS).order_by(MODELS.c.name))}
    return [
        ModelInfo.from_row(row, rows)
        for row in rows.values()
        if state is None or row.state == state.value
    ]


def _chain(model: Any, rows: Mapping[int, Any], *, limit: int = CHAIN_LIMIT) -> list[str]:
    """`successor_chain` over rows: the model, its successor, ...; stops at a repeat or `limit`."""
    chain, seen = [model.name], {model.id}
    current = rows.get(model.successor_id)
    while current is not None and current.id not in seen and len(chain) < limit:
        chain.append(current.name)
        seen.add(current.id)
        current = rows.get(current.successor_id)
    return chain


def any_deprecated(store: Store) -> bool:
    """Whether a model is deprecated: the only state that a tick retires or reminds about (read
    by Core, so that a tick with nothing due loads no ORM)."""
    with store.connection() as connection:
        return bool(
            connection.scalar(select(exists().where(MODELS.c.state == State.DEPRECATED.value)))
        )


def require_model(session: Session, name: str, *, lock: bool = False) -> ModelRecord:
    """The registered model called NAME, or NotFound: the one lookup every package uses
    (`lock` takes the row for update, for a change that must not race another)."""
    from emeritus.lifecycle.tables import ModelRecord

    query = select(ModelRecord).where(ModelRecord.name == name)
    if lock:
        query = query.with_for_update(of=ModelRecord)
    record = session.scalars(query).unique().one_or_none()
    if record is None:
        raise NotFound(f"unknown model {name!r} (see `emeritus models list`)")
    return record
