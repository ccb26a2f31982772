"""The storage backend interface: one storage root, local or remote.

The contract every backend keeps, checked by one conformance suite
(tests/test_storage_conformance.py):

- Paths are relative and '/'-separated; absolute paths, '.', '..', empty segments, backslashes
  and NUL are refused with `InvalidInput` before any I/O.
- `write_bytes` and `write_file` make the whole file visible at once or not at all; writing the
  same bytes again is harmless (idempotent).
- Reading, or asking the size of, a missing file raises the builtin `FileNotFoundError`.
- `list` returns every file under a prefix, recursively, sorted, as seen after the last write:
  no stale cached listing.
- `delete` and `delete_tree` are idempotent: deleting what is not there is not an error.
- Transient failures (a reset connection, a 5xx, throttling) are retried with backoff inside the
  backend; permanent ones (missing, forbidden, a bad path) are raised at once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

from emeritus.errors import InvalidInput

Progress = Callable[[int], None]


def check_path(path: str, *, allow_empty: bool = False) -> str:
    """Refuse a path that could escape the root."""
    if allow_empty and path in ("", "/"):
        return ""
    trimmed = path[:-1] if allow_empty and path.endswith("/") else path
    segments = trimmed.split("/")
    if (
        not trimmed
        or trimmed.startswith("/")
        or "\\" in trimmed
        or "\x00" in trimmed
        or any(s in ("", ".", "..") for s in segments)
    ):
        raise InvalidInput(f"bad storage path {path!r}: must be relative, without '.' or '..'")
    return trimmed


class Storage(ABC):
    """One storage root."""

    url: str
    scheme: str

    @abstractmethod
    def read_bytes(self, path: str) -> bytes: ...

    @abstractmethod
    def open_read(self, path: str) -> AbstractContextManager[BinaryIO]: ...

    @abstractmethod
    def write_bytes(self, path: str, data: bytes) -> None: ...

    @abstractmethod
    def write_file(self, path: str, source: Path, *, progress: Progress | None = None) -> None: ...

    @abstractmethod
    def exists(self, path: str) -> bool: ...

    @abstractmethod
    def size(self, path: str) -> int: ...

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]: ...

    @abstractmethod
    def delete(self, path: str) -> None: ...

    @abstractmethod
    def delete_tree(self, prefix: str) -> None: ...

    def local_path(self, path: str) -> Path | None:
        """The filesystem path, for backends that have one (mmap, hard links)."""
        return None


def chunks(source: Path, size: int = 8 << 20) -> Iterator[bytes]:
    with source.open("rb") as handle:
        while chunk := handle.read(size):
            yield chunk
