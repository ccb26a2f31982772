"""Grants: principal x model, with an expiry, a token quota per period and a request rate.

At most one live grant per principal and model: a new grant replaces (revokes) the live one, under
the principal's row lock, so two operators granting at once still leave one. Revoking a grant is
more than ending it: the principal's keys for that model are revoked with it, and the principal
cannot apply for the model again until an operator resets the revocation.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from emeritus.access.audit import audit, model_subject, principal_subject
from emeritus.access.policies import PERIODS, Terms, check_text, period_seconds, policy_of
from emeritus.access.principals import load_principal
from emeritus.access.quota import remaining
from emeritus.access.tables import GrantRecord, KeyRecord, PrincipalRecord
from emeritus.errors import Conflict, InvalidInput, NotFound
from emeritus.lifecycle import ModelRecord, check_name, require_model
from emeritus.store import Store, iso, utc_now


@dataclass(frozen=True)
class Grant:
    uid: str
    principal: str
    model: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    token_quota: int
    period: str
    requests_per_minute: int
    period_tokens: int
    reset_at: datetime | None = None  # when an operator lifted the revocation's block

    def live(self, now: datetime) -> bool:
        return self.revoked_at is None and now < self.expires_at

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "principal": self.principal,
            "model": self.model,
            "created_at": iso(self.created_at),
            "expires_at": iso(self.expires_at),
            "revoked_at": iso(self.revoked_at) if self.revoked_at else None,
            "reset_at": iso(self.reset_at) if self.reset_at else None,
            "live": self.live(now or utc_now()),
            "token_quota": self.token_quota,
            "period": self.period,
            "requests_per_minute": self.requests_per_minute,
        }


def _period_name(seconds: int) -> str:
    return next((name for name, s in PERIODS.items() if s == seconds), f"{seconds}s")


def grant_of(row: GrantRecord, principal: str, model: str) -> Grant:
    return Grant(
        row.uid,
        principal,
        model,
        row.created_at,
        row.expires_at,
        row.revoked_at,
        row.token_quota,
        _period_name(row.period_s),
        row.requests_per_minute,
        row.period_tokens,
        row.reset_at,
    )


def live_grant(
    session: Session, principal_id: int, model_id: int, now: datetime, *, lock: bool = False
) -> GrantRecord | None:
    query = (
        select(GrantRecord)
        .where(
            GrantRecord.principal_id == principal_id,
            GrantRecord.model_id == model_id,
            GrantRecord.revoked_at.is_(None),
            GrantRecord.expires_at > now,
        )
        .order_by(GrantRecord.id.desc())
        .limit(1)
    )
    if lock:  # the quota counters live on this row (docs/design/access.md, Quota accounting)
        query = query.with_for_update()
    return session.scalar(query)


def latest_grant(session: Session, principal_id: int, model_id: int) -> GrantRecord | None:
    return session.scalar(
        select(GrantRecord)
        .where(GrantRecord.principal_id == principal_id, GrantRecord.model_id == model_id)
        .order_by(GrantRecord.id.desc())
        .limit(1)
    )


def blocking_revocation(session: Session, principal_id: int, model_id: int) -> GrantRecord | None:
    """The revoked grant that keeps the principal from applying for the model, if any.

    A grant that was replaced is never the latest one, so the latest grant is revoked only when
    an operator revoked it; it blocks until an operator resets it."""
    latest = latest_grant(session, principal_id, model_id)
    if latest is None or latest.revoked_at is None or latest.reset_at is not None:
        return None
    return latest


def _revoke_keys(
    session: Session,
    store: Store,
    principal: PrincipalRecord,
    model: str,
    *,
    reason: str,
    now: datetime,
    actor: str | None,
) -> list[str]:
    """Revoke every unrevoked key of the principal whose scope names the model."""
    rows = session.scalars(
        select(KeyRecord)
        .where(KeyRecord.principal_id == principal.id, KeyRecord.revoked_at.is_(None))
        .order_by(KeyRecord.id)
        .with_for_update()
    )
    revoked = []
    for row in rows:
        if model not in json.loads(row.models):
            continue
        row.revoked_at = now
        revoked.append(row.key_id)
        audit(
            session,
            store,
            "key_revoked",
            principal_subject(principal.name),
            {"key_id": row.key_id, "reason": f"the grant for {model} was revoked: {reason}"},
            actor=actor,
        )
    return revoked


def create_grant(
    session: Session,
    store: Store,
    principal: PrincipalRecord,
    model: ModelRecord,
    terms: Terms,
    *,
    now: datetime,
    application_id: int | None = None,
    reason: str = "",
    actor: str | None = None,
    tier: str | None = None,
) -> Grant:
    """Insert a grant, revoking a live one it replaces; the caller holds the principal's lock."""
    replaced = live_grant(session, principal.id, model.id, now, lock=True)
    if replaced is not None:
        replaced.revoked_at = now
    row = GrantRecord(
        uid=f"grant_{uuid.uuid4().hex}",
        principal_id=principal.id,
        model_id=model.id,
        application_id=application_id,
        tier=tier,
        created_at=now,
        expires_at=now + timedelta(days=terms.days),
        token_quota=terms.tokens,
        period_s=period_seconds(terms.period),
        requests_per_minute=terms.requests_per_minute,
        period_start=0,
        period_tokens=0,
        minute_start=0,
        minute_requests=0,
    )
    session.add(row)
    session.flush()
    grant = grant_of(row, principal.name, model.name)
    audit(
        session,
        store,
        "granted",
        model_subject(model.name),
        {
            **grant.to_dict(now),
            "replaces": replaced.uid if replaced is not None else None,
            "reason": reason,
            "entitlement": tier,
        },
        actor=actor,
    )
    return grant


