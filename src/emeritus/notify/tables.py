"""Database tables of notice delivery: subscribers, the outbox's deliveries and their attempts.
Spec: docs/design/notices.md."""

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from emeritus.store import Base, UTCDateTime


class SubscriberRecord(Base):
    """An endpoint an operator registered: a webhook (with its signing secret) or an address, for
    every model or one, and for the operator or on behalf of one principal."""

    __tablename__ = "notice_subscribers"
    __table_args__ = (CheckConstraint("channel IN ('webhook', 'email')", name="channel"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(40), unique=True)
    channel: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(1000))
    secret: Mapped[str | None] = mapped_column(String(80))  # webhooks only: signs each body
    model_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"))
    principal_id: Mapped[int | None] = mapped_column(ForeignKey("access_principals.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DeliveryRecord(Base):
    """One notice to one recipient over one channel: the outbox row, with the exact body sent."""

    __tablename__ = "notice_deliveries"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'sent', 'dead', 'unreachable')", name="state"),
        UniqueConstraint("notice_id", "recipient"),
        Index("ix_notice_deliveries_state_next_attempt_at", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(40), unique=True)
    notice_id: Mapped[int] = mapped_column(ForeignKey("notices.id"))
    recipient: Mapped[str] = mapped_column(String(300))  # e.g. principal:7:email:a@b.org
    channel: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(1000))
    subscriber_id: Mapped[int | None] = mapped_column(ForeignKey("notice_subscribers.id"))
    principal_id: Mapped[int | None] = mapped_column(ForeignKey("access_principals.id"))
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    body: Mapped[str] = mapped_column(Text)  # canonical JSON, frozen at fan-out
    state: Mapped[str] = mapped_column(String(16))
    tries: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AttemptRecord(Base):
    """One try at a delivery: claimed (`started`), then `ok`, `failed` or `refused`."""

    __tablename__ = "notice_attempts"
    __table_args__ = (
        CheckConstraint("outcome IN ('started', 'ok', 'failed', 'refused')", name="outcome"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("notice_deliveries.id"), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(16))
    status: Mapped[int | None] = mapped_column(Integer)  # HTTP status or SMTP reply code
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
