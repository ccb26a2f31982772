"""The storage backend interface (`Storage`) and the path rules every backend shares."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

from emeritus.errors import InvalidInput

Progress = Callable[[int], None]
CHUNK = 8 << 20  # bytes per streamed piece; also the S3 multipart part size (>= 5 MiB)


def check_path(path: str, *, prefix: bool = False, what: str = "storage path") -> str:
    """Return `path` if it stays inside the root, else raise `InvalidInput` naming it.

    A path is relative and '/'-separated, with no empty, '.' or '..' segment, no backslash (a
    separator elsewhere) and no NUL. With `prefix=True` the empty string (the whole root) and one
    trailing '/' are accepted too; the result then has no trailing '/'.
    """
    trimmed = path
    if prefix:
        if path == "":
            return ""
        trimmed = path.removesuffix("/")
    if (
        not trimmed
        or trimmed.startswith("/")
        or "\\" in trimmed
        or "\x00" in trimmed
        or any(segment in ("", ".", "..") for segment in trimmed.split("/"))
    ):
        raise InvalidInput(
            f"bad {what} {path!r}: must be relative and '/'-separated, "
            "without '.', '..', empty segments, backslashes or NUL"
        )
    return trimmed


class Storage(ABC):
    """One storage root, local or remote. Every backend keeps this contract, and one conformance
    suite (tests/test_storage_conformance.py) checks it for each of them.

    Paths are relative to the root and '/'-separated. Absolute paths, '.', '..' and empty
    segments, backslashes and NUL are refused with `InvalidInput` before any I/O, so no path can
    escape the root. A path names a file; "directories" exist only as prefixes of file paths, and a
    path must not be both a file and the prefix of another file.

    Atomicity and idempotency (the replication order relies on both): a write makes the whole new
    content visible at once or leaves the previous state (no partial file, no stray temporary
    file); writing the same content again is harmless, so an interrupted operation is completed by
    simply redoing it. `delete` and `delete_tree` of what is not there succeed.

    Freshness: `exists`, `size` and `list` report the state after the last completed write or
    delete, from this or any other `Storage` on the same root (no stale cached listing).

    Errors: a missing file (or a path that is only a prefix) raises the builtin
    `FileNotFoundError`. Transient failures (a reset connection, a timeout, a 5xx, throttling)
    are retried inside the backend with exponential backoff and raised only once the attempts are
    spent; permanent ones (missing, permission denied, a bad path or URL) are raised at once.

    A backend is constructed from its URL (`Backend(url)`) and registered under its URL scheme
    in the `emeritus.storage` entry point group; `open_storage` finds it there.
    """

    url: str
    """Canonical URL of the root: "file:///abs/path" or "s3://bucket/prefix"."""
    scheme: str
    """The URL scheme this backend is registered under: "file", "s3", ..."""

    @abstractmethod
    def __init__(self, url: str) -> None:
        """Open the root named by `url` without any I/O; refuse a malformed URL (`InvalidInput`)."""

    @abstractmethod
    def read_bytes(self, path: str) -> bytes:
        """The whole content of the file; `FileNotFoundError` if there is none."""

    @abstractmethod
    def open_read(self, path: str) -> AbstractContextManager[BinaryIO]:
        """A binary stream of the file, for reading big files in pieces; `FileNotFoundError`
        (raised on entry at the latest) if there is none."""

    @abstractmethod
    def write_bytes(self, path: str, data: bytes) -> None:
        """Create or replace the file with `data`, atomically: the whole file becomes visible at
        once, or the previous state remains. Idempotent. Parent "directories" need not exist."""

    @abstractmethod
    def write_file(self, path: str, source: Path, *, progress: Progress | None = None) -> None:
        """Copy the local file `source` in, streamed in pieces, atomically like `write_bytes`.

        `progress(n)` is called after each piece with its size in bytes; over a whole call the
        sizes add up to the size of `source` (a retried upload does not count bytes twice). If
        `source` is missing, or reading it or `progress` raises, that error propagates and the
        target is left as it was.
        """

    @abstractmethod
    def exists(self, path: str) -> bool:
        """Whether a file is there (a path that is only a prefix of files is not)."""

    @abstractmethod
    def size(self, path: str) -> int:
        """The file's size in bytes; `FileNotFoundError` if there is none."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Every file at or under `prefix` (recursive), as sorted root-relative paths.

        `prefix` is a path or "" for the whole root; one trailing '/' is allowed and changes
        nothing: "a" and "a/" both mean "a" itself and everything below "a/", never "ab". Empty if
        nothing is there. Never stale; never shows a backend's temporary files.
        """

    @abstractmethod
    def delete(self, path: str) -> None:
        """Remove the file; nothing to do if it is missing (idempotent)."""

    @abstractmethod
    def delete_tree(self, prefix: str) -> None:
        """Remove every file `list(prefix)` would return; idempotent. The whole root ("") is
        refused with `InvalidInput`: wiping a storage root is never a side effect of a bug."""

    def local_path(self, path: str) -> Path | None:
        """The file's path on the local filesystem (for mmap, hard links), or None for a remote
        backend. The path is checked but need not exist."""
        check_path(path)
        return None