def entitled_terms(session: Session, holder: PrincipalRecord, model: ModelRecord) -> Terms | None:
    """The terms the principal's tier is entitled to on the model, unless a revocation bars it."""
    policy = policy_of(session, model)
    terms = policy.entitlement(holder.tier) if policy is not None else None
    if terms is None or blocking_revocation(session, holder.id, model.id) is not None:
        return None
    return terms


def may_use(session: Session, holder: PrincipalRecord, model: ModelRecord, now: datetime) -> bool:
    """A live grant, or an entitlement that would make one on first use."""
    live = live_grant(session, holder.id, model.id, now)
    if live is not None and live.tier is None:
        return True
    return entitled_terms(session, holder, model) is not None


def entitlement_grant(
    session: Session, store: Store, holder: PrincipalRecord, model: ModelRecord, now: datetime
) -> GrantRecord | None:
    """Make the grant the principal's tier entitles it to (on first use, or to be revoked when an
    operator bars an entitled principal that never used the model); None if not entitled."""
    terms = entitled_terms(session, holder, model)
    if terms is None:
        return None
    create_grant(
        session,
        store,
        holder,
        model,
        terms,
        now=now,
        reason=f"the {holder.tier} tier is entitled",
        actor="system",
        tier=holder.tier,
    )
    return live_grant(session, holder.id, model.id, now, lock=True)


def quota_left(
    store: Store, principal: str, model: str, *, now: datetime | None = None
) -> dict[str, Any] | None:
    """What the principal may still spend on the model this period (the chat shows it), from its
    live grant or, unused yet, its tier's entitlement; None if it may not use the model."""
    now = now or utc_now()
    with store.transaction() as session:
        holder = load_principal(session, principal)
        record = require_model(session, model)
        grant = live_grant(session, holder.id, record.id, now)
        if grant is not None and (grant.tier is None or grant.tier == holder.tier):
            left, quota, period = remaining(grant, now), grant.token_quota, grant.period_s
        else:
            terms = entitled_terms(session, holder, record)
            if terms is None:
                return None
            left = quota = terms.tokens
            period = period_seconds(terms.period)
        return {"tokens_left": left, "token_quota": quota, "period": _period_name(period)}


