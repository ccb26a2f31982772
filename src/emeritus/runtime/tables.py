"""Database tables of the runtime: where each model runs."""

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from emeritus.store import Base, UTCDateTime


class DeploymentRecord(Base):
    """A model's recorded deployment (docs/design/runtime.md, "Deployments"); a model without
    one runs on its format's default backend."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), unique=True)
    backend: Mapped[str] = mapped_column(String(100))
    url: Mapped[str | None] = mapped_column(String(1000))
    server_model: Mapped[str | None] = mapped_column(String(200))
    options: Mapped[str] = mapped_column(Text)  # canonical JSON object
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime)
