"""Whether a sender run has anything to do, asked by Core so that the ORM, the outbox's and the
access tables' modules load only when it has: most cron ticks deliver nothing."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import TableClause

    from emeritus.store import Store

# `SendReport().to_dict()`: what a sender reports when nothing is due (a test holds the two equal).
NOTHING_SENT: dict[str, Any] = {"fanned_out": 0, "sent": [], "failed": [], "dead": []}


def outbox_views() -> tuple[TableClause, TableClause]:
    """Core views of `NoticeRecord` and `DeliveryRecord`, as much as `deliveries_due` reads (a
    test holds them to their tables); made on use, since `emeritus --help` loads no SQLAlchemy."""
    from sqlalchemy import String, column, table

    from emeritus.store import UTCDateTime

    return (
        table("notices", column("fanned_out_at", UTCDateTime())),
        table(
            "notice_deliveries",
            column("state", String()),
            column("next_attempt_at", UTCDateTime()),
        ),
    )


def deliveries_due(store: Store, now: datetime) -> bool:
    """What `Sender.run` (without `retry_dead`) would find: a notice awaiting its deliveries,
    or a pending delivery due at `now` (a killed sender's claim included: its lease is its
    `next_attempt_at`)."""
    from sqlalchemy import exists, or_, select

    notices, deliveries = outbox_views()
    due = or_(
        exists().where(notices.c.fanned_out_at.is_(None)),
        exists().where(deliveries.c.state == "pending", deliveries.c.next_attempt_at <= now),
    )
    with store.connection() as connection:
        return bool(connection.scalar(select(due)))
