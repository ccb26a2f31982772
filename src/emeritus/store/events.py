"""The append-only, hash-chained event log. Format and invariants: docs/design/event-log.md."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from emeritus.errors import InvalidInput
from emeritus.store.canonical import GENESIS_DIGEST, canonical_json, digest_of
from emeritus.store.clock import iso, utc_now
from emeritus.store.database import Base, UTCDateTime

EVENT_FORMAT_VERSION = 1


class EventRow(Base):
    __tablename__ = "events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    v: Mapped[int] = mapped_column(Integer)
    time: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    subject: Mapped[str] = mapped_column(String(200), index=True)
    actor: Mapped[str] = mapped_column(String(100))
    payload: Mapped[str] = mapped_column(Text)
    prev_digest: Mapped[str] = mapped_column(String(71))
    digest: Mapped[str] = mapped_column(String(71), unique=True)


class ChainHead(Base):
    """One row: the newest event's seq and digest. Locking it serialises appenders."""

    __tablename__ = "event_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(71))


@dataclass(frozen=True)
class Event:
    seq: int
    time: datetime
    kind: str
    subject: str
    actor: str
    payload: dict[str, Any]
    prev_digest: str
    digest: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": iso(self.time),
            "kind": self.kind,
            "subject": self.subject,
            "actor": self.actor,
            "payload": self.payload,
            "prev_digest": self.prev_digest,
            "digest": self.digest,
        }

    @classmethod
    def from_row(cls, row: EventRow) -> Event:
        return cls(
            row.seq,
            row.time,
            row.kind,
            row.subject,
            row.actor,
            json.loads(row.payload),
            row.prev_digest,
            row.digest,
        )


def _canonical_fields(
    seq: int,
    time: datetime,
    kind: str,
    subject: str,
    actor: str,
    payload: Any,
    prev_digest: str,
    v: int,
) -> dict[str, Any]:
    return {
        "actor": actor,
        "kind": kind,
        "payload": payload,
        "prev_digest": prev_digest,
        "seq": seq,
        "subject": subject,
        "time": iso(time),
        "v": v,
    }


def append_event(
    session: Session,
    *,
    kind: str,
    subject: str,
    actor: str,
    payload: dict[str, Any] | None = None,
    time: datetime | None = None,
) -> Event:
    """Append one event inside the caller's transaction; it commits or rolls back with it."""
    if not kind or not subject or not actor:
        raise InvalidInput("an event needs a kind, a subject and an actor")
    payload = payload or {}
    try:
        canonical_json(payload)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"event payload is not plain JSON: {exc}") from None
    head = session.execute(
        select(ChainHead).where(ChainHead.id == 1).with_for_update()
    ).scalar_one()
    when = time or utc_now()
    seq, prev_digest = head.seq + 1, head.digest
    digest = digest_of(
        _canonical_fields(
            seq, when, kind, subject, actor, payload, prev_digest, EVENT_FORMAT_VERSION
        )
    )
    session.add(
        EventRow(
            seq=seq,
            v=EVENT_FORMAT_VERSION,
            time=when,
            kind=kind,
            subject=subject,
            actor=actor,
            payload=canonical_json(payload),
            prev_digest=prev_digest,
            digest=digest,
        )
    )
    head.seq, head.digest = seq, digest
    session.flush()
    return Event(seq, when, kind, subject, actor, payload, prev_digest, digest)


def list_events(
    session: Session,
    *,
    subject: str | None = None,
    kind: str | None = None,
    limit: int | None = None,
) -> list[Event]:
    """Events oldest first, optionally for one subject or kind (a prefix ending in `.` matches a
    family, e.g. `lifecycle.`), the newest `limit` of them."""
    query = select(EventRow)
    if subject is not None:
        query = query.where(EventRow.subject == subject)
    if kind is not None:
        query = query.where(
            EventRow.kind.startswith(kind) if kind.endswith(".") else EventRow.kind == kind
        )
    if limit is not None:
        rows = list(session.scalars(query.order_by(EventRow.seq.desc()).limit(limit)))[::-1]
    else:
        rows = list(session.scalars(query.order_by(EventRow.seq)))
    return [Event.from_row(row) for row in rows]


@dataclass(frozen=True)
class ChainReport:
    """The outcome of verifying the chain: `problem` names the first bad event, if any."""

    events: int
    head_digest: str
    first_bad: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "head_digest": self.head_digest,
            "first_bad": self.first_bad,
            "problem": self.problem,
        }


def verify_chain(session: Session) -> ChainReport:
    """Walk every event in order, re-derive its digest and links, and stop at the first defect."""
    head = session.get(ChainHead, 1)
    if head is None:
        return ChainReport(0, GENESIS_DIGEST, 0, "the chain head row is missing")
    expected, prev_digest, count = 1, GENESIS_DIGEST, 0
    previous: EventRow | None = None
    for row in session.scalars(select(EventRow).order_by(EventRow.seq)).yield_per(1000):
        where = f"event {row.seq} ({row.kind}, {row.subject})"
        if row.seq != expected:
            missing = (
                f"event {expected}"
                if row.seq == expected + 1
                else f"events {expected}-{row.seq - 1}"
            )
            return ChainReport(
                count,
                head.digest,
                expected,
                f"{missing} deleted: the log jumps from {expected - 1} to {row.seq}",
            )
        if row.v != EVENT_FORMAT_VERSION:
            return ChainReport(
                count, head.digest, row.seq, f"{where}: unknown event format version {row.v}"
            )
        problem = _self_check(row)
        if problem is not None:
            return ChainReport(count, head.digest, row.seq, f"{where}: {problem}")
        if row.prev_digest != prev_digest:
            # This row is self-consistent, so its prev_digest is as written: the previous event's
            # stored digest was rewritten after this one was appended.
            assert previous is not None
            return ChainReport(
                count,
                head.digest,
                previous.seq,
                f"event {previous.seq} ({previous.kind}, {previous.subject}): "
                f"altered and re-hashed: event {row.seq} recorded another digest",
            )
        previous, prev_digest, expected, count = row, row.digest, expected + 1, count + 1
    if head.seq > count:
        missing = f"event {head.seq}" if head.seq == count + 1 else f"events {count + 1}-{head.seq}"
        return ChainReport(
            count,
            head.digest,
            count + 1,
            f"{missing} deleted: the chain head records {head.seq} events",
        )
    if head.seq < count:
        return ChainReport(
            count,
            head.digest,
            head.seq + 1,
            f"event {head.seq + 1} was not appended through the chain head",
        )
    if head.digest != prev_digest and previous is not None:
        return ChainReport(
            count,
            head.digest,
            previous.seq,
            f"event {previous.seq} ({previous.kind}, {previous.subject}): altered "
            "and re-hashed: the chain head records another digest",
        )
    return ChainReport(count, head.digest)


def _self_check(row: EventRow) -> str | None:
    try:
        payload = json.loads(row.payload)
    except ValueError:
        return "payload is not valid JSON (edited)"
    fields = _canonical_fields(
        row.seq, row.time, row.kind, row.subject, row.actor, payload, row.prev_digest, row.v
    )
    if digest_of(fields) != row.digest:
        return "content does not match its digest (edited or moved)"
    return None
