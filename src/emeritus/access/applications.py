"""Access applications, modelled on gated model repositories: a form per model, states pending
-> approved | rejected, automatic or manual approval, and a rejected applicant, or one whose
grant was revoked, who cannot re-apply until an operator resets the rejection or the revocation.
Spec: docs/design/access.md, Applications.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from emeritus.access.audit import audit, model_subject
from emeritus.access.grants import blocking_revocation, create_grant, live_grant
from emeritus.access.policies import Approval, Policy, check_text, policy_of
from emeritus.access.principals import load_principal
from emeritus.access.tables import ApplicationRecord, PrincipalRecord
from emeritus.errors import Conflict, InvalidInput, NotFound
from emeritus.lifecycle import Availability, ModelRecord, State, check_name, require_model
from emeritus.store import Store, canonical_json, iso, utc_now


class ApplicationState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


@dataclass(frozen=True)
class Application:
    uid: str
    principal: str
    model: str
    state: ApplicationState
    answers: dict[str, Any]
    submitted_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    reason: str | None
    reset_at: datetime | None

    def to_dict(self, *, answers: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "uid": self.uid,
            "principal": self.principal,
            "model": self.model,
            "state": str(self.state),
            "submitted_at": iso(self.submitted_at),
            "decided_at": iso(self.decided_at) if self.decided_at else None,
            "decided_by": self.decided_by,
            "reason": self.reason,
            "reset_at": iso(self.reset_at) if self.reset_at else None,
        }
        if answers:
            out["answers"] = self.answers
        return out


def _of(row: ApplicationRecord, principal: str, model: str) -> Application:
    return Application(
        row.uid,
        principal,
        model,
        ApplicationState(row.state),
        json.loads(row.answers),
        row.submitted_at,
        row.decided_at,
        row.decided_by,
        row.reason,
        row.reset_at,
    )


def _auto(policy: Policy, model: ModelRecord) -> bool:
    public = model.state == State.RETIRED.value and model.availability == Availability.PUBLIC
    return policy.approval is Approval.AUTO or public


class Applications:
    def __init__(self, store: Store) -> None:
        self.store = store

    def submit(
        self, principal: str, model: str, answers: Any, *, now: datetime | None = None
    ) -> Application:
        """Validate the answers against the model's form and record a pending application
        (approved at once when the model approves automatically)."""
        now = now or utc_now()
        with self.store.transaction() as session:
            holder = load_principal(session, principal, lock=True)
            record = require_model(session, check_name(model))
            policy = policy_of(session, record)
            if policy is None:
                raise NotFound(f"{model} takes no access applications")
            if record.state == State.RETIRED.value and record.availability == Availability.NONE:
                raise Conflict(f"{model} is retired and answers nobody: it takes no applications")
            if policy.tiers and holder.tier not in policy.tiers:
                raise Conflict(
                    f"{model} is open to the {', '.join(policy.tiers)} tier(s), "
                    f"not to {principal} ({holder.tier})"
                )
            self._check_may_apply(session, holder, record, now)
            checked = policy.check_answers(answers)
            row = ApplicationRecord(
                uid=f"app_{uuid.uuid4().hex}",
                principal_id=holder.id,
                model_id=record.id,
                state=ApplicationState.PENDING.value,
                answers=canonical_json(checked),
                submitted_at=now,
            )
            session.add(row)
            session.flush()
            # Answers may hold personal data: the event names the fields, not their values.
            audit(
                session,
                self.store,
                "applied",
                model_subject(model),
                {"uid": row.uid, "principal": principal, "fields": sorted(checked)},
                actor=principal,  # the applicant acts, whoever runs the gateway
            )
            if _auto(policy, record):
                self._decide(
                    session,
                    row,
                    holder,
                    record,
                    approve=True,
                    reason="",
                    now=now,
                    actor="system",
                    policy=policy,
                )
            return _of(row, principal, model)

    def approve(
        self, uid: str, *, reason: str = "", now: datetime | None = None, actor: str | None = None
    ) -> Application:
        return self._operator_decision(uid, approve=True, reason=reason, now=now, actor=actor)

    def reject(
        self, uid: str, *, reason: str, now: datetime | None = None, actor: str | None = None
    ) -> Application:
        if not reason.strip():
            raise InvalidInput("rejecting an application needs a --reason")
        return self._operator_decision(uid, approve=False, reason=reason, now=now, actor=actor)

    def reset(self, uid: str, *, reason: str, now: datetime | None = None) -> Application:
        """Lift a rejection so that the principal may apply again."""
        if not reason.strip():
            raise InvalidInput("resetting a rejection needs a --reason")
        check_text(reason, "the reason")
        now = now or utc_now()
        with self.store.transaction() as session:
            row, principal, model = self._load(session, uid, lock=True)
            if row.state != ApplicationState.REJECTED.value or row.reset_at is not None:
                raise Conflict(f"application {uid} is {row.state}: only a rejection is reset")
            row.reset_at = now
            audit(
                session,
                self.store,
                "application_reset",
                model_subject(model.name),
                {"uid": uid, "principal": principal.name, "reason": reason},
            )
            return _of(row, principal.name, model.name)

    def get(self, uid: str) -> Application:
        with self.store.transaction() as session:
            row, principal, model = self._load(session, uid)
            return _of(row, principal.name, model.name)

    def all(
        self,
        *,
        state: ApplicationState | None = None,
        principal: str | None = None,
        model: str | None = None,
    ) -> list[Application]:
        with self.store.transaction() as session:
            query = (
                select(ApplicationRecord, PrincipalRecord.name, ModelRecord.name)
                .join(PrincipalRecord, ApplicationRecord.principal_id == PrincipalRecord.id)
                .join(ModelRecord, ApplicationRecord.model_id == ModelRecord.id)
                .order_by(ApplicationRecord.submitted_at, ApplicationRecord.id)
            )
            if state is not None:
                query = query.where(ApplicationRecord.state == state.value)
            if principal is not None:
                query = query.where(
                    ApplicationRecord.principal_id == load_principal(session, principal).id
                )
            if model is not None:
                query = query.where(
                    ApplicationRecord.model_id == require_model(session, check_name(model)).id
                )
            return [_of(row, p, m) for row, p, m in session.execute(query)]

    # -- internals ---------------------------------------------------------------------------

    def _check_may_apply(
        self, session: Session, holder: PrincipalRecord, record: ModelRecord, now: datetime
    ) -> None:
        earlier = session.scalars(
            select(ApplicationRecord).where(
                ApplicationRecord.principal_id == holder.id,
                ApplicationRecord.model_id == record.id,
            )
        )
        if live_grant(session, holder.id, record.id, now) is not None:
            raise Conflict(
                f"{holder.name} already holds a live grant for {record.name}: "
                "apply again when it ends"
            )
        revoked = blocking_revocation(session, holder.id, record.id)
        if revoked is not None:
            raise Conflict(
                f"{holder.name}'s grant for {record.name} was revoked: an operator must reset "
                f"the revocation (`emeritus access reset {holder.name} {record.name}`) before a "
                "new application"
            )
        for row in earlier:
            if row.state == ApplicationState.PENDING.value:
                raise Conflict(
                    f"{holder.name} already has a pending application for {record.name}: {row.uid}"
                )
            if row.state == ApplicationState.REJECTED.value and row.reset_at is None:
                raise Conflict(
                    f"{holder.name}'s application {row.uid} for {record.name} was rejected: "
                    "an operator must reset it before a new one"
                )

    def _load(
        self, session: Session, uid: str, *, lock: bool = False
    ) -> tuple[ApplicationRecord, PrincipalRecord, ModelRecord]:
        query = select(ApplicationRecord).where(ApplicationRecord.uid == uid)
        if lock:
            query = query.with_for_update()
        row = session.scalar(query)
        if row is None:
            raise NotFound(f"unknown application {uid!r}")
        principal = session.get(PrincipalRecord, row.principal_id)
        model = session.get(ModelRecord, row.model_id)
        assert principal is not None and model is not None
        return row, principal, model

    def _operator_decision(
        self, uid: str, *, approve: bool, reason: str, now: datetime | None, actor: str | None
    ) -> Application:
        check_text(reason, "the reason")
        now = now or utc_now()
        with self.store.transaction() as session:
            row, principal, model = self._load(session, uid)
            load_principal(session, principal.name, lock=True)
            session.refresh(row, with_for_update=True)
            if row.state != ApplicationState.PENDING.value:
                raise Conflict(f"application {uid} is already {row.state}")
            policy = policy_of(session, model)
            if policy is None:
                raise Conflict(f"{model.name} has no access policy any more")
            self._decide(
                session,
                row,
                principal,
                model,
                approve=approve,
                reason=reason,
                now=now,
                actor=actor,
                policy=policy,
            )
            return _of(row, principal.name, model.name)

    def _decide(
        self,
        session: Session,
        row: ApplicationRecord,
        principal: PrincipalRecord,
        model: ModelRecord,
        *,
        approve: bool,
        reason: str,
        now: datetime,
        actor: str | None,
        policy: Policy,
    ) -> None:
        row.state = (ApplicationState.APPROVED if approve else ApplicationState.REJECTED).value
        row.decided_at = now
        row.decided_by = actor or self.store.settings.actor
        row.reason = reason or None
        session.flush()
        audit(
            session,
            self.store,
            "approved" if approve else "rejected",
            model_subject(model.name),
            {"uid": row.uid, "principal": principal.name, "reason": reason},
            actor=actor,
        )
        if approve:
            create_grant(
                session,
                self.store,
                principal,
                model,
                policy.terms,
                now=now,
                application_id=row.id,
                reason=f"application {row.uid}",
                actor=actor,
            )
