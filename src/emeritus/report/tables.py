"""Database tables of the report package: the team's notes and its decisions on preferences."""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from emeritus.store import Base, UTCDateTime


class NoteRecord(Base):
    """A person's interpretation of a model's interview; never changed."""

    __tablename__ = "report_notes"
    __table_args__ = (Index("ix_report_notes_model_id", "model_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    author: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DecisionRecord(Base):
    """A decision on one expressed preference; never changed, a later one supersedes it."""

    __tablename__ = "report_decisions"
    __table_args__ = (Index("ix_report_decisions_model_id_preference", "model_id", "preference"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    preference: Mapped[str] = mapped_column(String(100))
    decision: Mapped[str] = mapped_column(String(16))
    rationale: Mapped[str] = mapped_column(Text)
    cost: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