class Grants:
    def __init__(self, store: Store) -> None:
        self.store = store

    def grant(
        self,
        principal: str,
        model: str,
        *,
        terms: Terms,
        reason: str = "",
        now: datetime | None = None,
    ) -> Grant:
        check_text(reason, "the reason")
        now = now or utc_now()
        with self.store.transaction() as session:
            holder = load_principal(session, principal, lock=True)
            record = require_model(session, check_name(model))
            return create_grant(session, self.store, holder, record, terms, now=now, reason=reason)

    def revoke(
        self,
        principal: str,
        model: str,
        *,
        reason: str,
        now: datetime | None = None,
        actor: str | None = None,
    ) -> Grant:
        if not reason.strip():
            raise InvalidInput("revoking a grant needs a --reason")
        check_text(reason, "the reason")
        now = now or utc_now()
        with self.store.transaction() as session:
            holder = load_principal(session, principal, lock=True)
            record = require_model(session, check_name(model))
            row = live_grant(session, holder.id, record.id, now, lock=True)
            if row is None:
                row = entitlement_grant(session, self.store, holder, record, now)
            if row is None:
                raise NotFound(f"{principal} holds no live grant for {model}")
            row.revoked_at = now
            grant = grant_of(row, principal, model)
            keys = _revoke_keys(
                session, self.store, holder, model, reason=reason, now=now, actor=actor
            )
            audit(
                session,
                self.store,
                "grant_revoked",
                model_subject(model),
                {"uid": row.uid, "principal": principal, "reason": reason, "keys": keys},
                actor=actor,
            )
            return grant

    def reset(
        self,
        principal: str,
        model: str,
        *,
        reason: str,
        now: datetime | None = None,
        actor: str | None = None,
    ) -> Grant:
        """Lift a revocation's block so that the principal may apply for the model again (its
        keys stay revoked: a new grant needs new keys)."""
        if not reason.strip():
            raise InvalidInput("resetting a revocation needs a --reason")
        check_text(reason, "the reason")
        now = now or utc_now()
        with self.store.transaction() as session:
            holder = load_principal(session, principal, lock=True)
            record = require_model(session, check_name(model))
            row = blocking_revocation(session, holder.id, record.id)
            if row is None:
                raise Conflict(
                    f"{principal}'s grant for {model} is not revoked (or was reset already): "
                    "nothing to reset"
                )
            row.reset_at = now
            audit(
                session,
                self.store,
                "revocation_reset",
                model_subject(model),
                {"uid": row.uid, "principal": principal, "reason": reason},
                actor=actor,
            )
            return grant_of(row, principal, model)

    def all(
        self,
        *,
        principal: str | None = None,
        model: str | None = None,
        live_at: datetime | None = None,
    ) -> list[Grant]:
        with self.store.transaction() as session:
            query = (
                select(GrantRecord, PrincipalRecord.name, ModelRecord.name)
                .join(PrincipalRecord, GrantRecord.principal_id == PrincipalRecord.id)
                .join(ModelRecord, GrantRecord.model_id == ModelRecord.id)
                .order_by(GrantRecord.id)
            )
            if principal is not None:
                query = query.where(
                    GrantRecord.principal_id == load_principal(session, principal).id
                )
            if model is not None:
                query = query.where(
                    GrantRecord.model_id == require_model(session, check_name(model)).id
                )
            if live_at is not None:
                query = query.where(
                    GrantRecord.revoked_at.is_(None), GrantRecord.expires_at > live_at
                )
            return [grant_of(row, p, m) for row, p, m in session.execute(query)]


def check_terms(days: int, tokens: int, period: str, requests_per_minute: int) -> Terms:
    for what, value in (
        ("days", days),
        ("tokens", tokens),
        ("requests per minute", requests_per_minute),
    ):
        if value < 1:
            raise InvalidInput(f"{what} must be a positive integer, not {value}")
    period_seconds(period)
    return Terms(days, tokens, period, requests_per_minute)
