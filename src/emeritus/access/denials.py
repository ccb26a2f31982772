"""Refusals counted, not logged one by one: an unauthenticated flood must cost O(1) events.

Each gateway process counts its refusals in memory by minute and reason, with the key ids and
models involved (bounded: only keys and models that exist, at most `TOP` of each per minute and
reason, the rest under `OTHER`). Once a minute has passed, the process writes its counts as one
`access_denials` row per reason; once the minute is `CLOSE_AFTER` seconds over (every process
has written by then), whichever process flushes first appends one `access.denials` event per
reason with the counts of every process, and marks the rows with the event's seq under a row
lock, so no minute is logged twice. Spec: docs/design/access.md, Refusals.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy.exc
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from emeritus.access.audit import audit
from emeritus.access.tables import DenialRecord
from emeritus.store import Event, Store, canonical_json, iso, utc_now

MINUTE = 60
TOP = 20  # distinct key ids, and models, kept per minute and reason
OTHER = "(other)"  # what the rest count under: neither a key id nor a model name
CLOSE_AFTER = 5  # seconds past a minute's end before it is logged
FLUSH_EVERY = 2.0  # seconds between a serving gateway's flushes
DENIALS_EVENT = "access.denials"  # the kind of the rolled-up event, one per minute and reason
SUBJECT = "access:gateway"

log = logging.getLogger(__name__)


def minute_of(now: datetime) -> int:
    """The epoch second at which `now`'s minute starts."""
    return int(now.timestamp()) // MINUTE * MINUTE


def _add(counter: Counter[str], name: str, n: int) -> None:
    if name in counter or len(counter) - (OTHER in counter) < TOP:
        counter[name] += n
    else:
        counter[OTHER] += n


def _top(counter: Counter[str]) -> dict[str, int]:
    """The `TOP` largest counts by name; everything else summed under `OTHER`."""
    named = [(n, c) for n, c in counter.most_common() if n != OTHER]
    kept = dict(named[:TOP])
    rest = counter[OTHER] + sum(c for _, c in named[TOP:])
    if rest:
        kept[OTHER] = rest
    return kept


@dataclass
class _Tally:
    status: int
    count: int = 0
    keys: Counter[str] = field(default_factory=Counter)
    models: Counter[str] = field(default_factory=Counter)

    def add(self, key_id: str | None, model: str | None) -> None:
        self.count += 1
        if key_id:
            _add(self.keys, key_id, 1)
        if model:
            _add(self.models, model, 1)

    def merge(self, other: _Tally) -> None:
        self.count += other.count
        for name, n in other.keys.items():
            _add(self.keys, name, n)
        for name, n in other.models.items():
            _add(self.models, name, n)

    def detail(self) -> dict[str, dict[str, int]]:
        return {"keys": _top(self.keys), "models": _top(self.models)}


@dataclass(frozen=True)
class DenialTotal:
    """Refusals of one reason, all time: how many, and the newest minute that had one."""

    reason: str
    status: int
    count: int
    latest: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "status": self.status,
            "count": self.count,
            "latest": iso(self.latest),
        }


