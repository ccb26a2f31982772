"""The decision a gateway asks for on every request, and the usage it reports afterwards.

`authorize` is deny by default: it allows only a well-formed, known, unrevoked, unexpired key,
scoped to the model, whose principal holds a live grant with room in its rate and quota. Each
refusal names its reason and the HTTP status to send; refusals are counted by minute and reason
(`denials.py`), not logged one by one, so a flood of them costs O(1) events a minute. Spec:
docs/design/access.md, The decision procedure and Refusals.
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
from emeritus.access.denials import Denials
from emeritus.access.grants import entitled_terms, entitlement_grant, live_grant
from emeritus.access.keys_format import key_matches, parse_key
from emeritus.access.plain_admit import admit_plain
from emeritus.access.policies import price_of
from emeritus.access.quota import SETTLE, admit, tokens_left
from emeritus.access.tables import (
    FeedbackRecord,
    GrantRecord,
    KeyRecord,
    PrincipalRecord,
    UsageRecord,
)
from emeritus.access.usage import MeteredRequest
from emeritus.errors import Conflict, InvalidInput, NotFound
from emeritus.lifecycle import Availability, ModelInfo, ModelRecord, State
from emeritus.store import DriverSQL, Store, driver_sql, human_day, iso, utc_now


class DenialReason(StrEnum):
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
    DenialReason.MISSING_KEY: 401,
    DenialReason.UNKNOWN_KEY: 401,
    DenialReason.KEY_EXPIRED: 401,
    DenialReason.KEY_REVOKED: 401,
    DenialReason.MODEL_NOT_FOUND: 404,
    DenialReason.MODEL_RETIRED: 410,
    DenialReason.NO_GRANT: 403,
    DenialReason.GRANT_EXPIRED: 403,
    DenialReason.GRANT_REVOKED: 403,
    DenialReason.RATE_LIMITED: 429,
    DenialReason.QUOTA_EXCEEDED: 429,
}


CHAT = "console"  # the key id a chat message's usage is reported under: no key carried it


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
    _key_row: int | None  # None: the console's chat, admitted by the account's session
    _principal_row: int
    _model_row: int
    _period_start: int


@dataclass(frozen=True)
class Decision:
    allowed: bool
    status: int  # 200, or the HTTP status of the refusal
    reason: DenialReason | None = None
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
    def __init__(
        self, reason: DenialReason, message: str, *, key_id: str | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.reason, self.message, self.extra = reason, message, extra
        # What the refusal is counted under: only a key and a model that exist.
        self.key_id = key_id
        self.model: str | None = None


class Gate:
    """The decisions of one process. Its refusal counts (`denials`) are written as minutes
    pass, on the next request or by `denials.flushing()`; `close()` writes the rest."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.denials = Denials(store)

    def close(self) -> None:
        """Write and log every refusal counted so far."""
        self.denials.flush(final=True)

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
        try:
            key_id = _key_id(key)  # no key, or a malformed one: refused without the database
            with self.store.transaction() as session:
                ticket = self._admit(session, key_id, key or "", model, now, reserve_tokens)
        except _Refused as refused:
            return self._refuse(refused, now)
        finally:
            self.denials.tick(now)
        return Decision(True, 200, ticket=ticket)

    def authorize_principal(
        self,
        principal: str,
        model: str,
        *,
        now: datetime | None = None,
        reserve_tokens: int = 0,
    ) -> Decision:
        """Decide one chat message from a signed-in account's principal: the same grant,
        entitlement, quota and rate checks as a key's request, without a key (the session is
        the credential; docs/design/chat.md)."""
        if reserve_tokens < 0:
            raise InvalidInput("reserve_tokens must not be negative")
        now = now or utc_now()
        try:
            with self.store.transaction() as session:
                holder = session.scalar(
                    select(PrincipalRecord).where(PrincipalRecord.name == principal)
                )
                record = (
                    session.scalars(select(ModelRecord).where(ModelRecord.name == model))
                    .unique()
                    .one_or_none()
                )
                if holder is None or record is None:
                    raise _Refused(DenialReason.MODEL_NOT_FOUND, f"model {model!r} does not exist")
                ticket = self._admit_grant(
                    session, holder.id, None, CHAT, record, now, reserve_tokens
                )
        except _Refused as refused:
            return self._refuse(refused, now)
        finally:
            self.denials.tick(now)
        return Decision(True, 200, ticket=ticket)

    def visible_models(
        self, key: str | None, *, now: datetime | None = None
    ) -> Decision | list[str]:
        """What `GET /v1/models` lists: the key's scope (a refusal if the key is not good)."""
        now = now or utc_now()
        try:
            key_id = _key_id(key)
            with self.store.transaction() as session:
                row = self._key(session, key_id, key or "", now)
                return list(json.loads(row.models))
        except _Refused as refused:
            return self._refuse(refused, now)
        finally:
            self.denials.tick(now)

    def record_usage(
        self,
        ticket: Ticket,
        *,
        prompt_tokens: int,
        completion_tokens: int,
        latency_s: float,
        status: int = 200,
        now: datetime | None = None,
    ) -> MeteredRequest:
        """Write the request's one usage row and event, and settle its token reservation.
        A request that failed after admission is still reported (its status, 0 tokens)."""
        if min(prompt_tokens, completion_tokens) < 0 or latency_s < 0:
            raise InvalidInput("token counts and latency must not be negative")
        now = now or utc_now()
        used = prompt_tokens + completion_tokens
        with self.store.transaction() as session, driver_sql(session) as sql:
            # Plain SQL on the transaction's connection: this runs on every request, in series
            # with the answer (docs/design/access.md, The decision procedure).
            sql.run(
                SETTLE,
                {
                    "change": used - ticket.reserved_tokens,
                    "grant": ticket._grant_id,
                    "period": ticket._period_start,
                },
            )
            price = price_of(sql, ticket._model_row)
            usage = MeteredRequest(
                ticket.request_id,
                now,
                ticket.principal,
                ticket.key_id,
                ticket.model,
                status,
                prompt_tokens,
                completion_tokens,
                round(latency_s * 1000),
                price.cost_micros(prompt_tokens, completion_tokens),
            )
            try:
                sql.run(_INSERT_USAGE, _usage_row(sql, ticket, usage))
            except sql.IntegrityError:  # the unique request_id: the ticket was reported before
                raise Conflict(
                    f"usage of request {ticket.request_id} is already recorded"
                ) from None
            audit(
                session,
                self.store,
                "request",
                model_subject(ticket.model),
                usage.to_dict(),
                actor=ticket.principal,
            )
            return usage

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
        try:
            key_id = _key_id(key)
            with self.store.transaction() as session:
                row = self._key(session, key_id, key or "", now)
                return self._rate(
                    session, row.principal_id, request_id, response_id, rating, comment, now
                )
        except _Refused as refused:
            return self._refuse(refused, now)
        finally:
            self.denials.tick(now)

    def rate_as(
        self, principal: str, response_id: str, rating: int, comment: str = ""
    ) -> dict[str, Any]:
        """Record a signed-in account's rating of an answer its principal received (the chat's
        thumbs up and down: 5 and 1)."""
        if not 1 <= rating <= 5:
            raise InvalidInput(f"a rating is 1 to 5, not {rating}")
        if len(comment) > 2000:
            raise InvalidInput("a comment is at most 2000 characters")
        request_id = "req_" + response_id.removeprefix("chatcmpl-")
        with self.store.transaction() as session:
            holder = session.scalar(
                select(PrincipalRecord.id).where(PrincipalRecord.name == principal)
            )
            if holder is None:
                raise NotFound(f"no response {response_id!r} was served to {principal}")
            return self._rate(session, holder, request_id, response_id, rating, comment, utc_now())

    def _rate(
        self,
        session: Session,
        principal_id: int,
        request_id: str,
        response_id: str,
        rating: int,
        comment: str,
        now: datetime,
    ) -> dict[str, Any]:
        usage = session.scalar(select(UsageRecord).where(UsageRecord.request_id == request_id))
        # Another principal's response is as unknown as one never served (no oracle).
        if usage is None or usage.principal_id != principal_id:
            raise NotFound(f"no response {response_id!r} was served to this key's holder")
        if session.scalar(select(FeedbackRecord.id).where(FeedbackRecord.request_id == request_id)):
            raise Conflict(f"response {response_id} already has feedback")
        model = session.get(ModelRecord, usage.model_id)
        assert model is not None
        record = FeedbackRecord(
            request_id=request_id,
            principal_id=principal_id,
            model_id=usage.model_id,
            rating=rating,
            comment=comment.strip(),
            time=now,
        )
        session.add(record)
        session.flush()
        principal = session.get(PrincipalRecord, principal_id)
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

    def _refuse(self, refused: _Refused, now: datetime) -> Decision:
        self.denials.count(
            str(refused.reason),
            refused.reason.status,
            now,
            key_id=refused.key_id,
            model=refused.model,
        )
        return Decision(
            False,
            refused.reason.status,
            refused.reason,
            refused.message,
            retry_after=refused.extra.get("retry_after"),
            successor=refused.extra.get("successor"),
        )

    def _key(self, session: Session, key_id: str, key: str, now: datetime) -> KeyRecord:
        row = session.scalar(select(KeyRecord).where(KeyRecord.key_id == key_id))
        # One message for malformed, unknown and wrong-secret keys: no oracle for key ids.
        if row is None or not key_matches(key, row.secret_hash):
            # Counted under the id only if it is a real key's (someone holds it, or guessed it).
            raise _Refused(
                DenialReason.UNKNOWN_KEY, "invalid API key", key_id=row.key_id if row else None
            )
        if row.revoked_at is not None:
            raise _Refused(
                DenialReason.KEY_REVOKED, f"API key {row.key_id} was revoked", key_id=row.key_id
            )
        if now >= row.expires_at:
            raise _Refused(
                DenialReason.KEY_EXPIRED,
                f"API key {row.key_id} expired on {iso(row.expires_at)}",
                key_id=row.key_id,
            )
        return row

    def _admit(
        self, session: Session, key_id: str, key: str, model: str, now: datetime, reserve: int
    ) -> Ticket:
        with driver_sql(session) as sql:  # the common case, as plain SQL (plain_admit.py)
            admitted = admit_plain(sql, key_id, key, model, now, reserve)
        if admitted is not None:
            return Ticket(**admitted)
        row = self._key(session, key_id, key, now)
        try:
            return self._admit_key(session, row, model, now, reserve)
        except _Refused as refused:
            refused.key_id = row.key_id
            raise

    def _admit_key(
        self, session: Session, row: KeyRecord, model: str, now: datetime, reserve: int
    ) -> Ticket:
        # Outside the key's scope a model does not exist, known or not: a key cannot be used to
        # enumerate models (docs/design/access.md, threat model).
        if model not in json.loads(row.models):
            raise _Refused(DenialReason.MODEL_NOT_FOUND, f"model {model!r} does not exist")
        record = (
            session.scalars(select(ModelRecord).where(ModelRecord.name == model))
            .unique()
            .one_or_none()
        )
        if record is None:
            raise _Refused(DenialReason.MODEL_NOT_FOUND, f"model {model!r} does not exist")
        try:
            return self._admit_grant(
                session, row.principal_id, row.id, row.key_id, record, now, reserve
            )
        except _Refused as refused:
            refused.model = record.name  # a model that exists: a bounded set
            raise

    def _admit_grant(
        self,
        session: Session,
        principal_id: int,
        key_row: int | None,
        key_id: str,
        record: ModelRecord,
        now: datetime,
        reserve: int,
    ) -> Ticket:
        model = record.name
        if record.state == State.RETIRED.value and record.availability == Availability.NONE:
            heir = record.successor.name if record.successor else None
            raise _Refused(
                DenialReason.MODEL_RETIRED,
                f"{model} was retired on {human_day(record.retired_at or now)}"
                + (f"; its successor is {heir}" if heir else ""),
                successor=heir,
            )
        grant = self._grant(session, principal_id, record, now)
        if grant is None:
            raise self._no_grant(session, principal_id, record, now)
        refusal = admit(grant, now, reserve)
        if refusal is not None:
            raise _Refused(
                DenialReason(refusal.reason), refusal.message, retry_after=refusal.retry_after
            )
        principal = session.get(PrincipalRecord, principal_id)
        assert principal is not None
        return Ticket(
            request_id=f"req_{uuid.uuid4().hex}",
            principal=principal.name,
            key_id=key_id,
            model=model,
            admitted_at=now,
            reserved_tokens=reserve,
            tokens_left=tokens_left(grant),
            info=ModelInfo.from_record(record),
            _grant_id=grant.id,
            _key_row=key_row,
            _principal_row=principal.id,
            _model_row=record.id,
            _period_start=grant.period_start,
        )

    def _grant(
        self, session: Session, principal_id: int, record: ModelRecord, now: datetime
    ) -> GrantRecord | None:
        """The live grant that admits the principal: applied for, or made now from its tier's
        entitlement (docs/design/chat.md). An entitlement grant lives only while the principal
        is of its tier and the policy still entitles that tier."""
        grant = live_grant(session, principal_id, record.id, now, lock=True)
        principal = session.get(
            PrincipalRecord,
            principal_id,
            with_for_update={"key_share": True} if grant is None else None,
        )
        assert principal is not None
        if grant is None:
            return entitlement_grant(session, self.store, principal, record, now)
        if grant.tier is None:
            return grant
        still = grant.tier == principal.tier and entitled_terms(session, principal, record)
        return grant if still else None

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
            return _Refused(
                DenialReason.NO_GRANT, f"no grant for {record.name}: apply for access first"
            )
        if latest.revoked_at is not None:
            return _Refused(DenialReason.GRANT_REVOKED, f"the grant for {record.name} was revoked")
        if latest.tier is not None and latest.expires_at > now:
            return _Refused(
                DenialReason.NO_GRANT,
                f"the {latest.tier} tier's access to {record.name} no longer applies to you: "
                "apply for access",
            )
        return _Refused(
            DenialReason.GRANT_EXPIRED,
            f"the grant for {record.name} expired on {human_day(latest.expires_at)}: apply again",
        )


