"""The declarative base every package's tables share, and the store's verified checkpoint.

The ORM loads with this module, on first use (`emeritus.store.Base`): a command that reads with
Core statements (`Store.connection`) never imports it, nor configures every package's mappers.
"""

from sqlalchemy import Integer, MetaData, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base for every emeritus table; constraint names are stable for migrations."""

    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class VerifiedCheckpoint(Base):
    """One row: the newest checkpoint this database verified (a cache, trusted only when its
    signature verifies and the chain holds its digest at its seq)."""

    __tablename__ = "event_chain_verified"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(71))
    checkpoint: Mapped[str] = mapped_column(Text)
