"""A storage root in a local directory: temporary file, fsync, rename, fsync the directory."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlparse

from emeritus.archive.storage.base import Progress, Storage, check_path, chunks
from emeritus.errors import InvalidInput

TEMP_PREFIX = ".tmp-emeritus-"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStorage(Storage):
    scheme = "file"

    def __init__(self, url: str) -> None:
        if url.startswith("file://"):
            parsed = urlparse(url)
            if parsed.netloc not in ("", "localhost"):
                raise InvalidInput(f"bad file URL {url!r}: only local paths are supported")
            root = Path(unquote(parsed.path))
        else:
            root = Path(url)
        self.root = root.expanduser().resolve()
        self.url = self.root.as_uri()

    def _path(self, path: str) -> Path:
        return self.root / check_path(path)

    def local_path(self, path: str) -> Path | None:
        return self._path(path)

    def read_bytes(self, path: str) -> bytes:
        return self._path(path).read_bytes()

    @contextlib.contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        with self._path(path).open("rb") as handle:
            yield handle

    def _write(self, path: str, pieces: Iterator[bytes], progress: Progress | None) -> None:
        target = self._path(path)
        created = []
        parent = target.parent
        while not parent.exists():
            created.append(parent)
            parent = parent.parent
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
        try:
            with temp.open("wb") as out:
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
        for directory in [target.parent, *(d.parent for d in reversed(created))]:
            _fsync_dir(directory)

    def write_bytes(self, path: str, data: bytes) -> None:
        self._write(path, iter([data]), None)

    def write_file(self, path: str, source: Path, *, progress: Progress | None = None) -> None:
        self._write(path, chunks(source), progress)

    def exists(self, path: str) -> bool:
        return self._path(path).is_file()

    def size(self, path: str) -> int:
        target = self._path(path)
        if not target.is_file():
            raise FileNotFoundError(str(target))
        return target.stat().st_size

    def list(self, prefix: str = "") -> list[str]:
        start = self.root / check_path(prefix, allow_empty=True) if prefix.strip("/") else self.root
        if start.is_file():
            return [prefix]
        found = []
        for directory, _dirs, files in os.walk(start):
            for name in files:
                if not name.startswith(TEMP_PREFIX):
                    found.append((Path(directory) / name).relative_to(self.root).as_posix())
        return sorted(found)

    def delete(self, path: str) -> None:
        self._path(path).unlink(missing_ok=True)

    def delete_tree(self, prefix: str) -> None:
        for path in self.list(prefix):
            self.delete(path)