_INSERT_USAGE = (
    f"INSERT INTO {UsageRecord.__tablename__} (request_id, time, principal_id, key_id, model_id, "
    "grant_id, status, prompt_tokens, completion_tokens, latency_ms, cost_micros) VALUES "
    "(:request_id, :time, :principal_id, :key_id, :model_id, :grant_id, :status, "
    ":prompt_tokens, :completion_tokens, :latency_ms, :cost_micros)"
)


def _usage_row(sql: DriverSQL, ticket: Ticket, usage: MeteredRequest) -> dict[str, Any]:
    return {
        "request_id": ticket.request_id,
        "time": sql.time(usage.time),
        "principal_id": ticket._principal_row,
        "key_id": ticket._key_row,
        "model_id": ticket._model_row,
        "grant_id": ticket._grant_id,
        "status": usage.status,
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "latency_ms": usage.latency_ms,
        "cost_micros": usage.cost_micros,
    }


def _key_id(key: str | None) -> str:
    """The public id of a well-formed key; no key or a malformed one is refused here."""
    if not key:
        raise _Refused(DenialReason.MISSING_KEY, "an API key is required (Authorization: Bearer)")
    key_id = parse_key(key)
    if key_id is None:
        raise _Refused(DenialReason.UNKNOWN_KEY, "invalid API key")
    return key_id
