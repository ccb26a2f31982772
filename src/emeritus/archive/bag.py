"""BagIt export: a preserved version as a bag (RFC 8493) that any BagIt tool can validate."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from emeritus import __version__
from emeritus.archive.service import Archive, Progress
from emeritus.errors import Conflict, IntegrityError
from emeritus.store import iso, utc_now


def export_bag(
    archive: Archive,
    model: str,
    dest: Path,
    *,
    version: int | None = None,
    progress: Progress | None = None,
) -> Path:
    """Restore the version (digests checked), bag it with sha256 and sha512 manifests, validate
    the bag fully, cross-check its manifest against the archive, then move it into place."""
    import bagit

    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise Conflict(f"{dest} exists and is not empty")
    record, inventory, _ = archive.reference(model)
    number = version or inventory.head
    dest.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dest.name}.bag-", dir=dest.parent))
    try:
        bag_dir = work / "bag"
        archive.restore(
            model, bag_dir, version=number, progress=(lambda _total: progress) if progress else None
        )
        bag = bagit.make_bag(
            str(bag_dir),
            checksums=["sha256", "sha512"],
            bag_info={
                "External-Identifier": record.object_id,
                "External-Description": f"{model}, version v{number}, exported from an OCFL object",
                "Bagging-Date": iso(utc_now())[:10],
                "Bag-Software-Agent": f"emeritus {__version__}",
            },
        )
        try:
            bag.validate(fast=False)
        except bagit.BagValidationError as exc:
            raise IntegrityError(f"the exported bag does not validate: {exc}") from None
        state = inventory.versions[number].logical_paths()
        for logical, digest in state.items():
            if bag.entries[f"data/{logical}"]["sha512"] != digest:
                raise IntegrityError(f"bag manifest disagrees with the archive on {logical}")
        if dest.exists():
            dest.rmdir()
        bag_dir.rename(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    archive.store.record(
        "archive.exported",
        f"model:{model}",
        payload={"format": "bagit", "version": number, "dest": str(dest), "files": len(state)},
    )
    return dest
