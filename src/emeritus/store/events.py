"""The append-only, hash-chained event log. Format and invariants: docs/design/event-log.md."""

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from emeritus.errors import InvalidInput
from emeritus.store.canonical import GENESIS_DIGEST, canonical_json, digest_of
from emeritus.store.clock import iso, utc_now
from emeritus.store.database import UTCDateTime
from emeritus.store.driver import driver_sql
from emeritus.store.tables import Base

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


EVENTS, HEAD = EventRow.__tablename__, ChainHead.__tablename__


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
    def from_row(cls, row: EventRow) -> "Event":
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
        payload_json = canonical_json(payload)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"event payload is not plain JSON: {exc}") from None
    with driver_sql(session) as sql:  # plain SQL: docs/design/event-log.md, Writing
        seq, prev_digest = sql.run(
            f"SELECT seq, digest FROM {HEAD} WHERE id = 1{sql.for_update}"
        ).fetchone()
        seq += 1
        when = time or utc_now()
        digest = digest_of(
            _canonical_fields(
                seq, when, kind, subject, actor, payload, prev_digest, EVENT_FORMAT_VERSION
            )
        )
        sql.run(
            f"INSERT INTO {EVENTS} (seq, v, time, kind, subject, actor, payload, prev_digest, "
            "digest) VALUES (:seq, :v, :time, :kind, :subject, :actor, :payload, :prev, :digest)",
            {
                "seq": seq,
                "v": EVENT_FORMAT_VERSION,
                "time": sql.time(when),
                "kind": kind,
                "subject": subject,
                "actor": actor,
                "payload": payload_json,
                "prev": prev_digest,
                "digest": digest,
            },
        )
        sql.run(
            f"UPDATE {HEAD} SET seq = :seq, digest = :digest WHERE id = 1",
            {"seq": seq, "digest": digest},
        )
    return Event(seq, when, kind, subject, actor, payload, prev_digest, digest)


def list_events(
    session: Session,
    *,
    subject: str | None = None,
    kind: str | None = None,
    limit: int | None = None,
    before_seq: int | None = None,
) -> list[Event]:
    """Events oldest first, optionally for one subject or kind (a prefix ending in `.` matches a
    family, e.g. `lifecycle.`), the newest `limit` of them, those before `before_seq` if given
    (a page of a long log: pass the first seq of the page shown to get the one before it)."""
    query = select(EventRow)
    if before_seq is not None:
        query = query.where(EventRow.seq < before_seq)
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


# Events after the newest checkpoint listed by number, kind and subject (their count is exact).
UNANCHORED_LISTED = 1000

Position = tuple[int, str]  # (seq, digest): a point of the chain vouched for by a checkpoint


@dataclass(frozen=True)
class ChainReport:
    """The outcome of verifying the chain: `problem` names the first bad event, if any.

    `events` is how many events verified intact (the head's seq when all did), `walked` how many
    event rows were read to verify them, `not_anchored` the events after the anchor (the newest
    checkpoint): the first UNANCHORED_LISTED of them, `not_anchored_count` all of them."""

    events: int
    head_digest: str
    first_bad: int | None = None
    problem: str | None = None
    walked: int = 0
    start: int = 0
    not_anchored: tuple[dict[str, Any], ...] = ()
    not_anchored_count: int = 0

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
            "walked": self.walked,
            "start": self.start,
            "not_anchored": {
                "count": self.not_anchored_count,
                "events": list(self.not_anchored),
            },
        }


def _row_defect(
    row: EventRow,
    expected: int,
    prev_digest: str,
    previous: EventRow | None,
    anchor: Position | None,
) -> tuple[int, int, str] | None:
    """The first defect the walk finds at ROW, the event it expected at seq EXPECTED after one
    with digest PREV_DIGEST: (events intact before it, the first bad seq, the problem)."""
    count = expected - 1
    where = f"event {row.seq} ({row.kind}, {row.subject})"
    if row.seq != expected:
        missing = (
            f"event {expected}" if row.seq == expected + 1 else f"events {expected}-{row.seq - 1}"
        )
        jump = f"the log jumps from {expected - 1} to {row.seq}"
        return count, expected, f"{missing} deleted: {jump}"
    if row.v != EVENT_FORMAT_VERSION:
        return count, row.seq, f"{where}: unknown event format version {row.v}"
    problem = _self_check(row)
    if problem is not None:
        return count, row.seq, f"{where}: {problem}"
    if row.prev_digest != prev_digest:
        # This row is self-consistent, so its prev_digest is as written: the previous event's
        # stored digest was rewritten after this one was appended.
        assert previous is not None
        return (
            count - 1,
            previous.seq,
            f"event {previous.seq} ({previous.kind}, {previous.subject}): "
            f"altered and re-hashed: event {row.seq} recorded another digest",
        )
    if anchor is not None and row.seq == anchor[0] and row.digest != anchor[1]:
        return count, row.seq, _fork(row.seq, row.digest, anchor[1], "newest checkpoint")
    return None


