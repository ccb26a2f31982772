"""Fixity: verifying one object on every copy, rotating audits, and the status of each object
(copies, last full check, NDSA level)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from emeritus.archive.check import Problem, check_copy
from emeritus.archive.ocfl import INVENTORY, object_root
from emeritus.archive.service import Archive
from emeritus.archive.tables import CopyRecord, CopyState, ObjectRecord
from emeritus.store import append_event, iso, utc_now

Progress = Callable[[int], None]
AUDIT_INTERVAL = timedelta(days=90)


@dataclass
class CopyReport:
    copy: str
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"copy": self.copy, "ok": self.ok, "problems": [p.to_dict() for p in self.problems]}


@dataclass
class VerifyReport:
    model: str
    full: bool
    copies: list[CopyReport]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.copies)

    @property
    def problems(self) -> list[Problem]:
        return [p for c in self.copies for p in c.problems]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "full": self.full,
            "ok": self.ok,
            "copies": [c.to_dict() for c in self.copies],
        }


def check_object_on(
    archive: Archive,
    model: str,
    copy: CopyRecord,
    *,
    full: bool,
    progress: Progress | None = None,
    only: list[str] | None = None,
) -> CopyReport:
    record, reference, recorded = archive.reference(model)
    path = object_root(record.object_id)
    storage = archive.storage(copy)
    if not storage.list(path + "/"):
        return CopyReport(
            copy.name,
            [Problem(copy.name, "", "missing", "object not on this copy (run emeritus replicate)")],
        )
    try:
        root_inventory = storage.read_bytes(f"{path}/{INVENTORY}")
    except FileNotFoundError:
        root_inventory = b""
    behind = [n for n, data in recorded.items() if data == root_inventory and n < reference.head]
    if behind:  # an intact older state: the copy has not been replicated to since
        return CopyReport(
            copy.name,
            [
                Problem(
                    copy.name,
                    "",
                    "behind",
                    f"holds v{behind[0]}, the archive is at v{reference.head} "
                    "(run emeritus replicate)",
                )
            ],
        )
    maps = archive.tensor_maps(model, reference) if full else {}
    problems = check_copy(
        storage,
        path,
        copy.name,
        reference,
        recorded,
        full=full,
        tensor_maps=maps,
        only=only,
        progress=progress,
    )
    return CopyReport(copy.name, problems)


def full_check_bytes(archive: Archive, model: str) -> int:
    """Bytes a full check of one copy of the object reads (for progress totals)."""
    record = archive.object(model)
    return record.size


def verify(
    archive: Archive,
    model: str,
    *,
    full: bool = False,
    progress: Callable[[int], Progress] | None = None,
) -> VerifyReport:
    """Check the object on every copy; record each copy's result and one event."""
    copies = archive.copies()
    advance = (
        progress(full_check_bytes(archive, model) * len(copies)) if progress and full else None
    )
    reports = [check_object_on(archive, model, c, full=full, progress=advance) for c in copies]
    report = VerifyReport(model, full, reports)
    record_checks(archive, model, report)
    return report


def record_checks(archive: Archive, model: str, report: VerifyReport) -> None:
    now = utc_now()
    with archive.store.transaction() as session:
        record = session.scalar(select(ObjectRecord).where(ObjectRecord.model == model))
        assert record is not None
        copies = {c.name: c for c in session.scalars(select(CopyRecord))}
        for result in report.copies:
            state = session.scalar(
                select(CopyState).where(
                    CopyState.object_id == record.id, CopyState.copy_id == copies[result.copy].id
                )
            )
            if state is None:
                state = CopyState(object_id=record.id, copy_id=copies[result.copy].id)
                session.add(state)
            state.last_check_at, state.last_check_ok = now, result.ok
            state.last_problem = str(result.problems[0]) if result.problems else None
            if result.ok:
                state.head = record.head
            if report.full:
                state.last_full_check_at, state.last_full_check_ok = now, result.ok
        append_event(
            session,
            kind="archive.fixity_checked" if report.full else "archive.verified",
            subject=f"model:{model}",
            actor=archive.settings.actor,
            payload={
                "full": report.full,
                "ok": report.ok,
                "copies": {c.copy: [str(p) for p in c.problems][:20] for c in report.copies},
            },
        )


