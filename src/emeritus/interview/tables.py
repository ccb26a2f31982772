"""Database tables of the interview package: human annotations of analysis records."""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from emeritus.store import Base, UTCDateTime


class AnnotationRecord(Base):
    """One person's override of one analysis record; never changed, the newest one applies."""

    __tablename__ = "annotations"
    __table_args__ = (Index("ix_annotations_model_id_record_id", "model_id", "record_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    record_id: Mapped[str] = mapped_column(String(64))
    changes: Mapped[str] = mapped_column(Text)  # canonical JSON of the overridden fields
    author: Mapped[str] = mapped_column(String(200))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
