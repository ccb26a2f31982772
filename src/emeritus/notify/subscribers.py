"""Subscribers and the outbox as operators see them: subscribe, unsubscribe, list deliveries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from emeritus.access import PrincipalRecord
from emeritus.errors import InvalidInput, NotFound
from emeritus.lifecycle import ModelRecord, NoticeRecord, require_model
from emeritus.notify.config import DeliveryConfig
from emeritus.notify.signing import new_secret
from emeritus.notify.tables import AttemptRecord, DeliveryRecord, SubscriberRecord
from emeritus.notify.targets import check_email, check_webhook
from emeritus.store import Store, append_event, iso, utc_now

STATES = ("pending", "sent", "dead", "unreachable")


@dataclass(frozen=True)
class Subscriber:
    uid: str
    channel: str
    target: str
    model: str | None
    principal: str | None
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "channel": self.channel,
            "target": self.target,
            "model": self.model,
            "principal": self.principal,
            "created_at": iso(self.created_at),
        }


@dataclass(frozen=True)
class Delivery:
    uid: str
    notice: str
    model: str
    kind: str
    recipient: str
    principal: str | None
    channel: str
    target: str
    state: str
    tries: int
    attempts: int
    next_attempt_at: datetime
    sent_at: datetime | None
    last_error: str | None
    idempotency_key: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "uid": self.uid,
            "notice": self.notice,
            "model": self.model,
            "kind": self.kind,
            "recipient": self.recipient,
            "principal": self.principal,
            "channel": self.channel,
            "target": self.target,
            "state": self.state,
            "tries": self.tries,
            "attempts": self.attempts,
            "next_attempt_at": iso(self.next_attempt_at),
            "sent_at": iso(self.sent_at) if self.sent_at else None,
            "last_error": self.last_error,
            "idempotency_key": self.idempotency_key,
        }


class Subscribers:
    def __init__(self, store: Store, config: DeliveryConfig | None = None) -> None:
        self.store = store
        self.config = config or DeliveryConfig.from_env()

    def subscribe(
        self,
        *,
        webhook: str | None = None,
        email: str | None = None,
        model: str | None = None,
        principal: str | None = None,
        now: datetime | None = None,
    ) -> tuple[Subscriber, str | None]:
        """Register an endpoint; returns it and, for a webhook, its signing secret (shown once)."""
        if (webhook is None) == (email is None):
            raise InvalidInput("subscribe needs exactly one of --webhook URL or --email ADDRESS")
        if webhook is not None:
            channel, target = "webhook", check_webhook(webhook, self.config.hosts)
        else:
            assert email is not None
            channel, target = "email", check_email(email)
        secret = new_secret() if channel == "webhook" else None
        now = now or utc_now()
        with self.store.transaction() as session:
            model_row = require_model(session, model) if model else None
            who = None
            if principal is not None:
                who = session.scalar(
                    select(PrincipalRecord).where(PrincipalRecord.name == principal)
                )
                if who is None:
                    raise NotFound(f"unknown principal {principal!r}")
            row = SubscriberRecord(
                uid=str(uuid.uuid4()),
                channel=channel,
                target=target,
                secret=secret,
                model_id=model_row.id if model_row else None,
                principal_id=who.id if who else None,
                created_at=now,
            )
            session.add(row)
            session.flush()
            append_event(
                session,
                kind="notice.subscribed",
                subject=f"subscriber:{row.uid}",
                actor=self.store.settings.actor,
                payload={
                    "uid": row.uid,
                    "channel": channel,
                    "model": model,
                    "principal": principal,
                },
            )
            return Subscriber(row.uid, channel, target, model, principal, now), secret

    def unsubscribe(self, uid: str, *, now: datetime | None = None) -> Subscriber:
        now = now or utc_now()
        with self.store.transaction() as session:
            row = session.scalar(
                select(SubscriberRecord)
                .where(SubscriberRecord.uid == uid, SubscriberRecord.removed_at.is_(None))
                .with_for_update()
            )
            if row is None:
                raise NotFound(f"no subscriber {uid!r} (see `emeritus notices subscribers`)")
            row.removed_at = now
            append_event(
                session,
                kind="notice.unsubscribed",
                subject=f"subscriber:{uid}",
                actor=self.store.settings.actor,
                payload={"uid": uid},
            )
            return self._shown(session, row)

    def all(self) -> list[Subscriber]:
        with self.store.transaction() as session:
            rows = session.scalars(
                select(SubscriberRecord)
                .where(SubscriberRecord.removed_at.is_(None))
                .order_by(SubscriberRecord.created_at, SubscriberRecord.id)
            ).all()
            return [self._shown(session, r) for r in rows]

    def deliveries(
        self, *, state: str | None = None, model: str | None = None, limit: int = 1000
    ) -> list[Delivery]:
        if state is not None and state not in STATES:
            raise InvalidInput(f"unknown delivery state {state!r}: one of {', '.join(STATES)}")
        with self.store.transaction() as session:
            attempts = (
                select(func.count())
                .where(AttemptRecord.delivery_id == DeliveryRecord.id)
                .scalar_subquery()
            )
            query = (
                select(
                    DeliveryRecord, NoticeRecord, ModelRecord.name, PrincipalRecord.name, attempts
                )
                .join(NoticeRecord, NoticeRecord.id == DeliveryRecord.notice_id)
                .join(ModelRecord, ModelRecord.id == NoticeRecord.model_id)
                .outerjoin(PrincipalRecord, PrincipalRecord.id == DeliveryRecord.principal_id)
                .order_by(DeliveryRecord.created_at, DeliveryRecord.id)
                .limit(limit)
            )
            if state is not None:
                query = query.where(DeliveryRecord.state == state)
            if model is not None:
                query = query.where(NoticeRecord.model_id == require_model(session, model).id)
            return [
                Delivery(
                    d.uid,
                    n.uid,
                    name,
                    n.kind,
                    d.recipient,
                    who,
                    d.channel,
                    d.target,
                    d.state,
                    d.tries,
                    int(count),
                    d.next_attempt_at,
                    d.sent_at,
                    d.last_error,
                    d.idempotency_key,
                )
                for d, n, name, who, count in session.execute(query).unique()
            ]

    @staticmethod
    def _shown(session: Any, row: SubscriberRecord) -> Subscriber:
        model = session.scalar(select(ModelRecord.name).where(ModelRecord.id == row.model_id))
        who = session.scalar(
            select(PrincipalRecord.name).where(PrincipalRecord.id == row.principal_id)
        )
        return Subscriber(row.uid, row.channel, row.target, model, who, row.created_at)