class Denials:
    """One process's refusal counts, and their way into the database and the event log.

    Thread-safe. Counts not yet written are lost if the process dies; `flush(final=True)` (at
    shutdown; `flushing` does it) writes and logs everything counted."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()  # guards the two fields below
        self._tallies: dict[tuple[int, str], _Tally] = {}
        self._unclosed: set[int] = set()  # minutes written here and not yet seen logged
        self._flushing = threading.Lock()

    def count(
        self,
        reason: str,
        status: int,
        now: datetime,
        *,
        key_id: str | None = None,
        model: str | None = None,
    ) -> None:
        """Count one refusal. `key_id` and `model` only when they exist (a caller's guess of
        either is unbounded), never a secret."""
        with self._lock:
            tally = self._tallies.setdefault((minute_of(now), reason), _Tally(status))
            tally.add(key_id, model)

    def due(self, now: datetime) -> bool:
        """Whether a past minute waits to be written, or a written one to be logged."""
        current, closable = minute_of(now), int(now.timestamp()) - MINUTE - CLOSE_AFTER
        with self._lock:
            return any(m < current for m, _ in self._tallies) or any(
                m <= closable for m in self._unclosed
            )

    def tick(self, now: datetime | None = None) -> list[Event]:
        """Flush if something is due, without raising: a failed flush keeps its counts for the
        next one (a request must not fail because the log could not be written just now)."""
        now = now or utc_now()
        if not self.due(now):
            return []
        return self._try(now)

    def flush(self, now: datetime | None = None, *, final: bool = False) -> list[Event]:
        """Write the counts of past minutes (every minute, if `final`) and log the minutes that
        are over (every written one, if `final`); returns the events appended. Only one flush
        of this process runs at a time: a periodic one finding another under way returns."""
        now = now or utc_now()
        if not self._flushing.acquire(blocking=final):
            return []
        try:
            return self._flush(now, final)
        finally:
            self._flushing.release()

    def totals(self) -> list[DenialTotal]:
        """Per reason, all time: what the database holds plus this process's counts not yet
        written; most refused first."""
        found: dict[str, list[int]] = {}
        with self.store.transaction() as session:
            rows = session.execute(
                select(
                    DenialRecord.reason,
                    func.max(DenialRecord.status),
                    func.sum(DenialRecord.count),
                    func.max(DenialRecord.minute),
                ).group_by(DenialRecord.reason)
            ).all()
        for reason, status, count, latest in rows:
            found[reason] = [int(status), int(count), int(latest)]
        with self._lock:
            for (minute, reason), tally in self._tallies.items():
                entry = found.setdefault(reason, [tally.status, 0, minute])
                entry[1] += tally.count
                entry[2] = max(entry[2], minute)
        return sorted(
            (
                DenialTotal(reason, status, count, datetime.fromtimestamp(latest, UTC))
                for reason, (status, count, latest) in found.items()
            ),
            key=lambda t: (-t.count, t.reason),
        )

    @contextlib.contextmanager
    def flushing(self, every: float = FLUSH_EVERY) -> Iterator[None]:
        """Flush every `every` seconds in a background thread while the block runs (a serving
        gateway), and everything at its end."""
        stop = threading.Event()

        def run() -> None:
            while not stop.wait(every):
                self._try(utc_now())

        thread = threading.Thread(target=run, name="emeritus-denials", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()
            self.flush(final=True)

    # -- writing and logging ---------------------------------------------------------------------

    def _try(self, now: datetime) -> list[Event]:
        try:
            return self.flush(now)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            log.warning("refusal counts not written yet, kept for the next flush: %s", exc)
            return []

    def _flush(self, now: datetime, final: bool) -> list[Event]:
        current = minute_of(now)
        with self._lock:
            taken = {k: t for k, t in self._tallies.items() if final or k[0] < current}
            for k in taken:
                del self._tallies[k]
        try:
            with self.store.transaction() as session:
                for (minute, reason), tally in sorted(taken.items()):
                    session.add(
                        DenialRecord(
                            minute=minute,
                            reason=reason,
                            status=tally.status,
                            count=tally.count,
                            detail=canonical_json(tally.detail()),
                        )
                    )
                session.flush()
                events = self._close(session, now, final)
        except BaseException:
            with self._lock:  # put the counts back: nothing was written
                for k, tally in taken.items():
                    self._tallies.setdefault(k, _Tally(tally.status)).merge(tally)
            raise
        closable = int(now.timestamp()) - MINUTE - CLOSE_AFTER
        with self._lock:
            self._unclosed |= {minute for minute, _ in taken}
            self._unclosed = {m for m in self._unclosed if not final and m > closable}
        return events

    def _close(self, session: Session, now: datetime, final: bool) -> list[Event]:
        """Log every unlogged minute that is over: one event per minute and reason. The rows
        are locked, and another process's flush skips the rows this one marks."""
        query = (
            select(DenialRecord)
            .where(DenialRecord.event_seq.is_(None))
            .order_by(DenialRecord.id)
            .with_for_update()
        )
        if not final:
            query = query.where(DenialRecord.minute <= int(now.timestamp()) - MINUTE - CLOSE_AFTER)
        groups: dict[tuple[int, str], list[DenialRecord]] = {}
        for row in session.scalars(query):
            groups.setdefault((row.minute, row.reason), []).append(row)
        events = []
        for (minute, reason), rows in sorted(groups.items()):
            keys: Counter[str] = Counter()
            models: Counter[str] = Counter()
            for row in rows:
                detail = json.loads(row.detail)
                keys.update(detail["keys"])
                models.update(detail["models"])
            payload = {
                "minute": iso(datetime.fromtimestamp(minute, UTC)),
                "reason": reason,
                "status": rows[0].status,
                "count": sum(row.count for row in rows),
                "keys": _top(keys),
                "models": _top(models),
            }
            kind = DENIALS_EVENT.removeprefix("access.")
            event = audit(session, self.store, kind, SUBJECT, payload, actor="gateway")
            for row in rows:
                row.event_seq = event.seq
            events.append(event)
        return events
