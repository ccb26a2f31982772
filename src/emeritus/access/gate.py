"""The decision a gateway asks for on every request, and the usage it reports afterwards.

`authorize` is deny by default: it allows only a well-formed, known, unrevoked, unexpired key,
scoped to the model, whose principal holds a live grant with room in its rate and quota. Each
refusal names its reason and the HTTP status to send; each is recorded as an event. Spec:
docs/design/access.md, The decision procedure.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy.exc
from sqlalchemy import select
from sqlalchemy.orm import Session

from emeritus.access.audit import audit, model_subject
from emeritus.access.grants import live_grant
from emeritus.access.keys_format import KEY_PREFIX, key_matches, parse_key
from emeritus.access.policies import Price, policy_of
from emeritus.access.quota import admit, settle, tokens_left
from emeritus.access.tables import (
    FeedbackRecord,
    GrantRecord,
    KeyRecord,
    PrincipalRecord,
    UsageRecord,
)
from emeritus.access.usage import Usage
from emeritus.errors import Conflict, InvalidInput, NotFound
from emeritus.lifecycle import Availability, ModelInfo, ModelRecord, State, check_name
from emeritus.store import Store, iso, utc_now


class Reason(StrEnum):
    """Why a request is refused, with the HTTP status the gateway sends."""

    MISSING_KEY = "missing_key"
    UNKNOWN_KEY = "unknown_key"
    KEY_EXPIRED = "key_expired"
    KEY_REVOKED = "key_revoked"
    MODEL_NOT_FOUND = "model_not_found"
    MODEL_RETIRED = "model_retired"
    NO_GRANT = "no_grant"
    GRANT_EXPIRED = "grant_expired"
    GRANT_REVOKED = "grant_revoked"
    RATE_LIMITED = "rate_limited"
    QUOTA_EXCEEDED = "quota_exceeded"

    @property
    def status(self) -> int:
        return _STATUS[self]


_STATUS = {
    Reason.MISSING_KEY: 401,
    Reason.UNKNOWN_KEY: 401,
    Reason.KEY_EXPIRED: 401,
    Reason.KEY_REVOKED: 401,
    Reason.MODEL_NOT_FOUND: 404,
    Reason.MODEL_RETIRED: 410,
    Reason.NO_GRANT: 403,
    Reason.GRANT_EXPIRED: 403,
    Reason.GRANT_REVOKED: 403,
    Reason.RATE_LIMITED: 429,
    Reason.QUOTA_EXCEEDED: 429,
}


@dataclass(frozen=True)
class Ticket:
    """An admitted request; the gateway hands it back to `record_usage` exactly once."""

    request_id: str
    principal: str
    key_id: str
    model: str
    admitted_at: datetime
    reserved_tokens: int
    tokens_left: int  # after the reservation: cap max_tokens with it
    info: ModelInfo  # the model's lifecycle as admitted: its headers need no second query
    _grant_id: int
    _key_row: int
    _principal_row: int
    _model_row: int
    _period_start: int


@dataclass(frozen=True)
class Decision:
    allowed: bool
    status: int  # 200, or the HTTP status of the refusal
    reason: Reason | None = None
    message: str = ""
    retry_after: int | None = None  # seconds, for 429 (send as Retry-After)
    successor: str | None = None  # for 410
    ticket: Ticket | None = None

    def error_body(self) -> dict[str, Any]:
        """The OpenAI-style error object the gateway returns with a refusal."""
        assert self.reason is not None
        body: dict[str, Any] = {
            "message": self.message,
            "type": "access_denied",
            "code": str(self.reason),
        }
        if self.successor is not None:
            body["successor"] = self.successor
        return {"error": body}


class _Refused(Exception):
    def __init__(self, reason: Reason, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.reason, self.message, self.extra = reason, message, extra


class Gate:
    def __init__(self, store: Store) -> None:
        self.store = store

    def authorize(
        self,
        key: str | None,
        model: str,
        *,
        now: datetime | None = None,
        reserve_tokens: int = 0,
    ) -> Decision:
        """Decide one request for `model` with `key` (the bearer token, None if absent).

        `reserve_tokens` (prompt tokens + max_tokens) is taken from the quota now and settled by
        `record_usage`; reserving the most a request can use keeps the quota exact."""
        if reserve_tokens < 0:
            raise InvalidInput("reserve_tokens must not be negative")
        now = now or utc_now()
        with self.store.transaction() as session:
            try:
                ticket = self._admit(session, key, model, now, reserve_tokens)
            except _Refused as refused:
                self._record_denial(session, key, model, refused, now)
                return Decision(
                    False,
                    refused.reason.status,
                    refused.reason,
                    refused.message,
                    retry_after=refused.extra.get("retry_after"),
                    successor=refused.extra.get("successor"),
                )
        return Decision(True, 200, ticket=ticket)

    def visible_models(
        self, key: str | None, *, now: datetime | None = None
    ) -> Decision | list[str]:
        """What `GET /v1/models` lists: the key's scope (a refusal if the key is not good)."""
        now = now or utc_now()
        with self.store.transaction() as session:
            try:
                row = self._key(session, key, now)
            except _Refused as refused:
                self._record_denial(session, key, "", refused, now)
                return Decision(False, refused.reason.status, refused.reason, refused.message)
            return list(json.loads(row.models))

    def record_usage(
        self,
        ticket: Ticket,
        *,
        prompt_tokens: int,
        completion_tokens: int,
        latency_s: float,
        status: int = 200,
        now: datetime | None = None,
    ) -> Usage:
        """Write the request's one usage row and event, and settle its token reservation.
        A request that failed after admission is still reported (its status, 0 tokens)."""
        if min(prompt_tokens, completion_tokens) < 0 or latency_s < 0:
            raise InvalidInput("token counts and latency must not be negative")
        now = now or utc_now()
        used = prompt_tokens + completion_tokens
        try:
            with self.store.transaction() as session:
                if session.scalar(
                    select(UsageRecord.id).where(UsageRecord.request_id == ticket.request_id)
                ):
                    raise Conflict(f"usage of request {ticket.request_id} is already recorded")
                grant = session.scalar(
                    select(GrantRecord).where(GrantRecord.id == ticket._grant_id).with_for_update()
                )
                assert grant is not None
                settle(
                    grant,
                    period_start=ticket._period_start,
                    reserved=ticket.reserved_tokens,
                    used=used,
                )
                model = session.get(ModelRecord, ticket._model_row)
                assert model is not None
                policy = policy_of(session, model)
                price = policy.price if policy is not None else Price()
                row = UsageRecord(
                    request_id=ticket.request_id,
                    time=now,
                    principal_id=ticket._principal_row,
                    key_id=ticket._key_row,
                    model_id=ticket._model_row,
                    grant_id=ticket._grant_id,
                    status=status,
                    prompt_tokens=prompt_tokens,
                    completion_tokens=completion_tokens,
                    latency_ms=round(latency_s * 1000),
                    cost_micros=price.cost_micros(prompt_tokens, completion_tokens),
                )
                session.add(row)
                session.flush()
                usage = Usage(
                    ticket.request_id,
                    now,
                    ticket.principal,
                    ticket.key_id,
                    ticket.model,
                    status,
                    prompt_tokens,
                    completion_tokens,
                    row.latency_ms,
                    row.cost_micros,
                )
                audit(
                    session,
                    self.store,
                    "request",
                    model_subject(ticket.model),
                    usage.to_dict(),
                    actor=ticket.principal,
                )
                return usage
        except sqlalchemy.exc.IntegrityError:  # the same ticket reported twice at once
            raise Conflict(f"usage of request {ticket.request_id} is already recorded") from None

    def feedback(
        self,
        key: str | None,
        response_id: str,
        rating: int,
        comment: str = "",
        *,
        now: datetime | None = None,
    ) -> Decision | dict[str, Any]:
        """Record a rating (1-5) of a response the key's principal received; one per response."""
        if not 1 <= rating <= 5:
            raise InvalidInput(f"a rating is 1 to 5, not {rating}")
        if len(comment) > 2000:
            raise InvalidInput("a comment is at most 2000 characters")
        now = now or utc_now()
        request_id = "req_" + response_id.removeprefix("chatcmpl-")
        with self.store.transaction() as session:
            try:
                row = self._key(session, key, now)
            except _Refused as refused:
                self._record_denial(session, key, "", refused, now)
                return Decision(False, refused.reason.status, refused.reason, refused.message)
            usage = session.scalar(select(UsageRecord).where(UsageRecord.request_id == request_id))
            # Another principal's response is as unknown as one never served (no oracle).
            if usage is None or usage.principal_id != row.principal_id:
                raise NotFound(f"no response {response_id!r} was served to this key's holder")
            if session.scalar(
                select(FeedbackRecord.id).where(FeedbackRecord.request_id == request_id)
            ):
                raise Conflict(f"response {response_id} already has feedback")
            model = session.get(ModelRecord, usage.model_id)
            assert model is not None
            record = FeedbackRecord(
                request_id=request_id,
                principal_id=row.principal_id,
                model_id=usage.model_id,
                rating=rating,
                comment=comment.strip(),
                time=now,
            )
            session.add(record)
            session.flush()
            principal = session.get(PrincipalRecord, row.principal_id)
            assert principal is not None
            payload = {"response_id": response_id, "rating": rating, "commented": bool(comment)}
            audit(
                session,
                self.store,
                "feedback",
                model_subject(model.name),
                payload,
                actor=principal.name,
            )
            return {"id": response_id, "object": "feedback", "rating": rating, "model": model.name}

    # -- the decision procedure ------------------------------------------------------------------

    def _key(self, session: Session, key: str | None, now: datetime) -> KeyRecord:
        if not key:
            raise _Refused(Reason.MISSING_KEY, "an API key is required (Authorization: Bearer)")
        key_id = parse_key(key)
        row = (
            None
            if key_id is None
            else session.scalar(select(KeyRecord).where(KeyRecord.key_id == key_id))
        )
        # One message for malformed, unknown and wrong-secret keys: no oracle for key ids.
        if row is None or not key_matches(key, row.secret_hash):
            raise _Refused(Reason.UNKNOWN_KEY, "invalid API key")
        if row.revoked_at is not None:
            raise _Refused(Reason.KEY_REVOKED, f"API key {row.key_id} was revoked")
        if now >= row.expires_at:
            raise _Refused(
                Reason.KEY_EXPIRED, f"API key {row.key_id} expired on {iso(row.expires_at)}"
            )
        return row

    def _admit(
        self, session: Session, key: str | None, model: str, now: datetime, reserve: int
    ) -> Ticket:
        row = self._key(session, key, now)
        # Outside the key's scope a model does not exist, known or not: a key cannot be used to
        # enumerate models (docs/design/access.md, threat model).
        if model not in json.loads(row.models):
            raise _Refused(Reason.MODEL_NOT_FOUND, f"model {model!r} does not exist")
        record = (
            session.scalars(select(ModelRecord).where(ModelRecord.name == model))
            .unique()
            .one_or_none()
        )
        if record is None:
            raise _Refused(Reason.MODEL_NOT_FOUND, f"model {model!r} does not exist")
        if record.state == State.RETIRED.value and record.availability == Availability.NONE:
            heir = record.successor.name if record.successor else None
            raise _Refused(
                Reason.MODEL_RETIRED,
                f"{model} was retired on {iso(record.retired_at or now)[:10]}"
                + (f"; its successor is {heir}" if heir else ""),
                successor=heir,
            )
        grant = live_grant(session, row.principal_id, record.id, now, lock=True)
        if grant is None:
            raise self._no_grant(session, row.principal_id, record, now)
        refusal = admit(grant, now, reserve)
        if refusal is not None:
            raise _Refused(Reason(refusal.reason), refusal.message, retry_after=refusal.retry_after)
        principal = session.get(PrincipalRecord, row.principal_id)
        assert principal is not None
        return Ticket(
            request_id=f"req_{uuid.uuid4().hex}",
            principal=principal.name,
            key_id=row.key_id,
            model=model,
            admitted_at=now,
            reserved_tokens=reserve,
            tokens_left=tokens_left(grant),
            info=ModelInfo.from_record(record),
            _grant_id=grant.id,
            _key_row=row.id,
            _principal_row=principal.id,
            _model_row=record.id,
            _period_start=grant.period_start,
        )

    def _no_grant(
        self, session: Session, principal_id: int, record: ModelRecord, now: datetime
    ) -> _Refused:
        latest = session.scalar(
            select(GrantRecord)
            .where(GrantRecord.principal_id == principal_id, GrantRecord.model_id == record.id)
            .order_by(GrantRecord.id.desc())
            .limit(1)
        )
        if latest is None:
            return _Refused(Reason.NO_GRANT, f"no grant for {record.name}: apply for access first")
        if latest.revoked_at is not None:
            return _Refused(Reason.GRANT_REVOKED, f"the grant for {record.name} was revoked")
        return _Refused(
            Reason.GRANT_EXPIRED,
            f"the grant for {record.name} expired on {iso(latest.expires_at)[:10]}: apply again",
        )

    def _record_denial(
        self, session: Session, key: str | None, model: str, refused: _Refused, now: datetime
    ) -> None:
        # The key's public id only, and only when the key is well formed: never the secret.
        key_id = parse_key(key) if key else None
        if KEY_PREFIX in model:  # a key pasted where the model goes stays out of the log
            model = "(redacted)"
        try:
            subject = model_subject(check_name(model)) if model else "access:gateway"
        except InvalidInput:
            subject = "access:gateway"
        payload = {
            "reason": str(refused.reason),
            "status": refused.reason.status,
            "key_id": key_id,
            "model": model[:100],
            "time": iso(now),
        }
        if "retry_after" in refused.extra:
            payload["retry_after"] = refused.extra["retry_after"]
        audit(session, self.store, "denied", subject, payload, actor="gateway")
