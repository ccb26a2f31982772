"""API keys: shown once, stored as a hash, scoped to models, revocable, expiring. A key is made
only for models its principal holds a live grant for, and revoking a grant revokes the keys that
name its model (emeritus.access.grants)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from emeritus.access.audit import audit, principal_subject
from emeritus.access.grants import may_use
from emeritus.access.keys_format import hash_key, key_matches, new_key, parse_key
from emeritus.access.policies import check_text
from emeritus.access.principals import load_principal
from emeritus.access.tables import KeyRecord, PrincipalRecord
from emeritus.errors import Conflict, InvalidInput, NotFound
from emeritus.lifecycle import check_name, require_model
from emeritus.store import Store, canonical_json, iso, utc_now

MAX_KEY_DAYS = 366


@dataclass(frozen=True)
class KeyInfo:
    """A key as listings show it: never its secret."""

    key_id: str
    principal: str
    label: str
    models: tuple[str, ...]
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None

    @classmethod
    def from_record(cls, r: KeyRecord, principal: str) -> KeyInfo:
        return cls(
            r.key_id,
            principal,
            r.label,
            tuple(json.loads(r.models)),
            r.created_at,
            r.expires_at,
            r.revoked_at,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "principal": self.principal,
            "label": self.label,
            "models": list(self.models),
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at) if self.revoked_at else None,
        }


@dataclass(frozen=True)
class NewKey:
    """A key just made: `key` is its only appearance anywhere."""

    key: str
    info: KeyInfo


class Keys:
    def __init__(self, store: Store) -> None:
        self.store = store

    def create(
        self,
        principal: str,
        models: list[str],
        *,
        days: int = 90,
        label: str = "",
        now: datetime | None = None,
        actor: str | None = None,
    ) -> NewKey:
        if not models:
            raise InvalidInput("a key needs at least one model in its scope (--model)")
        if not 1 <= days <= MAX_KEY_DAYS:
            raise InvalidInput(f"a key lives 1 to {MAX_KEY_DAYS} days, not {days}")
        if len(label) > 100:
            raise InvalidInput("a key label is at most 100 characters")
        check_text(label, "the key's label")
        now = now or utc_now()
        with self.store.transaction() as session:
            # The principal's lock orders this after a revocation in progress (which revokes
            # the keys it sees): a key cannot slip past the revocation of its grant.
            holder = load_principal(session, principal, lock=True)
            records = {
                record.name: record
                for record in (require_model(session, check_name(m)) for m in models)
            }
            scope = sorted(records)
            ungranted = [name for name in scope if not may_use(session, holder, records[name], now)]
            if ungranted:
                raise Conflict(
                    f"{principal} holds no live grant for {', '.join(ungranted)}: a key is made "
                    "only for models its holder may use"
                )
            key_id, key = new_key()
            record = KeyRecord(
                key_id=key_id,
                principal_id=holder.id,
                label=label,
                secret_hash=hash_key(key),
                models=canonical_json(scope),
                created_at=now,
                expires_at=now + timedelta(days=days),
            )
            session.add(record)
            session.flush()
            info = KeyInfo.from_record(record, principal)
            audit(
                session,
                self.store,
                "key_created",
                principal_subject(principal),
                info.to_dict(),
                actor=actor,
            )
            return NewKey(key, info)

    def revoke(
        self,
        key_id: str,
        *,
        reason: str,
        now: datetime | None = None,
        actor: str | None = None,
    ) -> KeyInfo:
        if not reason.strip():
            raise InvalidInput("revoking a key needs a --reason")
        check_text(reason, "the reason")
        now = now or utc_now()
        with self.store.transaction() as session:
            row = session.scalar(
                select(KeyRecord).where(KeyRecord.key_id == key_id).with_for_update()
            )
            if row is None:
                raise NotFound(f"unknown key {key_id!r} (see `emeritus access keys list`)")
            if row.revoked_at is not None:
                raise Conflict(f"key {key_id} was already revoked on {iso(row.revoked_at)}")
            row.revoked_at = now
            principal = session.get(PrincipalRecord, row.principal_id)
            assert principal is not None
            audit(
                session,
                self.store,
                "key_revoked",
                principal_subject(principal.name),
                {"key_id": key_id, "reason": reason},
                actor=actor,
            )
            return KeyInfo.from_record(row, principal.name)

    def holder(self, key: str, *, now: datetime | None = None) -> str:
        """The principal of a good key (known, matching, unrevoked, unexpired); NotFound
        otherwise, with one message whatever is wrong. The gate decides and counts refusals:
        this names who holds a key it accepted."""
        now = now or utc_now()
        key_id = parse_key(key)
        with self.store.transaction() as session:
            row = (
                None
                if key_id is None
                else session.scalar(select(KeyRecord).where(KeyRecord.key_id == key_id))
            )
            if (
                row is None
                or not key_matches(key, row.secret_hash)
                or row.revoked_at is not None
                or now >= row.expires_at
            ):
                raise NotFound("invalid API key")
            principal = session.get(PrincipalRecord, row.principal_id)
            assert principal is not None
            return principal.name

    def all(self, *, principal: str | None = None) -> list[KeyInfo]:
        with self.store.transaction() as session:
            query = (
                select(KeyRecord, PrincipalRecord.name)
                .join(PrincipalRecord, KeyRecord.principal_id == PrincipalRecord.id)
                .order_by(KeyRecord.id)
            )
            if principal is not None:
                query = query.where(KeyRecord.principal_id == load_principal(session, principal).id)
            return [KeyInfo.from_record(row, name) for row, name in session.execute(query)]