def audit(
    archive: Archive,
    *,
    subset: tuple[int, int] = (1, 1),
    progress: Callable[[int], Progress] | None = None,
) -> list[VerifyReport]:
    """Fully check the N-th of T slices of all (object, copy) pairs; a daily cron with T = 30
    reads every copy of everything once a month."""
    n, t = subset
    copies = archive.copies()
    pairs = [(o.model, c) for o in archive.objects() for c in copies]
    chosen = [(m, c) for m, c in pairs if _slice(m, c.name, t) == n - 1]
    sizes = {o.model: o.size for o in archive.objects()}
    advance = progress(sum(sizes[m] for m, _ in chosen)) if progress else None
    reports = []
    for model, copy in chosen:
        report = VerifyReport(
            model, True, [check_object_on(archive, model, copy, full=True, progress=advance)]
        )
        record_checks(archive, model, report)
        reports.append(report)
    return reports


def _slice(model: str, copy: str, t: int) -> int:
    """A stable slice for each pair, so successive days cover everything exactly once."""
    return int(hashlib.sha256(f"{model}\x00{copy}".encode()).hexdigest(), 16) % t


@dataclass(frozen=True)
class CopyStatus:
    copy: str
    location: str
    head: int | None
    last_full_check_at: datetime | None
    last_full_check_ok: bool | None
    last_problem: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "copy": self.copy,
            "location": self.location,
            "head": self.head,
            "last_full_check_at": iso(self.last_full_check_at) if self.last_full_check_at else None,
            "last_full_check_ok": self.last_full_check_ok,
            "last_problem": self.last_problem,
        }


@dataclass(frozen=True)
class ObjectStatus:
    model: str
    object_id: str
    head: int
    size: int
    files: int
    copies: list[CopyStatus]
    complete_copies: int
    last_full_check_at: datetime | None
    ndsa_level: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "object_id": self.object_id,
            "head": self.head,
            "size": self.size,
            "files": self.files,
            "complete_copies": self.complete_copies,
            "last_full_check_at": iso(self.last_full_check_at) if self.last_full_check_at else None,
            "ndsa_level": self.ndsa_level,
            "copies": [c.to_dict() for c in self.copies],
        }


def status(archive: Archive, *, now: datetime | None = None) -> list[ObjectStatus]:
    now = now or utc_now()
    copies = archive.copies()
    result = []
    with archive.store.transaction() as session:
        for record in session.scalars(select(ObjectRecord).order_by(ObjectRecord.model)):
            states = {
                s.copy_id: s
                for s in session.scalars(select(CopyState).where(CopyState.object_id == record.id))
            }
            rows = []
            for copy in copies:
                state = states.get(copy.id)
                rows.append(
                    CopyStatus(
                        copy.name,
                        copy.location,
                        state.head if state else None,
                        state.last_full_check_at if state else None,
                        state.last_full_check_ok if state else None,
                        state.last_problem if state else None,
                    )
                )
            complete = [
                r
                for r in rows
                if r.head == record.head
                and r.last_full_check_ok is not False
                and not r.last_problem
            ]
            checks = [r.last_full_check_at for r in complete]
            last_full = min(checks) if checks and all(checks) else None  # type: ignore[type-var]
            result.append(
                ObjectStatus(
                    record.model,
                    record.object_id,
                    record.head,
                    record.size,
                    record.files,
                    rows,
                    len(complete),
                    last_full,
                    ndsa_level(complete, now),
                )
            )
    return result


def ndsa_level(complete: list[CopyStatus], now: datetime) -> int:
    """NDSA Levels of Digital Preservation (2019), storage and integrity columns; the exact
    conditions are in docs/design/archive-format.md."""
    locations = {c.location for c in complete}
    level = 0
    if len(complete) >= 2:
        level = 1
    if len(complete) >= 3 and len(locations) >= 2:
        level = 2
    if level == 2 and all(
        c.last_full_check_at is not None
        and c.last_full_check_ok
        and now - c.last_full_check_at <= AUDIT_INTERVAL
        for c in complete
    ):
        level = 3
    if level == 3 and len(locations) >= 3:
        level = 4
    return level
