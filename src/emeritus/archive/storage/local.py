"""A storage root in a local directory.

A write goes to a temporary file in the target's directory, which is flushed and fsynced, renamed
over the target (atomic on POSIX) and then made durable by fsyncing the directory, and every
directory created on the way. Temporary files carry `TEMP_PREFIX`, are removed on failure, and
never appear in `list`; a crash can leave one behind, which `delete_tree` sweeps up.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from emeritus.archive.storage.base import CHUNK, Progress, Storage, check_path
from emeritus.errors import InvalidInput

TEMP_PREFIX = ".tmp-emeritus-"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pieces(source: Path) -> Iterator[bytes]:
    with source.open("rb") as handle:
        while piece := handle.read(CHUNK):
            yield piece


class LocalStorage(Storage):
    """A directory, named by "file:///abs/path" or a plain (absolute or relative) path. The
    directory is created on the first write."""

    scheme = "file"

    def __init__(self, url: str) -> None:
        if url[:5].lower() == "file:":
            parsed = urlsplit(url)
            if parsed.netloc not in ("", "localhost") or parsed.query or parsed.fragment:
                raise InvalidInput(f"bad file URL {url!r}: expected file:///absolute/path")
            root = Path(unquote(parsed.path))
        else:
            root = Path(url)
        if not str(root):
            raise InvalidInput(f"bad file URL {url!r}: no path")
        self.root = root.expanduser().resolve()
        self.url = self.root.as_uri()

    def __repr__(self) -> str:
        return f"LocalStorage({self.url!r})"

    def _path(self, path: str) -> Path:
        checked = check_path(path)
        if checked.rsplit("/", 1)[-1].startswith(TEMP_PREFIX):
            raise InvalidInput(f"bad storage path {path!r}: {TEMP_PREFIX}* names are reserved")
        return self.root / checked

    def local_path(self, path: str) -> Path | None:
        return self._path(path)

    def read_bytes(self, path: str) -> bytes:
        with self.open_read(path) as handle:
            return handle.read()

    @contextlib.contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        target = self._path(path)
        try:
            handle = target.open("rb")
        except (IsADirectoryError, NotADirectoryError):
            # Only a prefix of other files (or below a file): not a file, as on S3.
            raise FileNotFoundError(f"no file {path!r} in {self.url}") from None
        with handle:
            yield handle

    def _write(self, path: str, pieces: Iterable[bytes], progress: Progress | None) -> None:
        target = self._path(path)
        created = []  # directories this write creates, deepest first: their parents need fsync
        parent = target.parent
        while not parent.exists():
            created.append(parent)
            parent = parent.parent
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
        try:
            with temp.open("xb") as out:
                for piece in pieces:
                    out.write(piece)
                    if progress is not None:
                        progress(len(piece))
                out.flush()
                os.fsync(out.fileno())
            temp.replace(target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        for directory in [target.parent, *(d.parent for d in created)]:
            _fsync_dir(directory)

    def write_bytes(self, path: str, data: bytes) -> None:
        self._write(path, [data], None)

    def write_file(self, path: str, source: Path, *, progress: Progress | None = None) -> None:
        self._path(path)  # refuse a bad path before touching the source
        self._write(path, _pieces(source), progress)

    def exists(self, path: str) -> bool:
        return self._path(path).is_file()

    def size(self, path: str) -> int:
        target = self._path(path)
        if not target.is_file():
            raise FileNotFoundError(f"no file {path!r} in {self.url}")
        return target.stat().st_size

    def list(self, prefix: str = "") -> list[str]:
        checked = check_path(prefix, prefix=True)
        start = self.root / checked if checked else self.root
        if start.is_file():
            return [checked]
        found: list[str] = []
        for directory, _dirs, files in os.walk(start):  # a missing start yields nothing
            base = Path(directory).relative_to(self.root).as_posix()
            found.extend(
                name if base == "." else f"{base}/{name}"
                for name in files
                if not name.startswith(TEMP_PREFIX)
            )
        return sorted(found)

    def delete(self, path: str) -> None:
        target = self._path(path)
        # A directory is not a file: like a missing one, nothing to delete.
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
            target.unlink()

    def delete_tree(self, prefix: str) -> None:
        checked = check_path(prefix, prefix=True)
        if not checked:
            raise InvalidInput(f"refusing to delete the whole storage root {self.url}")
        start = self.root / checked
        if start.is_dir() and not start.is_symlink():
            with contextlib.suppress(FileNotFoundError):  # a concurrent delete got there first
                shutil.rmtree(start)
        else:
            self.delete(checked)
