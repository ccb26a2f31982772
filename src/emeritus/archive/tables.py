"""Database tables of the archive: copies, objects, their versions, and each copy's state."""

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from emeritus.store import Base, UTCDateTime


class CopyRecord(Base):
    """A storage root: the primary, where objects are written, or a replica."""

    __tablename__ = "archive_copies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    url: Mapped[str] = mapped_column(String(1000), unique=True)
    location: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ObjectRecord(Base):
    """One OCFL object: all preserved versions of one model."""

    __tablename__ = "archive_objects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model: Mapped[str] = mapped_column(String(100), unique=True)
    object_id: Mapped[str] = mapped_column(String(200), unique=True)
    head: Mapped[int] = mapped_column(Integer)
    size: Mapped[int] = mapped_column(BigInteger)
    files: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    versions: Mapped[list["VersionRecord"]] = relationship(
        order_by="VersionRecord.number", lazy="selectin"
    )


class VersionRecord(Base):
    """A committed version and the sha512 of its inventory: the authority repair trusts."""

    __tablename__ = "archive_versions"
    __table_args__ = (UniqueConstraint("object_id", "number", name="uq_archive_versions_number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    object_id: Mapped[int] = mapped_column(ForeignKey("archive_objects.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    inventory_sha512: Mapped[str] = mapped_column(String(128))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CopyState(Base):
    """What is known about one object on one copy."""

    __tablename__ = "archive_copy_states"
    __table_args__ = (UniqueConstraint("object_id", "copy_id", name="uq_archive_copy_states_pair"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    object_id: Mapped[int] = mapped_column(ForeignKey("archive_objects.id"), index=True)
    copy_id: Mapped[int] = mapped_column(ForeignKey("archive_copies.id"), index=True)
    head: Mapped[int | None] = mapped_column(Integer)
    replicated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_check_ok: Mapped[bool | None] = mapped_column(Boolean)
    last_full_check_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_full_check_ok: Mapped[bool | None] = mapped_column(Boolean)
    last_problem: Mapped[str | None] = mapped_column(Text)

    copy: Mapped[CopyRecord] = relationship(lazy="joined")