def verify_chain(
    session: Session, *, since: Position | None = None, anchor: Position | None = None
) -> ChainReport:
    """Re-derive every event's digest and link and stop at the first defect.

    With `since` (a checkpoint's seq and digest, whose signature the caller checked), the event
    at that seq must have that digest and only the events after it are walked. With `anchor`
    (the newest checkpoint; default `since`), the chain must reach the anchor's seq (else it was
    truncated) and have the anchor's digest there (else it was rewritten: a fork); the events
    after it are reported as not yet anchored."""
    head = session.execute(select(ChainHead.seq, ChainHead.digest).where(ChainHead.id == 1)).first()
    if head is None:
        return ChainReport(0, GENESIS_DIGEST, 0, "the chain head row is missing")
    head_seq, head_digest = int(head[0]), str(head[1])
    anchor = anchor if anchor is not None else since
    start, prev_digest, walked = 0, GENESIS_DIGEST, 0

    def report(count: int, first_bad: int | None = None, problem: str | None = None) -> ChainReport:
        return ChainReport(count, head_digest, first_bad, problem, walked, start)

    if since is not None:
        walked += 1 if since[0] > 0 else 0
        found = _position_problem(session, since, head_seq, "checkpoint")
        if found is not None:
            return report(0, *found)
        start, prev_digest = since
    if anchor is not None and anchor != since and anchor[0] <= start:
        walked += 1 if anchor[0] > 0 else 0
        found = _position_problem(session, anchor, head_seq, "newest checkpoint")
        if found is not None:
            return report(start, *found)
    anchor_seq = anchor[0] if anchor is not None else 0
    listed: list[dict[str, Any]] = []
    expected, previous = start + 1, None
    rows = session.scalars(
        select(EventRow)
        .where(EventRow.seq > start, EventRow.seq <= head_seq)
        .order_by(EventRow.seq)
    ).yield_per(1000)
    for row in rows:
        walked += 1
        defect = _row_defect(row, expected, prev_digest, previous, anchor)
        if defect is not None:
            return report(*defect)
        if row.seq > anchor_seq and len(listed) < UNANCHORED_LISTED:
            listed.append({"seq": row.seq, "kind": row.kind, "subject": row.subject})
        previous, prev_digest, expected = row, row.digest, expected + 1
    count = expected - 1
    if count < head_seq:
        missing = f"event {head_seq}" if head_seq == count + 1 else f"events {count + 1}-{head_seq}"
        recorded = f"the chain head records {head_seq} events"
        return report(count, count + 1, f"{missing} deleted: {recorded}")
    if head_digest != prev_digest:
        if previous is None:
            return report(count, count, f"the chain head's digest is not event {count}'s")
        return report(
            count - 1,
            previous.seq,
            f"event {previous.seq} ({previous.kind}, {previous.subject}): altered "
            "and re-hashed: the chain head records another digest",
        )
    stray = session.scalar(
        select(EventRow.seq).where(EventRow.seq > head_seq).order_by(EventRow.seq).limit(1)
    )
    if stray is not None:
        # Appends committed during the walk moved the head on (PostgreSQL reads each statement
        # afresh); a row the head has still not reached was written past it.
        now_seq = session.execute(select(ChainHead.seq).where(ChainHead.id == 1)).scalar_one()
        if stray > now_seq:
            return report(count, stray, f"event {stray} was not appended through the chain head")
    if anchor_seq > head_seq:
        return report(count, head_seq + 1, _truncated(head_seq, anchor_seq, "newest checkpoint"))
    return ChainReport(
        count, head_digest, None, None, walked, start, tuple(listed), max(0, count - anchor_seq)
    )


def _truncated(head_seq: int, seq: int, what: str) -> str:
    return (
        f"truncated: the log ends at event {head_seq}, but the {what} vouches for event {seq} "
        f"(events {head_seq + 1}-{seq} deleted and the chain head moved back)"
    )


def _fork(seq: int, found: str, expected: str, what: str) -> str:
    return (
        f"fork: event {seq} has digest {found}, the {what} records {expected} "
        f"(the log was rewritten at or before event {seq})"
    )


def _position_problem(
    session: Session, point: Position, head_seq: int, what: str
) -> tuple[int, str] | None:
    """(first bad seq, problem) when the chain does not hold `point`, else None."""
    seq, digest = point
    if seq == 0:
        return None if digest == GENESIS_DIGEST else (0, f"the {what} at event 0 is not genesis")
    if seq > head_seq:
        return head_seq + 1, _truncated(head_seq, seq, what)
    row = session.get(EventRow, seq)
    if row is None:
        return seq, f"event {seq} deleted: the {what} vouches for it"
    problem = _self_check(row) if row.v == EVENT_FORMAT_VERSION else "unknown event format version"
    if problem is not None:
        return seq, f"event {seq} ({row.kind}, {row.subject}): {problem}"
    if row.digest != digest:
        return seq, _fork(seq, row.digest, digest, what)
    return None


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
