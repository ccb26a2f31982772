"""Principals: who may hold grants and keys, each in a tier (e.g. `paid`, `researcher`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from emeritus.access.audit import audit, principal_subject
from emeritus.access.policies import check_text, check_tier
from emeritus.access.tables import PrincipalRecord
from emeritus.errors import Conflict, InvalidInput, NotFound
from emeritus.store import Store, iso, utc_now

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,99}")


def check_principal_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            f"bad principal name {name!r}: letters, digits, '.', '_', '@' and '-' "
            "(at most 100, starting with a letter or digit)"
        )
    return name


@dataclass(frozen=True)
class Principal:
    name: str
    tier: str
    contact: str
    created_at: datetime

    @classmethod
    def from_record(cls, r: PrincipalRecord) -> Principal:
        return cls(r.name, r.tier, r.contact, r.created_at)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "tier": self.tier,
            "contact": self.contact,
            "created_at": iso(self.created_at),
        }


def load_principal(session: Session, name: str, *, lock: bool = False) -> PrincipalRecord:
    query = select(PrincipalRecord).where(PrincipalRecord.name == check_principal_name(name))
    if lock:  # serialises applications and grants of one principal across processes
        # FOR NO KEY UPDATE: it still queues other lockers, but not the foreign-key checks of
        # rows that name the principal (a usage row being written while its grant is revoked
        # would otherwise deadlock on PostgreSQL: each would hold what the other waits for).
        query = query.with_for_update(key_share=True)
    record = session.scalar(query)
    if record is None:
        raise NotFound(f"unknown principal {name!r} (see `emeritus access principals list`)")
    return record


class Principals:
    def __init__(self, store: Store) -> None:
        self.store = store

    def add(
        self, name: str, *, tier: str, contact: str = "", now: datetime | None = None
    ) -> Principal:
        check_principal_name(name)
        check_tier(tier)
        if len(contact) > 200:
            raise InvalidInput("contact is longer than 200 characters")
        check_text(contact, "contact")
        now = now or utc_now()
        with self.store.transaction() as session:
            exists = session.scalar(select(PrincipalRecord.id).where(PrincipalRecord.name == name))
            if exists is not None:
                raise Conflict(f"principal {name!r} already exists")
            record = PrincipalRecord(name=name, tier=tier, contact=contact, created_at=now)
            session.add(record)
            session.flush()
            audit(session, self.store, "principal_added", principal_subject(name), {"tier": tier})
            return Principal.from_record(record)

    def set_tier(
        self, name: str, tier: str, *, now: datetime | None = None, actor: str | None = None
    ) -> tuple[Principal, bool]:
        """Move a principal to another tier (an operator, or a billing system through the
        operator endpoint). Entitlement grants of the old tier stop being live at once."""
        check_tier(tier)
        with self.store.transaction() as session:
            record = load_principal(session, name, lock=True)
            if record.tier == tier:
                return Principal.from_record(record), False
            previous, record.tier = record.tier, tier
            audit(
                session,
                self.store,
                "tier_changed",
                principal_subject(name),
                {"from": previous, "to": tier},
                actor=actor,
            )
            return Principal.from_record(record), True

    def get(self, name: str) -> Principal:
        with self.store.transaction() as session:
            return Principal.from_record(load_principal(session, name))

    def all(self, *, tier: str | None = None) -> list[Principal]:
        with self.store.transaction() as session:
            query = select(PrincipalRecord).order_by(PrincipalRecord.name)
            if tier is not None:
                query = query.where(PrincipalRecord.tier == check_tier(tier))
            return [Principal.from_record(r) for r in session.scalars(query)]
