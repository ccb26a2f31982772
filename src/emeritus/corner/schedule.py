"""`corner tick`: what cron runs. Each open channel gets a draft for its latest due slot (once,
whoever ticks), and approved drafts are published. Spec: docs/design/corner.md, invariant 5."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from emeritus.corner.cadence import latest_slot
from emeritus.corner.channels import Channels, ChannelState
from emeritus.corner.drafts import DraftState, write_draft
from emeritus.corner.site import publish
from emeritus.corner.tables import DraftRecord
from emeritus.runtime import Backend
from emeritus.store import Store, iso, utc_now

Opener = Callable[[str], Backend]


@dataclass
class TickResult:
    drafted: list[dict[str, Any]] = field(default_factory=list)
    published: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"drafted": self.drafted, "published": self.published, "skipped": self.skipped}


def _has_slot(store: Store, channel_id: int, slot: datetime) -> bool:
    with store.transaction() as session:
        found = session.scalar(
            select(DraftRecord.id).where(
                DraftRecord.channel_id == channel_id, DraftRecord.slot == slot
            )
        )
        return found is not None


def _approved(store: Store, channel_id: int) -> int:
    with store.transaction() as session:
        return len(
            session.scalars(
                select(DraftRecord.id).where(
                    DraftRecord.channel_id == channel_id,
                    DraftRecord.state == DraftState.APPROVED.value,
                )
            ).all()
        )


def tick(store: Store, opener: Opener, *, now: datetime | None = None) -> TickResult:
    """Draft every due slot and publish every approved draft; safe to run at any frequency."""
    now = now or utc_now()
    result = TickResult()
    for channel in Channels(store).all():
        if channel.state is not ChannelState.OPEN:
            result.skipped.append({"model": channel.model, "reason": str(channel.state)})
            continue
        slot = latest_slot(channel.cadence, after=channel.opened_at, now=now)
        if slot is not None and not _has_slot(store, channel.id, slot):
            backend = opener(channel.model)
            try:
                draft = write_draft(store, channel.model, backend, slot=slot, now=now)
            finally:
                backend.close()
            if draft is not None:
                result.drafted.append(
                    {
                        "model": channel.model,
                        "slot": iso(slot),
                        "draft": draft.id,
                        "state": str(draft.state),
                    }
                )
        if _approved(store, channel.id):
            result.published.append(publish(store, channel.model, now=now).to_dict())
    return result
