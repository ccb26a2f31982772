"""The primary copy's writer: staged, fsynced, committed by one atomic rename or exchange.

Write order and what a crash leaves: docs/design/archive-format.md, "Writing". Each source file is
read once; the same buffer feeds the staged copy, sha512, sha256 and the per-tensor digests.
"""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from emeritus.archive.fsops import exchange, fsync_tree, locked, make_dirs
from emeritus.archive.ocfl import (
    CONTENT,
    EMERITUS_EXTENSION,
    INVENTORY,
    LOCKS,
    OBJECT_NAMASTE,
    SIDECAR,
    STAGING,
    Inventory,
    check_format,
    check_logical_path,
    object_root,
    parse_sidecar,
    root_declaration,
    sha512_hex,
    sidecar_text,
    version_name,
)
from emeritus.errors import EmeritusError, IntegrityError
from emeritus.formats import TensorHasher, WeightsFile
from emeritus.store import atomic_write, fsync_path

CHUNK = 8 << 20
Progress = Callable[[int], None]


@dataclass(frozen=True)
class Incoming:
    """A file to add: its logical path in the object, and where its bytes come from."""

    logical: str
    source: Path | bytes
    role: str = "other"
    weights: WeightsFile | None = None


@dataclass(frozen=True)
class Stored:
    logical: str
    role: str
    size: int
    sha512: str  # bare hex, as in OCFL inventories
    sha256: str
    new: bool  # its content was stored by this version (not already in the object)
    tensors: dict[str, str] | None = None  # tensor name -> "sha256:..."


@dataclass(frozen=True)
class Commit:
    inventory: Inventory
    stored: list[Stored]
    changed: bool
    inventory_sha512: str


