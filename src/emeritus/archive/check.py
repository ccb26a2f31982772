"""Checking one object on one copy: structure always, every digest with `full`.

The reference inventory (the one whose digest was recorded at ingest) says what must be there;
a copy's own inventory is itself one of the things checked.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from emeritus.archive.ocfl import (
    INVENTORY,
    OBJECT_NAMASTE,
    SIDECAR,
    Inventory,
    root_files,
    sidecar_text,
    version_name,
)
from emeritus.archive.storage import Storage
from emeritus.errors import EmeritusError
from emeritus.formats import TensorHasher, TensorInfo

CHUNK = 8 << 20


@dataclass(frozen=True)
class Problem:
    """One defect of one file of an object on one copy."""

    copy: str
    path: str  # relative to the object root
    kind: str  # missing | stray | damaged | inventory | namaste
    detail: str

    def __str__(self) -> str:
        return f"{self.copy}: {self.path}: {self.detail}"

    def to_dict(self) -> dict[str, str]:
        return {"copy": self.copy, "path": self.path, "kind": self.kind, "detail": self.detail}


@dataclass(frozen=True)
class TensorMap:
    """The recorded tensors of one weight file, to say which tensor a damaged byte belongs to."""

    tensors: tuple[TensorInfo, ...]
    digests: Mapping[str, str]


def expected_metadata(reference: Inventory, recorded: Mapping[int, bytes]) -> dict[str, bytes]:
    """The exact bytes every inventory and sidecar of the object must have."""
    files = {OBJECT_NAMASTE[0]: OBJECT_NAMASTE[1].encode()}
    for number, data in recorded.items():
        sidecar = sidecar_text(data).encode()
        files[f"{version_name(number)}/{INVENTORY}"] = data
        files[f"{version_name(number)}/{SIDECAR}"] = sidecar
        if number == reference.head:
            files[INVENTORY], files[SIDECAR] = data, sidecar
    return files


def check_copy(
    storage: Storage,
    object_path: str,
    copy: str,
    reference: Inventory,
    recorded: Mapping[int, bytes],
    *,
    full: bool,
    tensor_maps: Mapping[str, TensorMap] | None = None,
    only: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> list[Problem]:
    """Every defect of the object at `object_path` on this copy, compared with `reference`
    (whose version inventories' bytes are `recorded`). `only` limits the digest checks to some
    content paths (used after a repair or a replication)."""
    problems: list[Problem] = []
    present = set(storage.list(object_path + "/"))
    prefix = len(object_path) + 1
    present = {p[prefix:] for p in present}
    content = reference.content_paths()
    expected = set(root_files(list(content), reference.head))
    for path in sorted(expected - present):
        problems.append(Problem(copy, path, "missing", "missing"))
    for path in sorted(present - expected):
        problems.append(Problem(copy, path, "stray", "stray file, not in the inventory"))
    for path, data in sorted(expected_metadata(reference, recorded).items()):
        if path not in present:
            continue
        actual = storage.read_bytes(f"{object_path}/{path}")
        if actual != data:
            kind = "namaste" if path == OBJECT_NAMASTE[0] else "inventory"
            problems.append(
                Problem(copy, path, kind, "differs from the inventory recorded at ingest")
            )
    if not full:
        return problems
    sha256_of = reference.sha256_of()
    chosen = [p for p in sorted(content) if p in present and (only is None or p in only)]

    def check(path: str) -> str | None:
        return _digest_problem(
            storage,
            f"{object_path}/{path}",
            content[path],
            sha256_of.get(path),
            (tensor_maps or {}).get(path),
            progress,
        )

    # Files in parallel, one per core: hashlib releases the GIL on large buffers.
    with ThreadPoolExecutor(max_workers=max(1, min(len(chosen), os.cpu_count() or 1))) as pool:
        for path, detail in zip(chosen, pool.map(check, chosen), strict=True):
            if detail:
                problems.append(Problem(copy, path, "damaged", detail))
    return problems


def _digest_problem(
    storage: Storage,
    path: str,
    sha512: str,
    sha256: str | None,
    tensors: TensorMap | None,
    progress: Callable[[int], None] | None,
) -> str | None:
    """None when both digests match; otherwise what is wrong, down to the tensor when the
    file's tensor inventory is known (a second read, paid only for damaged files)."""
    h512, h256 = hashlib.sha512(), hashlib.sha256()
    with storage.open_read(path) as handle:
        while chunk := handle.read(CHUNK):
            h512.update(chunk)
            h256.update(chunk)
            if progress is not None:
                progress(len(chunk))
    if h512.hexdigest() == sha512 and (sha256 is None or h256.hexdigest() == sha256):
        return None
    detail = "sha512 differs from the inventory"
    if sha256 is not None and h256.hexdigest() != sha256:
        detail += " (sha256 too)"
    if tensors is None:
        return detail
    hasher = TensorHasher(tensors.tensors)
    offset = 0
    with storage.open_read(path) as handle:
        while chunk := handle.read(CHUNK):
            hasher.update(offset, chunk)
            offset += len(chunk)
    try:
        digests = hasher.digests()
    except (EmeritusError, ValueError):
        return f"{detail}; truncated or extended: {offset:,} bytes"
    damaged = sorted(n for n, d in digests.items() if tensors.digests.get(n) != d)
    if not damaged:
        return f"{detail}; all tensors intact: the damage is in the header or padding"
    shown = ", ".join(damaged[:5]) + (f" and {len(damaged) - 5} more" if len(damaged) > 5 else "")
    return f"{detail}; damaged tensors: {shown}"
