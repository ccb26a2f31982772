"""Repair: replace what is damaged, missing or stray on any copy with bytes from another copy whose
digest matches the inventory recorded at ingest, then check again."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emeritus.archive.check import Problem, expected_metadata
from emeritus.archive.fixity import VerifyReport, check_object_on, record_checks, verify
from emeritus.archive.fsops import locked
from emeritus.archive.ocfl import LOCKS, object_root
from emeritus.archive.service import Archive
from emeritus.archive.tables import CopyRecord
from emeritus.errors import IntegrityError

Progress = Callable[[int], None]


@dataclass
class RepairReport:
    model: str
    fixed: list[Problem] = field(default_factory=list)
    unrepaired: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.unrepaired

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "ok": self.ok,
            "fixed": [p.to_dict() for p in self.fixed],
            "unrepaired": [p.to_dict() for p in self.unrepaired],
        }


def repair_copies(
    archive: Archive, model: str, *, progress: Callable[[int], Progress] | None = None
) -> RepairReport:
    record, reference, recorded = archive.reference(model)
    path = object_root(record.object_id)
    key = path.rsplit("/", 1)[1]
    copies = {c.name: c for c in archive.copies()}
    with locked(archive.primary.root / LOCKS / f"{key}.lock"):  # no writer commits meanwhile
        before = verify(archive, model, full=True, progress=progress)
        result = RepairReport(model)
        metadata = expected_metadata(reference, recorded)
        content = reference.content_paths()
        # Content before inventories, so a copy never lists what it does not yet hold.
        ordered = sorted(before.problems, key=lambda p: (p.path in metadata, p.path))
        for problem in ordered:
            copy = copies[problem.copy]
            storage = archive.storage(copy)
            target = f"{path}/{problem.path}" if problem.path else path
            if problem.kind == "stray":
                storage.delete(target)
            elif problem.path in metadata:
                storage.write_bytes(target, metadata[problem.path])
            elif problem.path in content:
                if not _copy_good(
                    archive,
                    f"{path}/{problem.path}",
                    content[problem.path],
                    copy,
                    list(copies.values()),
                ):
                    result.unrepaired.append(problem)
                    continue
            elif problem.path == "":  # the whole object is missing from this copy
                for name, data in sorted(metadata.items()):
                    storage.write_bytes(f"{path}/{name}", data)
                missing = [p for p in content if not storage.exists(f"{path}/{p}")]
                if not all(
                    _copy_good(archive, f"{path}/{p}", content[p], copy, list(copies.values()))
                    for p in missing
                ):
                    result.unrepaired.append(problem)
                    continue
            else:
                result.unrepaired.append(problem)
                continue
            result.fixed.append(problem)
        touched = {p.copy for p in result.fixed}
        after = VerifyReport(
            model,
            False,
            [
                check_object_on(
                    archive,
                    model,
                    copies[name],
                    full=True,
                    only=[p.path for p in result.fixed if p.copy == name],
                )
                for name in sorted(touched)
            ],
        )
        record_checks(archive, model, after)
        for problem in after.problems:
            if problem not in result.unrepaired:
                result.unrepaired.append(problem)
    archive.store.record(
        "archive.repaired",
        f"model:{model}",
        payload=result.to_dict(),
    )
    if not result.ok:
        raise IntegrityError(
            f"{model}: could not repair {result.unrepaired[0]}: no copy holds an "
            "intact version of it"
        )
    return result


def _copy_good(
    archive: Archive, path: str, sha512: str, target: CopyRecord, copies: list[CopyRecord]
) -> bool:
    """Copy `path` onto `target` from another copy whose bytes hash to `sha512`."""
    for source in copies:
        if source.name == target.name:
            continue
        with tempfile.TemporaryDirectory(prefix="emeritus-repair-") as tmp:
            local = Path(tmp) / "file"
            digest = hashlib.sha512()
            try:
                with archive.storage(source).open_read(path) as handle, local.open("wb") as out:
                    while chunk := handle.read(8 << 20):
                        digest.update(chunk)
                        out.write(chunk)
            except FileNotFoundError:
                continue
            if digest.hexdigest() != sha512:
                continue  # this copy is damaged too: never spread it
            archive.storage(target).write_file(path, local)
            return True
    return False
