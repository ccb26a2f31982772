"""Database tables of the essay channel: channels and the drafts their models wrote."""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from emeritus.store import Base, UTCDateTime


class ChannelRecord(Base):
    """One model's essay outlet; at most one per model is not closed."""

    __tablename__ = "corner_channels"
    __table_args__ = (Index("ix_corner_channels_model_id", "model_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    title: Mapped[str] = mapped_column(String(200))
    disclaimer: Mapped[str] = mapped_column(Text)
    cadence: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(16))
    prompt: Mapped[str] = mapped_column(Text)
    context: Mapped[str] = mapped_column(Text)  # canonical JSON: news, previous, budget
    params: Mapped[str] = mapped_column(Text)  # canonical JSON: sampling parameters
    motivation: Mapped[str | None] = mapped_column(Text, nullable=True)  # canonical JSON
    site: Mapped[str | None] = mapped_column(Text, nullable=True)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class DraftRecord(Base):
    """What a model wrote for one slot. The title and text are never changed once stored;
    review fills the review columns once."""

    __tablename__ = "corner_drafts"
    __table_args__ = (
        UniqueConstraint("channel_id", "slot", name="uq_corner_drafts_channel_id_slot"),
        Index("ix_corner_drafts_state", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("corner_channels.id"))
    slot: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    title: Mapped[str | None] = mapped_column(String(200), nullable=True)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    digest: Mapped[str | None] = mapped_column(String(80), nullable=True)
    prompt: Mapped[str | None] = mapped_column(Text, nullable=True)
    context: Mapped[str | None] = mapped_column(Text, nullable=True)  # canonical JSON
    params: Mapped[str | None] = mapped_column(Text, nullable=True)  # canonical JSON
    backend: Mapped[str | None] = mapped_column(Text, nullable=True)  # canonical JSON
    attempts: Mapped[str] = mapped_column(Text, default="[]")  # canonical JSON list
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reviewer: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    veto_category: Mapped[str | None] = mapped_column(String(40), nullable=True)
    veto_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The drafting writer's token while the draft is `drafting`: its final write must match it.
    claim: Mapped[str | None] = mapped_column(String(64), nullable=True)
