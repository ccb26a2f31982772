"""Database tables of the registry: models and their notices."""

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from emeritus.store import Base, UTCDateTime


class ModelRecord(Base):
    __tablename__ = "models"
    __table_args__ = (
        CheckConstraint("state IN ('active', 'deprecated', 'retired')", name="state"),
        CheckConstraint(
            "availability IS NULL OR availability IN ('none', 'restricted', 'public')",
            name="availability",
        ),
        CheckConstraint(
            "availability_after IS NULL OR availability_after IN ('none', 'restricted', 'public')",
            name="availability_after",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    family: Mapped[str] = mapped_column(String(100), default="")
    version: Mapped[str] = mapped_column(String(50), default="")
    description: Mapped[str] = mapped_column(Text, default="")
    release_date: Mapped[date | None] = mapped_column(Date)
    state: Mapped[str] = mapped_column(String(16))
    successor_id: Mapped[int | None] = mapped_column(ForeignKey("models.id"))
    announced_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retire_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    availability_after: Mapped[str | None] = mapped_column(String(16))
    availability: Mapped[str | None] = mapped_column(String(16))
    # A tentative date may still move; notices say which (docs/design/lifecycle.md).
    retire_firm: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    successor: Mapped["ModelRecord | None"] = relationship(
        remote_side=[id], lazy="joined", join_depth=1
    )


class NoticeRecord(Base):
    """A notice; also the outbox's root: `fanned_out_at` is set when its deliveries are written
    (docs/design/notices.md). A reminder points at the schedule (the deprecation or postponement
    that set the date) and names its threshold, unique per schedule."""

    __tablename__ = "notices"
    __table_args__ = (UniqueConstraint("schedule_id", "threshold_days"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime)
    schedule_id: Mapped[int | None] = mapped_column(ForeignKey("notices.id"))
    threshold_days: Mapped[int | None] = mapped_column(Integer)
    fanned_out_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    model: Mapped[ModelRecord] = relationship(lazy="joined")


class FactsRecord(Base):
    """What the operator supplies about a model's deployment and use (dates, usage, reception),
    used by interviews and reports."""

    __tablename__ = "model_facts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), unique=True)
    facts: Mapped[str] = mapped_column(Text)  # canonical JSON object
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
