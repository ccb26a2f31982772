"""A storage root in S3-compatible object storage, through fsspec/s3fs.

The endpoint comes from the standard AWS_ENDPOINT_URL variable (botocore reads it), credentials
from the usual AWS variables or files. Each PUT is atomic per object, which is what the archive's
replication order relies on. s3fs caches listings: the cache is dropped around every write and
check so a listing never hides a file just written or shows one just deleted.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, TypeVar

import s3fs

from emeritus.archive.storage.base import Progress, Storage, check_path
from emeritus.errors import InvalidInput

T = TypeVar("T")
CHUNK = 8 << 20
_TRANSIENT = (ConnectionError, TimeoutError)


class S3Storage(Storage):
    scheme = "s3"
    retries = 4
    backoff = 0.5  # seconds, doubled per attempt; tests set it to 0

    def __init__(self, url: str, *, filesystem: s3fs.S3FileSystem | None = None) -> None:
        if not url.startswith("s3://"):
            raise InvalidInput(f"bad S3 URL {url!r}: expected s3://bucket/prefix")
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        if not bucket:
            raise InvalidInput(f"bad S3 URL {url!r}: no bucket")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.url = f"s3://{bucket}" + (f"/{self.prefix}" if self.prefix else "")
        self.fs = filesystem or s3fs.S3FileSystem(skip_instance_cache=True)

    def _key(self, path: str, *, allow_empty: bool = False) -> str:
        checked = check_path(path, allow_empty=allow_empty)
        parts = [p for p in (self.bucket, self.prefix, checked) if p]
        return "/".join(parts)

    def _retry(self, action: Callable[[], T]) -> T:
        """Retry transient failures with exponential backoff; permanent ones pass at once."""
        for attempt in range(self.retries):
            try:
                return action()
            except FileNotFoundError:
                raise
            except _TRANSIENT:
                if attempt == self.retries - 1:
                    raise
                time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    def read_bytes(self, path: str) -> bytes:
        key = self._key(path)
        data: bytes = self._retry(lambda: self.fs.cat_file(key))
        return data

    @contextlib.contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        key = self._key(path)
        handle = self._retry(lambda: self.fs.open(key, "rb", block_size=CHUNK))
        try:
            yield handle
        finally:
            handle.close()

    def write_bytes(self, path: str, data: bytes) -> None:
        key = self._key(path)
        self._retry(lambda: self.fs.pipe_file(key, data))
        self.fs.invalidate_cache()

    def write_file(self, path: str, source: Path, *, progress: Progress | None = None) -> None:
        key = self._key(path)
        if not source.is_file():
            raise FileNotFoundError(str(source))

        def upload() -> None:
            # A multipart upload becomes visible only when it completes: atomic per object. On a
            # failure the upload is aborted, never completed (a `with` block would complete it).
            out = self.fs.open(key, "wb", block_size=CHUNK)
            try:
                with source.open("rb") as src:
                    while chunk := src.read(CHUNK):
                        out.write(chunk)
                        if progress is not None:
                            progress(len(chunk))
            except BaseException:
                out.discard()
                out.closed = True  # nothing left to commit when it is collected
                raise
            out.close()

        self._retry(upload)
        self.fs.invalidate_cache()

    def exists(self, path: str) -> bool:
        key = self._key(path)
        self.fs.invalidate_cache()
        return bool(self._retry(lambda: self.fs.isfile(key)))

    def size(self, path: str) -> int:
        key = self._key(path)
        self.fs.invalidate_cache()
        info = self._retry(lambda: self.fs.info(key))
        if info.get("type") != "file":
            raise FileNotFoundError(key)
        return int(info["size"])

    def list(self, prefix: str = "") -> list[str]:
        base = self._key(prefix, allow_empty=True)
        root = "/".join(p for p in (self.bucket, self.prefix) if p)
        self.fs.invalidate_cache()
        try:
            found = self._retry(lambda: self.fs.find(base))
        except FileNotFoundError:
            return []
        return sorted(key[len(root) + 1 :] for key in found)

    def delete(self, path: str) -> None:
        key = self._key(path)
        with contextlib.suppress(FileNotFoundError):
            self._retry(lambda: self.fs.rm_file(key))
        self.fs.invalidate_cache()

    def delete_tree(self, prefix: str) -> None:
        for path in self.list(prefix):
            self.delete(path)
