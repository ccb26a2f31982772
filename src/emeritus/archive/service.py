"""The archive as the rest of emeritus sees it: copies, objects, and the operations on them.

The filesystem is committed first, the database after; every operation is idempotent, so a crash
between the two is healed by running it again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from emeritus import __version__
from emeritus.archive.check import TensorMap
from emeritus.archive.intake import collect
from emeritus.archive.ocfl import (
    INVENTORY,
    Inventory,
    object_id,
    object_root,
    sha512_hex,
    version_name,
)
from emeritus.archive.storage import Storage, open_storage
from emeritus.archive.tables import CopyRecord, CopyState, ObjectRecord, VersionRecord
from emeritus.archive.writer import Commit, Incoming, PrimaryRoot, Stored
from emeritus.errors import Conflict, IntegrityError, InvalidInput, NotFound
from emeritus.formats import TensorInfo, tensor_inventory
from emeritus.lifecycle import Registry
from emeritus.store import Store, append_event, canonical_json, iso, utc_now

Progress = Callable[[int], None]
PRIMARY = "primary"


@dataclass(frozen=True)
class PreserveResult:
    model: str
    object_id: str
    version: int
    changed: bool
    files: list[Stored]
    bytes_read: int
    seconds: float
    tensors: int
    formats: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "object_id": self.object_id,
            "version": self.version,
            "changed": self.changed,
            "bytes": self.bytes_read,
            "seconds": round(self.seconds, 3),
            "tensors": self.tensors,
            "files": [
                {
                    "path": f.logical,
                    "role": f.role,
                    "size": f.size,
                    "sha256": f"sha256:{f.sha256}",
                    "sha512": f"sha512:{f.sha512}",
                    "new": f.new,
                }
                for f in self.files
            ],
        }


class Archive:
    """The archive of one emeritus installation: its primary copy and its replicas."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.settings = store.settings
        self.primary = PrimaryRoot(self.settings.archive_dir)
        self._storages: dict[str, Storage] = {}
        self._references: dict[str, tuple[ObjectRecord, Inventory, dict[int, bytes]]] = {}

    # -- copies -----------------------------------------------------------------------------

    def copies(self) -> list[CopyRecord]:
        with self.store.transaction() as session:
            self._ensure_primary(session)
            return list(session.scalars(select(CopyRecord).order_by(CopyRecord.id)))

    def add_replica(
        self, url: str, *, name: str | None = None, location: str | None = None
    ) -> CopyRecord:
        storage = open_storage(url)  # refuses an unknown scheme or a bad path
        with self.store.transaction() as session:
            self._ensure_primary(session)
            if session.scalar(select(CopyRecord).where(CopyRecord.url == storage.url)):
                raise Conflict(f"{storage.url} is already a copy of this archive")
            count = len(list(session.scalars(select(CopyRecord.id))))
            name = name or f"replica-{count}"
            if session.scalar(select(CopyRecord).where(CopyRecord.name == name)):
                raise Conflict(f"a copy named {name!r} already exists")
            record = CopyRecord(
                name=name,
                url=storage.url,
                role="replica",
                location=location or _default_location(storage),
                created_at=utc_now(),
            )
            session.add(record)
            session.flush()
            append_event(
                session,
                kind="archive.copy_added",
                subject=f"copy:{name}",
                actor=self.settings.actor,
                payload={"url": storage.url, "location": record.location},
            )
            return record

    def storage(self, copy: CopyRecord) -> Storage:
        if copy.url not in self._storages:
            self._storages[copy.url] = open_storage(copy.url)
        return self._storages[copy.url]

    def _ensure_primary(self, session: Session) -> CopyRecord:
        primary = session.scalar(select(CopyRecord).where(CopyRecord.role == PRIMARY))
        url = self.settings.archive_dir.as_uri()
        if primary is None:
            primary = CopyRecord(
                name=PRIMARY, url=url, role=PRIMARY, location="local", created_at=utc_now()
            )
            session.add(primary)
            session.flush()
        elif primary.url != url:
            raise Conflict(
                f"this database's primary archive is {primary.url}, not {url} "
                "(check EMERITUS_ARCHIVE)"
            )
        return primary

    # -- objects ----------------------------------------------------------------------------

    def objects(self) -> list[ObjectRecord]:
        with self.store.transaction() as session:
            return list(session.scalars(select(ObjectRecord).order_by(ObjectRecord.model)))

    def object(self, model: str) -> ObjectRecord:
        with self.store.transaction() as session:
            record = session.scalar(select(ObjectRecord).where(ObjectRecord.model == model))
            if record is None:
                raise NotFound(f"{model} is not preserved (see `emeritus preserve`)")
            return record

    def reference(self, model: str) -> tuple[ObjectRecord, Inventory, dict[int, bytes]]:
        """The object's inventory as recorded at ingest, and every version inventory's bytes,
        taken from the first copy whose bytes match the recorded digests."""
        record = self.object(model)
        cached = self._references.get(model)
        if cached is not None and cached[0].head == record.head:
            return cached  # versions are write-once: the same head means the same inventories
        recorded: dict[int, bytes] = {}
        path = object_root(record.object_id)
        copies = self.copies()
        for version in record.versions:
            name = f"{path}/{version_name(version.number)}/{INVENTORY}"
            for copy in copies:
                try:
                    data = self.storage(copy).read_bytes(name)
                except FileNotFoundError:
                    continue
                if sha512_hex(data) == version.inventory_sha512:
                    recorded[version.number] = data
                    break
            else:
                raise IntegrityError(
                    f"{model}: no copy holds an intact inventory of {version_name(version.number)}"
                )
        result = (record, Inventory.from_bytes(recorded[record.head]), recorded)
        self._references[model] = result
        return result

    def read_logical(self, model: str, logical: str, *, version: int | None = None) -> bytes:
        """One file of a preserved model, from the first copy whose digest matches."""
        record, inventory, _ = self.reference(model)
        state = inventory.versions[version or inventory.head].logical_paths()
        if logical not in state:
            raise NotFound(f"{model} has no file {logical!r}")
        content = inventory.content_path_of(state[logical])
        for copy in self.copies():
            try:
                data = self.storage(copy).read_bytes(f"{object_root(record.object_id)}/{content}")
            except FileNotFoundError:
                continue
            if sha512_hex(data) == state[logical]:
                return data
        raise IntegrityError(f"{model}: no copy holds an intact {logical}")

    def logical_files(self, model: str) -> list[str]:
        """Every file of the model's newest version, by logical path."""
        return sorted(self.reference(model)[1].head_state())

    def content_file(self, model: str, logical: str) -> Path:
        """Where a file of the newest version lies on the primary copy, for readers that open it
        in place (the runtime memory-maps weights from here: no copy)."""
        record, inventory, _ = self.reference(model)
        state = inventory.head_state()
        if logical not in state:
            raise NotFound(f"{model} has no file {logical!r}")
        path = self.primary.object_dir(record.object_id) / inventory.content_path_of(state[logical])
        if not path.is_file():
            raise IntegrityError(
                f"{model}: {logical} is missing on the primary copy (run emeritus repair {model})"
            )
        return path

    def check_content(self, model: str, logical: str) -> str | None:
        """None when the primary copy's file of the newest version holds the bytes its inventory
        records (sha512, read whole); else the problem in one line. A managed engine's files
        are checked so before it starts (docs/design/engines.md)."""
        try:
            path = self.content_file(model, logical)
        except (IntegrityError, NotFound) as exc:
            return str(exc)
        expected = self.reference(model)[1].head_state()[logical]
        digest = hashlib.sha512()
        with path.open("rb") as handle:
            while block := handle.read(1 << 22):
                digest.update(block)
        if digest.hexdigest() != expected:
            return (
                f"{logical} fails its fixity check on the primary copy "
                f"(run emeritus repair {model})"
            )
        return None

    def tensor_maps(self, model: str, inventory: Inventory) -> dict[str, TensorMap]:
        """content path of each weight file -> its recorded tensors."""
        state = inventory.head_state()
        maps = {}
        for logical in sorted(state):
            if not logical.startswith("emeritus/tensors/"):
                continue
            document = json.loads(self.read_logical(model, logical))
            weights = "weights/" + logical.removeprefix("emeritus/tensors/").removesuffix(".json")
            if weights not in state:
                continue
            tensors = tuple(
                TensorInfo(t["name"], t["dtype"], tuple(t["shape"]), t["offset"], t["length"])
                for t in document["tensors"]
            )
            maps[inventory.content_path_of(state[weights])] = TensorMap(
                tensors, {t["name"]: t["sha256"] for t in document["tensors"]}
            )
        return maps

    # -- preserve ---------------------------------------------------------------------------

    def preserve(
        self,
        model: str,
        paths: Sequence[Path],
        *,
        progress: Callable[[int], Progress] | None = None,
    ) -> PreserveResult:
        """Validate and ingest a model's files as a new version of its object (v1 the first
        time). Files identical to the preserved ones change nothing; different weights under the
        same name are refused: that is another model release. Only a registered model is
        preserved (NotFound otherwise, before any file is read)."""
        Registry(self.store).get(model)
        incoming = collect(paths)
        total = sum(i.source.stat().st_size for i in incoming if isinstance(i.source, Path))
        oid = object_id(model)
        existing = self.primary.read_inventory(oid)
        previous = self._object_document(model) if existing else None
        now = utc_now()

        def derive(stored: list[Stored]) -> list[Incoming]:
            if existing is not None:
                head = existing.head_state()
                changed = [
                    s.logical
                    for s in stored
                    if s.role == "weights" and s.logical in head and head[s.logical] != s.sha512
                ]
                if changed:
                    raise Conflict(
                        f"{model} is already preserved with other weights "
                        f"({', '.join(changed)}): preserve them as a new model"
                    )
            return _describe(model, oid, incoming, stored, previous, now)

        started = time.perf_counter()
        commit = self.primary.commit(
            oid,
            incoming,
            message=f"preserve {model}",
            user=self.settings.actor,
            now=now,
            derive=derive,
            progress=progress(total) if progress else None,
            skip_if_unchanged=True,
        )
        seconds = time.perf_counter() - started
        self._record_commit(model, commit, now)
        tensors = sum(len(i.weights.tensors) for i in incoming if i.weights)
        formats: dict[str, int] = {}
        for item in incoming:
            if item.weights:
                formats[item.weights.format] = formats.get(item.weights.format, 0) + 1
        return PreserveResult(
            model,
            oid,
            commit.inventory.head,
            commit.changed,
            commit.stored,
            total,
            seconds,
            tensors,
            formats,
        )

    def add_files(self, model: str, files: dict[str, bytes], *, message: str) -> int:
        """Add files (fingerprints, transcripts, reports) to a preserved model as a new version;
        returns the version number. Earlier versions are never rewritten."""
        self.object(model)
        incoming = [Incoming(logical, data) for logical, data in sorted(files.items())]
        now = utc_now()
        commit = self.primary.commit(
            object_id(model), incoming, message=message, user=self.settings.actor, now=now
        )
        self._record_commit(model, commit, now)
        return commit.inventory.head

    def _object_document(self, model: str) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self.read_logical(model, "emeritus/object.json")))
        except NotFound:
            return None

    def _record_commit(self, model: str, commit: Commit, now: datetime) -> None:
        """Record a committed version (idempotent: a rerun after a crash fills in what the
        database missed)."""
        inventory = commit.inventory
        with self.store.transaction() as session:
            primary = self._ensure_primary(session)
            record = session.scalar(select(ObjectRecord).where(ObjectRecord.model == model))
            if record is None:
                record = ObjectRecord(
                    model=model,
                    object_id=inventory.id,
                    head=0,
                    size=0,
                    files=0,
                    created_at=now,
                    updated_at=now,
                )
                session.add(record)
                session.flush()
            known = {v.number for v in record.versions}
            if inventory.head in known and not commit.changed:
                return
            for number in range(1, inventory.head + 1):
                if number in known:
                    continue
                data = _version_bytes(self.primary.object_dir(inventory.id), number)
                session.add(
                    VersionRecord(
                        object_id=record.id,
                        number=number,
                        inventory_sha512=sha512_hex(data),
                        message=inventory.versions[number].message,
                        created_at=now,
                    )
                )
            object_dir = self.primary.object_dir(inventory.id)
            record.head = inventory.head
            record.files = len(inventory.head_state())
            record.size = sum((object_dir / p).stat().st_size for p in inventory.content_paths())
            record.updated_at = now
            state = self._state(session, record, primary)
            state.head = inventory.head
            append_event(
                session,
                kind="archive.ingested",
                subject=f"model:{model}",
                actor=self.settings.actor,
                payload={
                    "object_id": inventory.id,
                    "version": inventory.head,
                    "inventory_sha512": f"sha512:{commit.inventory_sha512}",
                    "files": [
                        {
                            "path": s.logical,
                            "size": s.size,
                            "sha256": f"sha256:{s.sha256}",
                            "sha512": f"sha512:{s.sha512}",
                        }
                        for s in commit.stored
                    ],
                },
            )

    def _state(self, session: Session, record: ObjectRecord, copy: CopyRecord) -> CopyState:
        state = session.scalar(
            select(CopyState).where(CopyState.object_id == record.id, CopyState.copy_id == copy.id)
        )
        if state is None:
            state = CopyState(object_id=record.id, copy_id=copy.id)
            session.add(state)
            session.flush()
        return state

    # -- restore ----------------------------------------------------------------------------

    def restore(
        self,
        model: str,
        dest: Path,
        *,
        version: int | None = None,
        progress: Callable[[int], Progress] | None = None,
    ) -> list[Path]:
        """Write a version's files under `dest`, bit-exact (each digest checked as it is read,
        falling back to another copy on a mismatch); `dest` appears whole or not at all."""
        record, inventory, _ = self.reference(model)
        number = version or inventory.head
        if number not in inventory.versions:
            raise NotFound(f"{model} has no version v{number} (head is v{inventory.head})")
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise Conflict(f"{dest} exists and is not empty")
        state = inventory.versions[number].logical_paths()
        sizes = _sizes(self, record, inventory)
        advance = progress(sum(sizes.get(d, 0) for d in state.values())) if progress else None
        dest.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
        try:
            for logical, digest in sorted(state.items()):
                content = f"{object_root(record.object_id)}/{inventory.content_path_of(digest)}"
                self._fetch_verified(content, digest, staging / logical, advance)
            if dest.exists():
                dest.rmdir()
            staging.rename(dest)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self.store.record(
            "archive.restored",
            f"model:{model}",
            payload={"version": number, "dest": str(dest), "files": len(state)},
        )
        return [dest / logical for logical in sorted(state)]

    def _fetch_verified(
        self, path: str, sha512: str, target: Path, progress: Progress | None
    ) -> CopyRecord:
        """Copy a content file to a local path from the first copy whose bytes match."""
        target.parent.mkdir(parents=True, exist_ok=True)
        for copy in self.copies():
            digest = hashlib.sha512()
            try:
                with self.storage(copy).open_read(path) as source, target.open("wb") as out:
                    while chunk := source.read(8 << 20):
                        digest.update(chunk)
                        out.write(chunk)
                        if progress is not None:
                            progress(len(chunk))
            except FileNotFoundError:
                continue
            if digest.hexdigest() == sha512:
                return copy
        target.unlink(missing_ok=True)
        raise IntegrityError(f"no copy holds an intact {path}")