class PrimaryRoot:
    """The local storage root where objects are written."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def ensure(self) -> None:
        """Create the storage root on first use; refuse one written by a newer emeritus."""
        declaration = root_declaration()
        config = f"extensions/{EMERITUS_EXTENSION}/config.json"
        if (self.root / config).exists():
            check_format((self.root / config).read_bytes(), str(self.root))
            return
        make_dirs(self.root)
        if any(p.name != "extensions" for p in self.root.iterdir()):
            raise EmeritusError(f"{self.root} is not empty and not an emeritus archive")
        for path, data in declaration.items():  # the format config last: it marks completion
            if path != config:
                atomic_write(self.root / path, data)
        atomic_write(self.root / config, declaration[config])

    def object_dir(self, oid: str) -> Path:
        return self.root / object_root(oid)

    def read_inventory(self, oid: str) -> Inventory | None:
        """The committed inventory, checked against its sidecar; None if no such object."""
        live = self.object_dir(oid)
        if not live.exists():
            return None
        return load_inventory((live / INVENTORY).read_bytes(), (live / SIDECAR).read_text(), oid)

    def commit(
        self,
        oid: str,
        incoming: Sequence[Incoming],
        *,
        message: str,
        user: str,
        now: datetime,
        derive: Callable[[list[Stored]], list[Incoming]] | None = None,
        progress: Progress | None = None,
        skip_if_unchanged: bool = False,
    ) -> Commit:
        """Write a new version holding `incoming` (plus what `derive` makes of the stored files)."""
        for item in incoming:
            check_logical_path(item.logical)
        self.ensure()
        live = self.object_dir(oid)
        key = live.name
        with locked(self.root / LOCKS / f"{key}.lock"):
            for stale in (self.root / STAGING).glob(f"{key}.*"):
                shutil.rmtree(stale)  # left by a writer that crashed; we hold the lock
            existing = self.read_inventory(oid)
            inventory = copy.deepcopy(existing) if existing else Inventory(id=oid)
            inventory.new_version(created=now, message=message, user=user)
            stage = self.root / STAGING / f"{key}.{uuid.uuid4().hex}"
            make_dirs(stage.parent)
            try:
                if existing:
                    _link_tree(live, stage, skip={INVENTORY, SIDECAR})
                else:
                    stage.mkdir()
                    (stage / OBJECT_NAMASTE[0]).write_text(OBJECT_NAMASTE[1])
                stored = self._ingest(stage, inventory, incoming, progress)
                if skip_if_unchanged and existing and _unchanged(existing, stored):
                    shutil.rmtree(stage)
                    return Commit(existing, stored, False, sha512_hex(existing.to_bytes()))
                if derive is not None:
                    stored += self._ingest(stage, inventory, derive(stored), None)
                _prune_empty(stage / version_name(inventory.head))
                data = inventory.to_bytes()
                sidecar = sidecar_text(data)
                for directory in (stage / version_name(inventory.head), stage):
                    directory.mkdir(exist_ok=True)
                    (directory / INVENTORY).write_bytes(data)
                    (directory / SIDECAR).write_text(sidecar)
                fsync_tree(stage)
                if existing:
                    exchange(stage, live)  # commit point: old and new swap atomically
                    fsync_path(live.parent)
                    fsync_path(stage.parent)
                    shutil.rmtree(stage)  # the old tree; its files live on as hard links
                else:
                    make_dirs(live.parent)
                    stage.rename(live)  # commit point
                    fsync_path(live.parent)
                    fsync_path(stage.parent)
            except BaseException:
                shutil.rmtree(stage, ignore_errors=True)
                raise
            return Commit(inventory, stored, True, parse_sidecar(sidecar))

    def _ingest(
        self,
        stage: Path,
        inventory: Inventory,
        incoming: Sequence[Incoming],
        progress: Progress | None,
    ) -> list[Stored]:
        vdir = version_name(inventory.head)
        workers = max(1, min(len(incoming), os.cpu_count() or 1))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            copied = list(
                pool.map(lambda item: _copy_in(stage / vdir / CONTENT, item, progress), incoming)
            )
        stored = []
        for item, (size, sha512, sha256, tensors) in zip(incoming, copied, strict=True):
            content_path = f"{vdir}/{CONTENT}/{item.logical}"
            new = inventory.add_file(item.logical, sha512, sha256, content_path)
            if not new:  # identical content is stored once
                (stage / content_path).unlink()
            stored.append(Stored(item.logical, item.role, size, sha512, sha256, new, tensors))
        return stored


def load_inventory(data: bytes, sidecar: str, oid: str | None = None) -> Inventory:
    if sha512_hex(data) != parse_sidecar(sidecar):
        raise IntegrityError("inventory does not match its sidecar digest")
    inventory = Inventory.from_bytes(data)
    if oid is not None and inventory.id != oid:
        raise IntegrityError(f"inventory is for {inventory.id!r}, not {oid!r}")
    return inventory


_lock = threading.Lock()


def _copy_in(
    content_dir: Path, item: Incoming, progress: Progress | None
) -> tuple[int, str, str, dict[str, str] | None]:
    """Copy one file into the staged content directory, digesting the same buffer as it goes."""
    target = content_dir / item.logical
    with _lock:  # several workers may create the same parent directories
        target.parent.mkdir(parents=True, exist_ok=True)
    h512, h256 = hashlib.sha512(), hashlib.sha256()
    tensors = TensorHasher(item.weights.tensors) if item.weights else None
    size = 0
    with target.open("wb") as out:
        if isinstance(item.source, bytes):
            h512.update(item.source)
            h256.update(item.source)
            out.write(item.source)
            size = len(item.source)
        else:
            expected = item.source.stat().st_size
            buffer = bytearray(CHUNK)
            view = memoryview(buffer)
            with item.source.open("rb") as src:
                while count := src.readinto(buffer):
                    chunk = view[:count]
                    h512.update(chunk)
                    h256.update(chunk)
                    if tensors is not None:
                        tensors.update(size, chunk)
                    out.write(chunk)
                    size += count
                    if progress is not None:
                        progress(count)
            if size != expected:
                raise EmeritusError(f"{item.source}: changed while it was being read")
        out.flush()
        os.fsync(out.fileno())
    return size, h512.hexdigest(), h256.hexdigest(), tensors.digests() if tensors else None


def _link_tree(source: Path, target: Path, *, skip: set[str]) -> None:
    """Recreate `source` under `target` with hard links: content is write-once, so sharing the
    inodes is safe and costs no copy."""
    for directory, _dirs, files in os.walk(source):
        relative = Path(directory).relative_to(source)
        (target / relative).mkdir(parents=True, exist_ok=True)
        for name in files:
            if relative == Path() and name in skip:
                continue
            os.link(Path(directory) / name, target / relative / name)


def _prune_empty(version_dir: Path) -> None:
    """OCFL forbids empty directories; deduplicated files can leave some behind."""
    if not version_dir.exists():
        return
    for directory, _dirs, _files in sorted(os.walk(version_dir), key=lambda w: -len(w[0])):
        path = Path(directory)
        if path != version_dir and not any(path.iterdir()):
            path.rmdir()


def _unchanged(existing: Inventory, stored: list[Stored]) -> bool:
    head = existing.head_state()
    return all(head.get(s.logical) == s.sha512 for s in stored)
