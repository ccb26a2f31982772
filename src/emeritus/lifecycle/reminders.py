"""When reminders are due before a retirement (docs/design/notices.md, "Reminders")."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from emeritus.lifecycle.tables import ModelRecord, NoticeRecord

SCHEDULES = ("deprecation", "postponement")  # the notice kinds that set a retirement date


def schedule_of(session: Session, record: ModelRecord) -> NoticeRecord | None:
    """The latest notice that set the model's retirement date (None for an active model)."""
    return session.scalars(
        select(NoticeRecord)
        .where(NoticeRecord.model_id == record.id, NoticeRecord.kind.in_(SCHEDULES))
        .order_by(NoticeRecord.published_at.desc(), NoticeRecord.id.desc())
        .limit(1)
    ).first()


def due_threshold(
    session: Session,
    record: ModelRecord,
    schedule: NoticeRecord | None,
    now: datetime,
    thresholds: tuple[int, ...],
) -> int | None:
    """The most urgent threshold that has come and is not yet covered by a reminder of the same
    schedule at that threshold or a more urgent one; None when nothing is due."""
    if record.retire_at is None or schedule is None:
        return None
    sent = session.scalars(
        select(NoticeRecord.threshold_days).where(NoticeRecord.schedule_id == schedule.id)
    ).all()
    covered = min((d for d in sent if d is not None), default=None)
    # A threshold already passed when the date was set is never sent: that notice told.
    lead = record.retire_at - schedule.published_at
    come = [
        d
        for d in thresholds
        if record.retire_at - timedelta(days=d) <= now and timedelta(days=d) < lead
    ]
    if not come:
        return None
    days = min(come)
    return None if covered is not None and covered <= days else days
