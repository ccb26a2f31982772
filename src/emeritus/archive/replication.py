"""Replication: bring every replica level with the primary, in commit order, then check what was
copied. Order and reasons: docs/design/archive-format.md, "Replicas"."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from emeritus.archive.check import expected_metadata
from emeritus.archive.fixity import CopyReport, VerifyReport, check_object_on, record_checks
from emeritus.archive.ocfl import (
    EMERITUS_EXTENSION,
    INVENTORY,
    OBJECT_NAMASTE,
    SIDECAR,
    check_format,
    object_root,
    root_declaration,
    version_name,
)
from emeritus.archive.service import Archive
from emeritus.archive.storage import Storage
from emeritus.archive.tables import CopyRecord, CopyState, ObjectRecord
from emeritus.errors import IntegrityError, InvalidInput
from emeritus.store import append_event, utc_now

Progress = Callable[[int], None]


@dataclass
class Replication:
    copy: str
    model: str
    files: list[str] = field(default_factory=list)
    bytes: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "copy": self.copy,
            "model": self.model,
            "files": len(self.files),
            "bytes": self.bytes,
        }


def ensure_root(storage: Storage) -> None:
    """Make a replica a storage root like the primary (idempotent); refuse another format."""
    declaration = root_declaration()
    config = f"extensions/{EMERITUS_EXTENSION}/config.json"
    if storage.exists(config):
        check_format(storage.read_bytes(config), storage.url)
        return
    for path, data in declaration.items():
        if path != config and not storage.exists(path):
            storage.write_bytes(path, data)
    storage.write_bytes(config, declaration[config])


def replicate(
    archive: Archive, *, progress: Callable[[int], Progress] | None = None
) -> list[Replication]:
    copies = archive.copies()
    replicas = [c for c in copies if c.role != "primary"]
    if not replicas:
        raise InvalidInput("no replicas: add one with `emeritus archive add-replica URL`")
    plans = []
    for replica in replicas:
        storage = archive.storage(replica)
        ensure_root(storage)
        for record in archive.objects():
            plans.append((replica, record.model, _missing(archive, storage, record.model)))
    total = sum(size for _, _, todo in plans for _, size in todo)
    advance = progress(total) if progress else None
    done = []
    for replica, model, todo in plans:
        done.append(_copy_object(archive, replica, model, todo, advance))
    return done


def _missing(archive: Archive, storage: Storage, model: str) -> list[tuple[str, int]]:
    """Content files (object-relative path, size) the replica lacks or holds at the wrong size."""
    record, reference, _ = archive.reference(model)
    path = object_root(record.object_id)
    present = {p[len(path) + 1 :] for p in storage.list(path + "/")}
    primary_dir = archive.primary.object_dir(record.object_id)
    todo = []
    for content in sorted(reference.content_paths()):
        size = (primary_dir / content).stat().st_size
        if content not in present or storage.size(f"{path}/{content}") != size:
            todo.append((content, size))
    return todo


def _copy_object(
    archive: Archive,
    replica: CopyRecord,
    model: str,
    todo: list[tuple[str, int]],
    progress: Progress | None,
) -> Replication:
    record, reference, recorded = archive.reference(model)
    path = object_root(record.object_id)
    storage = archive.storage(replica)
    primary_dir = archive.primary.object_dir(record.object_id)
    result = Replication(replica.name, model)
    # Content of each version first, then that version's inventory; the root inventory and its
    # sidecar last: until they land, the replica still presents its previous head.
    metadata = expected_metadata(reference, recorded)
    if not storage.exists(f"{path}/{OBJECT_NAMASTE[0]}"):
        storage.write_bytes(f"{path}/{OBJECT_NAMASTE[0]}", metadata[OBJECT_NAMASTE[0]])
    for number in range(1, reference.head + 1):
        prefix = version_name(number) + "/"
        for content, size in todo:
            if content.startswith(prefix):
                storage.write_file(f"{path}/{content}", primary_dir / content, progress=progress)
                result.files.append(content)
                result.bytes += size
        for name in (f"{prefix}{INVENTORY}", f"{prefix}{SIDECAR}"):
            if _differs(storage, f"{path}/{name}", metadata[name]):
                storage.write_bytes(f"{path}/{name}", metadata[name])
                result.files.append(name)
    for name in (INVENTORY, SIDECAR):
        if _differs(storage, f"{path}/{name}", metadata[name]):
            storage.write_bytes(f"{path}/{name}", metadata[name])
            result.files.append(name)
    # Fixity is checked after every replication: structure, and the digests of what was copied.
    report = check_object_on(archive, model, replica, full=True, only=[c for c, _ in todo])
    record_checks(archive, model, VerifyReport(model, False, [report]))
    _record(archive, replica, model, result, report)
    if not report.ok:
        raise IntegrityError(
            f"replicating {model} to {replica.name} left it damaged: "
            f"{report.problems[0]} (run emeritus repair {model})"
        )
    return result


def _record(
    archive: Archive, replica: CopyRecord, model: str, result: Replication, report: CopyReport
) -> None:
    with archive.store.transaction() as session:
        record = session.scalar(select(ObjectRecord).where(ObjectRecord.model == model))
        assert record is not None
        state = session.scalar(
            select(CopyState).where(
                CopyState.object_id == record.id, CopyState.copy_id == replica.id
            )
        )
        assert state is not None  # written by record_checks
        if report.ok:
            state.head = record.head
            state.replicated_at = utc_now()
        if result.files:
            append_event(
                session,
                kind="archive.replicated",
                subject=f"model:{model}",
                actor=archive.settings.actor,
                payload={
                    "copy": replica.name,
                    "url": replica.url,
                    "head": record.head,
                    "files": len(result.files),
                    "bytes": result.bytes,
                    "ok": report.ok,
                },
            )


def _differs(storage: Storage, path: str, data: bytes) -> bool:
    try:
        return storage.read_bytes(path) != data
    except FileNotFoundError:
        return True