def _describe(
    model: str,
    oid: str,
    incoming: Sequence[Incoming],
    stored: list[Stored],
    previous: dict[str, Any] | None,
    now: datetime,
) -> list[Incoming]:
    """emeritus/object.json and a tensor inventory per weight file."""
    derived = []
    entries = {f["path"]: f for f in (previous or {}).get("files", [])}
    for item, result in zip(incoming, stored, strict=True):
        entry: dict[str, Any] = {
            "path": item.logical,
            "role": item.role,
            "size": result.size,
            "sha256": f"sha256:{result.sha256}",
            "sha512": f"sha512:{result.sha512}",
        }
        if item.weights is not None and result.tensors is not None:
            name = item.logical.removeprefix("weights/")
            tensor_path = f"emeritus/tensors/{name}.json"
            document = tensor_inventory(item.weights, result.tensors)
            derived.append(Incoming(tensor_path, canonical_json(document).encode(), "inventory"))
            entry.update(
                format=item.weights.format,
                metadata=item.weights.metadata,
                tensors=len(item.weights.tensors),
                tensor_inventory=tensor_path,
            )
        entries[item.logical] = entry
    document = {
        "format": 1,
        "id": oid,
        "model": model,
        "created": iso(now),
        "emeritus": __version__,
        "files": [entries[k] for k in sorted(entries)],
    }
    derived.append(Incoming("emeritus/object.json", canonical_json(document).encode(), "inventory"))
    return derived


def _version_bytes(object_dir: Path, number: int) -> bytes:
    return (object_dir / version_name(number) / INVENTORY).read_bytes()


def _sizes(archive: Archive, record: ObjectRecord, inventory: Inventory) -> dict[str, int]:
    """sha512 -> size, from the primary where present (for progress totals only)."""
    sizes = {}
    for digest, paths in inventory.manifest.items():
        path = archive.primary.object_dir(record.object_id) / paths[0]
        if path.exists():
            sizes[digest] = path.stat().st_size
    return sizes


def _default_location(storage: Storage) -> str:
    if storage.scheme == "s3":
        return storage.url.split("/")[2]  # the bucket
    return "local"


def parse_subset(text: str) -> tuple[int, int]:
    """`N/T`: the N-th of T slices (1-based), as in restic's --read-data-subset."""
    try:
        n_text, t_text = text.split("/")
        n, t = int(n_text), int(t_text)
    except ValueError:
        raise InvalidInput(f"bad subset {text!r}: expected N/T, e.g. 3/30") from None
    if not 1 <= n <= t:
        raise InvalidInput(f"bad subset {text!r}: N must be between 1 and T")
    return n, t
