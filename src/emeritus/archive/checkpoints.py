"""The event log's anchor: signed checkpoints kept in the archive, outside the database, as an
object of the archive's own. Spec: docs/design/event-log.md, "Anchoring".

The store signs and verifies; this module finds the newest checkpoint on every copy, writes new
ones (each a new version of one object), and verifies the chain against them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from emeritus.archive.ocfl import INVENTORY, Inventory, object_root
from emeritus.archive.service import Archive
from emeritus.archive.storage import Storage, open_storage
from emeritus.archive.writer import Incoming
from emeritus.errors import EmeritusError, IntegrityError
from emeritus.store import (
    ANCHOR_EVERY,
    ChainReport,
    Checkpoint,
    Position,
    Store,
    remember_checkpoint,
    remembered_checkpoint,
    utc_now,
    verify_chain,
)

# The archive's own objects: they belong to no registered model, and the archive keeps them
# for itself. Code that admits only registered models into the archive MUST exempt these names.
CHECKPOINTS_OBJECT = "emeritus:event-checkpoints"  # no model name has a ':'
CHECKPOINTS_OID = "urn:emeritus:event-checkpoints"
ARCHIVE_OWN_OBJECTS = frozenset({CHECKPOINTS_OBJECT})
CHECKPOINTS_FILE = "checkpoints.jsonl"
KEPT = 100  # checkpoints in the head version's file; earlier versions keep the older ones


@dataclass(frozen=True)
class Newest:
    """The newest trusted checkpoint over every copy and the database, and what was wrong."""

    checkpoint: Checkpoint | None
    sources: tuple[str, ...] = ()  # where it was found: copy names, "database"
    problems: tuple[str, ...] = ()  # checkpoints that do not verify: never trusted
    skipped: tuple[str, ...] = ()  # copies that could not be read

    @property
    def position(self) -> Position | None:
        cp = self.checkpoint
        return (cp.seq, cp.digest) if cp is not None else None

    def to_dict(self) -> dict[str, Any] | None:
        if self.checkpoint is None:
            return None
        return {**self.checkpoint.to_dict(), "sources": list(self.sources)}


@dataclass(frozen=True)
class AnchorReport:
    """A verification of the chain against the newest checkpoint, and the checkpoint taken."""

    chain: ChainReport
    newest: Newest
    taken: Checkpoint | None = None

    @property
    def ok(self) -> bool:
        return self.chain.ok and not self.newest.problems

    @property
    def problem(self) -> str | None:
        if not self.chain.ok:
            return f"event chain broken: {self.chain.problem}"
        if self.newest.problems:
            return f"event checkpoints do not verify: {self.newest.problems[0]}"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.chain.to_dict(),
            "ok": self.ok,
            "problem": self.problem,
            "checkpoint": self.newest.to_dict(),
            "checkpoint_problems": list(self.newest.problems),
            "skipped_copies": list(self.newest.skipped),
            "anchored": self.taken.to_dict() if self.taken else None,
        }


class Anchor:
    """Checkpoints of one installation's event log, in its archive."""

    def __init__(self, archive: Archive) -> None:
        self.archive = archive
        self.store = archive.store
        self.key = archive.store.signing_key()

    # -- reading ----------------------------------------------------------------------------

    def newest(self) -> Newest:
        """The highest-seq checkpoint whose signature verifies, on any copy or in the database."""
        found: dict[int, tuple[Checkpoint, list[str]]] = {}
        problems: list[str] = []
        skipped: list[str] = []

        def consider(checkpoint: Checkpoint, source: str) -> None:
            problem = checkpoint.problem(self.key)
            if problem is not None:
                problems.append(f"{source}: {problem}")
                return
            held = found.setdefault(checkpoint.seq, (checkpoint, []))
            if held[0].digest != checkpoint.digest:  # two signed digests for one seq
                problems.append(
                    f"{source}: checkpoint at event {checkpoint.seq} records {checkpoint.digest}, "
                    f"another records {held[0].digest}"
                )
            elif source not in held[1]:
                held[1].append(source)

        read: set[str] = set()
        pending: list[tuple[str, Storage | str]] = [
            (c.name, self.archive.storage(c)) for c in self.archive.copies()
        ]
        while pending:
            name, where = pending.pop(0)
            storage = where if isinstance(where, Storage) else _open(where)
            if storage is None or storage.url in read:
                continue
            read.add(storage.url)
            try:
                lines = _read_lines(storage)
            except FileNotFoundError:
                continue  # this copy holds no checkpoint yet
            except OSError as exc:  # unreachable: the other copies still count
                skipped.append(f"{name}: {exc}")
                continue
            except (EmeritusError, ValueError) as exc:
                problems.append(f"{name}: the checkpoint object is unreadable: {exc}")
                continue
            for number, line in enumerate(lines, start=1):
                try:
                    checkpoint = Checkpoint.from_line(line)
                except ValueError as exc:
                    problems.append(f"{name}: {CHECKPOINTS_FILE} line {number}: {exc}")
                    continue
                consider(checkpoint, name)
            # A copy named by a signed checkpoint is read even when the database forgot it.
            newest = max(found.values(), key=lambda item: item[0].seq, default=None)
            if newest is not None:
                pending += [(url, url) for url in newest[0].copies if url not in read]
        remembered = _remembered(self.store)
        if remembered is not None:
            try:
                consider(Checkpoint.from_line(remembered), "database")
            except ValueError as exc:
                problems.append(f"database: its last verified checkpoint: {exc}")
        if not found:
            return Newest(None, (), tuple(problems), tuple(skipped))
        checkpoint, sources = found[max(found)]
        return Newest(checkpoint, tuple(sources), tuple(problems), tuple(skipped))

    # -- verifying and taking ---------------------------------------------------------------

    def verify(self, *, take: bool = True) -> AnchorReport:
        """The whole chain, walked from the first event, against the newest checkpoint; with
        `take`, a chain that verifies is anchored at the head it reached."""
        newest = self.newest()
        with self.store.transaction() as session:
            chain = verify_chain(session, anchor=newest.position)
        report = AnchorReport(chain, newest)
        if take and report.ok:
            return AnchorReport(chain, newest, self._anchor(chain, newest))
        return report

    def take(self) -> AnchorReport:
        """Verify the chain from the newest checkpoint and anchor its head; IntegrityError when
        the chain or the checkpoints do not verify."""
        newest = self.newest()
        with self.store.transaction() as session:
            chain = verify_chain(session, since=newest.position)
        report = AnchorReport(chain, newest)
        if not report.ok:
            raise IntegrityError(str(report.problem))
        return AnchorReport(chain, newest, self._anchor(chain, newest))

    def take_if_older(
        self, age: timedelta = ANCHOR_EVERY, *, now: datetime | None = None
    ) -> Checkpoint | None:
        """Take a checkpoint when the newest is older than `age` (or there is none)."""
        now = now or utc_now()
        newest = self.newest().checkpoint
        if newest is not None and now - newest.time < age:
            return None
        return self.take().taken

    def _anchor(self, chain: ChainReport, newest: Newest) -> Checkpoint | None:
        if newest.checkpoint is not None and newest.checkpoint.seq == chain.events:
            return None  # nothing new to anchor
        copies = tuple(c.url for c in self.archive.copies())
        checkpoint = Checkpoint.sign(self.key, chain.events, chain.head_digest, utc_now(), copies)
        self._write(checkpoint)
        with self.store.transaction() as session:
            remember_checkpoint(session, checkpoint)
        return checkpoint

    def _write(self, checkpoint: Checkpoint) -> None:
        """A new version of the checkpoint object on the primary, its file built under the
        object's write lock from the lines its head holds then."""
        primary = self.archive.primary

        def lines(_stored: object) -> list[Incoming]:
            kept = [checkpoint]
            existing = primary.read_inventory(CHECKPOINTS_OID)
            if existing is not None:
                digest = existing.head_state().get(CHECKPOINTS_FILE)
                if digest is not None:
                    path = primary.object_dir(CHECKPOINTS_OID) / existing.content_path_of(digest)
                    for line in path.read_text(encoding="utf-8").splitlines():
                        try:
                            old = Checkpoint.from_line(line)
                        except ValueError:
                            continue
                        if old.problem(self.key) is None and old.seq != checkpoint.seq:
                            kept.append(old)
            kept = sorted(kept, key=lambda c: c.seq)[-KEPT:]
            data = "".join(c.to_line() + "\n" for c in kept).encode("utf-8")
            return [Incoming(CHECKPOINTS_FILE, data, "checkpoints")]

        now = utc_now()
        commit = primary.commit(
            CHECKPOINTS_OID,
            [],
            message=f"event checkpoint at {checkpoint.seq}",
            user=self.store.settings.actor,
            now=now,
            derive=lines,
        )
        self.archive._record_commit(CHECKPOINTS_OBJECT, commit, now)


def _open(url: str) -> Storage | None:
    try:
        return open_storage(url)
    except EmeritusError:
        return None


def _read_lines(storage: Storage) -> list[str]:
    """The lines of `checkpoints.jsonl` in the head version on one copy. Its bytes are not
    checked against the inventory: each line's signature is the authority (fixity checks the
    object as it checks every other)."""
    root = object_root(CHECKPOINTS_OID)
    inventory = Inventory.from_bytes(storage.read_bytes(f"{root}/{INVENTORY}"))
    digest = inventory.head_state().get(CHECKPOINTS_FILE)
    if digest is None:
        raise IntegrityError(f"the checkpoint object has no {CHECKPOINTS_FILE}")
    data = storage.read_bytes(f"{root}/{inventory.content_path_of(digest)}")
    return data.decode("utf-8").splitlines()


def _remembered(store: Store) -> str | None:
    with store.transaction() as session:
        return remembered_checkpoint(session)
