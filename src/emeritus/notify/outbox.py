"""The outbox: who a notice is for, and one delivery row per recipient and channel, written in
the transaction that writes the notice. Spec: docs/design/notices.md, "The outbox"."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from emeritus.access import GrantRecord, PrincipalRecord, UsageRecord
from emeritus.lifecycle import Notice, NoticeRecord, migration_url, successor_chain
from emeritus.notify.config import DeliveryConfig
from emeritus.notify.tables import DeliveryRecord, SubscriberRecord
from emeritus.notify.targets import is_email
from emeritus.store import Settings, as_utc, canonical_json, iso, utc_now


def fan_out_pending(session: Session, *, settings: Settings, config: DeliveryConfig) -> int:
    """Fan out every notice written without the hook; returns how many."""
    pending = session.scalars(
        select(NoticeRecord)
        .where(NoticeRecord.fanned_out_at.is_(None))
        .order_by(NoticeRecord.published_at, NoticeRecord.id)
        .with_for_update(of=NoticeRecord, skip_locked=True)
    ).unique()
    count = 0
    for notice in list(pending):
        fan_out(session, notice, settings=settings, config=config)
        count += 1
    return count


def fan_out(
    session: Session, notice: NoticeRecord, *, settings: Settings, config: DeliveryConfig
) -> list[DeliveryRecord]:
    """Write the notice's deliveries (idempotent: recipients already written are skipped)."""
    at = notice.published_at
    existing = set(
        session.scalars(
            select(DeliveryRecord.recipient).where(DeliveryRecord.notice_id == notice.id)
        )
    )
    base = _body(notice, settings)
    written = []
    for recipient, channel, target, subscriber, principal, figures in _recipients(
        session, notice, config
    ):
        if recipient in existing:
            continue
        key = hashlib.sha256(f"{notice.uid}\n{recipient}".encode()).hexdigest()
        body = {
            **base,
            "idempotency_key": key,
            "recipient": {
                "kind": "principal" if principal else "operator",
                "principal": principal.name if principal else None,
                **({"usage": figures} if principal else {}),
            },
        }
        row = DeliveryRecord(
            uid=str(uuid.uuid4()),
            notice_id=notice.id,
            recipient=recipient,
            channel=channel,
            target=target,
            subscriber_id=subscriber.id if subscriber else None,
            principal_id=principal.id if principal else None,
            idempotency_key=key,
            body=canonical_json(body),
            state="unreachable" if channel == "none" else "pending",
            tries=0,
            next_attempt_at=at,
            created_at=utc_now(),
        )
        session.add(row)
        written.append(row)
    notice.fanned_out_at = utc_now()
    session.flush()
    return written


Recipient = tuple[
    str, str, str, SubscriberRecord | None, PrincipalRecord | None, dict[str, Any] | None
]


def _recipients(session: Session, notice: NoticeRecord, config: DeliveryConfig) -> list[Recipient]:
    at, model_id = notice.published_at, notice.model_id
    subscribers = session.scalars(
        select(SubscriberRecord)
        .where(
            SubscriberRecord.created_at <= at,
            or_(SubscriberRecord.removed_at.is_(None), SubscriberRecord.removed_at > at),
            or_(SubscriberRecord.model_id.is_(None), SubscriberRecord.model_id == model_id),
        )
        .order_by(SubscriberRecord.id)
    ).all()
    found: list[Recipient] = [
        (f"subscriber:{s.uid}", s.channel, s.target, s, None, None)
        for s in subscribers
        if s.principal_id is None
    ]
    for principal in affected_principals(session, model_id, at, config.recent_days):
        figures = usage_figures(session, principal.id, model_id, at)
        own = [s for s in subscribers if s.principal_id == principal.id]
        reached: list[tuple[str, str, str, SubscriberRecord | None]] = [
            (f"principal:{principal.id}:subscriber:{s.uid}", s.channel, s.target, s) for s in own
        ]
        if is_email(principal.contact):
            reached.insert(
                0, (f"principal:{principal.id}:contact", "email", principal.contact, None)
            )
        if not reached:
            reached = [(f"principal:{principal.id}:none", "none", "", None)]
        found += [
            (key, channel, target, sub, principal, figures) for key, channel, target, sub in reached
        ]
    return found


def affected_principals(
    session: Session, model_id: int, at: datetime, recent_days: int
) -> list[PrincipalRecord]:
    """Principals holding a grant on the model live at `at`, or whose keys called it within
    `recent_days` before `at`."""
    granted = select(GrantRecord.principal_id).where(
        GrantRecord.model_id == model_id,
        GrantRecord.created_at <= at,
        GrantRecord.expires_at > at,
        or_(GrantRecord.revoked_at.is_(None), GrantRecord.revoked_at > at),
    )
    called = select(UsageRecord.principal_id).where(
        UsageRecord.model_id == model_id,
        UsageRecord.time <= at,
        UsageRecord.time > at - timedelta(days=recent_days),
    )
    return list(
        session.scalars(
            select(PrincipalRecord)
            .where(or_(PrincipalRecord.id.in_(granted), PrincipalRecord.id.in_(called)))
            .order_by(PrincipalRecord.name)
        )
    )


def usage_figures(
    session: Session, principal_id: int, model_id: int, at: datetime
) -> dict[str, Any]:
    """The principal's own figures for the model, as of `at`."""
    rows = select(UsageRecord).where(
        UsageRecord.principal_id == principal_id,
        UsageRecord.model_id == model_id,
        UsageRecord.time <= at,
    )
    sub = rows.subquery()

    def count(days: int) -> int:
        query = select(func.count()).select_from(sub).where(sub.c.time > at - timedelta(days=days))
        return int(session.scalar(query) or 0)

    tokens = session.scalar(
        select(func.coalesce(func.sum(sub.c.prompt_tokens + sub.c.completion_tokens), 0)).where(
            sub.c.time > at - timedelta(days=30)
        )
    )
    last = session.scalar(select(func.max(sub.c.time)))
    holds = session.scalar(
        select(func.count())
        .select_from(GrantRecord)
        .where(
            GrantRecord.principal_id == principal_id,
            GrantRecord.model_id == model_id,
            GrantRecord.created_at <= at,
            GrantRecord.expires_at > at,
            or_(GrantRecord.revoked_at.is_(None), GrantRecord.revoked_at > at),
        )
    )
    return {
        "requests_7d": count(7),
        "requests_30d": count(30),
        "tokens_30d": int(tokens or 0),
        "last_call": iso(as_utc(last)) if last else None,
        "holds_grant": bool(holds),
    }


def _body(notice: NoticeRecord, settings: Settings) -> dict[str, Any]:
    model = notice.model
    shown = Notice.from_record(notice)
    return {
        "type": f"notice.{notice.kind}",
        "notice": {
            "uid": notice.uid,
            "model": model.name,
            "kind": notice.kind,
            "title": notice.title,
            "body": notice.body,
            "published_at": iso(notice.published_at),
            "link": f"{settings.public_url}/notices/{shown.filename}",
        },
        "model": {
            "name": model.name,
            "state": model.state,
            "retire_at": iso(model.retire_at) if model.retire_at else None,
            "retire_firm": bool(model.retire_firm) if model.retire_at else None,
            "successor": model.successor.name if model.successor else None,
            "successor_chain": successor_chain(model)[1:],
            "availability_after": model.availability_after,
            "migration_guide": migration_url(settings.public_url, model.name),
        },
    }
