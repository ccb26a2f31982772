"""A storage root in S3-compatible object storage, through fsspec/s3fs.

The endpoint comes from the standard AWS_ENDPOINT_URL variable (botocore reads it; a URL query
such as ?endpoint_url= is refused), credentials from the usual AWS variables or files. Each PUT,
and each completed multipart upload, is atomic per object: that is what the archive's replication
order relies on, there being no rename. A failed multipart upload is aborted, never completed.

s3fs caches listings; the cache is dropped after every write and delete and before every check,
so `list`, `exists` and `size` always ask the server.

The bucket must exist: it is not created on demand, because creating one is an operator's
decision (region, access policy, versioning, object lock, billing). Writing to a missing bucket
raises `FileNotFoundError` naming it; reading from one behaves as if it were empty.

Retries: botocore and s3fs already retry some failures; what still comes out and is transient
(see `is_transient`) is retried here `attempts` times in all, waiting `backoff` seconds, doubled
each time (capped at `max_backoff`). Tests set `backoff = 0`.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import re
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

import aiohttp
import botocore.exceptions  # type: ignore[import-untyped]
import s3fs

from emeritus.archive.storage.base import CHUNK, Progress, Storage, check_path
from emeritus.errors import InvalidInput

T = TypeVar("T")

# Lenient (legacy buckets may have capitals and '_'): it only keeps out '/', ':', '@', spaces...
_BUCKET = re.compile(r"[A-Za-z0-9._-]{3,255}")
_PERMANENT = (
    FileNotFoundError,
    PermissionError,
    FileExistsError,
    IsADirectoryError,
    NotADirectoryError,
    InvalidInput,
)
_TRANSIENT = (
    ConnectionError,
    TimeoutError,
    botocore.exceptions.HTTPClientError,  # endpoint unreachable, connection closed, read timeout
    aiohttp.ClientConnectionError,
    aiohttp.ClientPayloadError,
)
# How s3fs translates server errors: 500/InternalError -> EREMOTEIO, 503/SlowDown/
# ServiceUnavailable -> EBUSY, any code it does not know (502, 504, ...) -> EIO.
_TRANSIENT_ERRNOS = {
    getattr(errno, "EREMOTEIO", errno.EIO),
    errno.EBUSY,
    errno.EIO,
    errno.EAGAIN,
    errno.ETIMEDOUT,
    errno.ECONNRESET,
}


def is_transient(error: BaseException) -> bool:
    """Whether retrying may help: connection trouble, timeouts, 5xx and throttling. Missing
    objects, refused permissions and malformed requests are permanent."""
    if isinstance(error, _PERMANENT):
        return False
    if isinstance(error, _TRANSIENT):
        return True
    return isinstance(error, OSError) and error.errno in _TRANSIENT_ERRNOS


class S3Storage(Storage):
    """A bucket, or a prefix in one, named by "s3://bucket/prefix"."""

    scheme = "s3"
    attempts = 4  # tries in all for a transient failure
    backoff = 0.25  # seconds before the first retry, doubled for each next one
    max_backoff = 8.0
    delete_batch = 1000  # keys per DeleteObjects request, the most S3 accepts

    def __init__(self, url: str, *, filesystem: Any = None) -> None:
        if url[:5].lower() != "s3://":
            raise InvalidInput(f"bad S3 URL {url!r}: expected s3://bucket/prefix")
        if "?" in url or "#" in url:
            raise InvalidInput(
                f"bad S3 URL {url!r}: no query or fragment (set the endpoint in AWS_ENDPOINT_URL)"
            )
        bucket, _, prefix = url[5:].partition("/")
        if not bucket:
            raise InvalidInput(f"bad S3 URL {url!r}: no bucket")
        if not _BUCKET.fullmatch(bucket):
            raise InvalidInput(f"bad S3 URL {url!r}: {bucket!r} is not a valid bucket name")
        prefix = check_path(prefix, prefix=True) if prefix else ""
        self.bucket = bucket
        self.prefix = prefix
        self.root = f"{bucket}/{prefix}" if prefix else bucket
        self.url = f"s3://{self.root}"
        self.sleep: Callable[[float], None] = time.sleep
        # No shared instance: each root gets its own client and listing cache.
        self.fs = (
            filesystem if filesystem is not None else s3fs.S3FileSystem(skip_instance_cache=True)
        )

    def __repr__(self) -> str:
        return f"S3Storage({self.url!r})"

    def _key(self, path: str) -> str:
        return f"{self.root}/{check_path(path)}"

    def _retry(self, action: Callable[[], T]) -> T:
        """Run `action`, retrying transient failures with exponential backoff."""
        for attempt in range(1, self.attempts + 1):
            try:
                return action()
            except Exception as error:
                if attempt == self.attempts or not is_transient(error):
                    raise
            self.sleep(min(self.backoff * 2 ** (attempt - 1), self.max_backoff))
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def _write(self, path: str, action: Callable[[], object]) -> None:
        try:
            self._retry(action)
        except FileNotFoundError as error:
            # A write never misses its key: only the bucket can be missing.
            raise FileNotFoundError(
                f"cannot write {path!r} to {self.url}: bucket {self.bucket!r} does not exist"
            ) from error
        finally:
            self.fs.invalidate_cache()

    def read_bytes(self, path: str) -> bytes:
        key = self._key(path)
        data: bytes = self._retry(lambda: self.fs.cat_file(key))
        return data

    @contextlib.contextmanager
    def open_read(self, path: str) -> Iterator[BinaryIO]:
        key = self._key(path)
        # s3fs would open a mere prefix as an empty file; the contract says it is missing.
        if self._info(path) is None:
            raise FileNotFoundError(f"no file {path!r} in {self.url}")
        handle = self._retry(lambda: self.fs.open(key, "rb", block_size=CHUNK))
        try:
            yield handle
        finally:
            handle.close()

    def write_bytes(self, path: str, data: bytes) -> None:
        key = self._key(path)
        self._write(path, lambda: self.fs.pipe_file(key, data))

    def write_file(self, path: str, source: Path, *, progress: Progress | None = None) -> None:
        key = self._key(path)
        reported = 0  # bytes passed to `progress`, kept across retries so none count twice

        def upload(src: BinaryIO) -> None:
            nonlocal reported
            src.seek(0)
            # Parts go up as the buffer fills; the object appears only when close() completes
            # the upload (or PUTs it whole, if it is small). On failure the upload is aborted:
            # a `with` block would complete it, publishing a truncated object.
            out = self.fs.open(key, "wb", block_size=CHUNK)
            try:
                done = 0
                while piece := src.read(CHUNK):
                    out.write(piece)
                    done += len(piece)
                    if progress is not None and done > reported:
                        progress(done - reported)
                        reported = done
            except BaseException:
                out.discard()
                out.closed = True  # nothing left for close() to commit when it is collected
                raise
            out.close()

        with source.open("rb") as src:  # a missing source raises here, before any upload
            self._write(path, lambda: upload(src))

    def _info(self, path: str) -> dict[str, Any] | None:
        key = self._key(path)
        self.fs.invalidate_cache()
        try:
            info: dict[str, Any] = self._retry(lambda: self.fs.info(key))
        except FileNotFoundError:
            return None
        return info if info.get("type") == "file" else None

    def exists(self, path: str) -> bool:
        return self._info(path) is not None

    def size(self, path: str) -> int:
        info = self._info(path)
        if info is None:
            raise FileNotFoundError(f"no file {path!r} in {self.url}")
        return int(info["size"])

    def _find(self, prefix: str) -> list[str]:
        """Full keys ("bucket/prefix/path") of the files at or under `prefix`."""
        checked = check_path(prefix, prefix=True)
        base = f"{self.root}/{checked}" if checked else self.root
        self.fs.invalidate_cache()
        try:
            found: list[str] = self._retry(lambda: self.fs.find(base))
        except FileNotFoundError:  # no such bucket: nothing there
            return []
        # Keys ending in '/' are other tools' directory markers, not files.
        return sorted(
            key for key in found if key.startswith(f"{self.root}/") and not key.endswith("/")
        )

    def list(self, prefix: str = "") -> list[str]:
        return [key[len(self.root) + 1 :] for key in self._find(prefix)]

    def delete(self, path: str) -> None:
        key = self._key(path)
        try:
            with contextlib.suppress(FileNotFoundError):
                self._retry(lambda: self.fs.rm_file(key))
        finally:
            self.fs.invalidate_cache()

    def delete_tree(self, prefix: str) -> None:
        if not check_path(prefix, prefix=True):
            raise InvalidInput(f"refusing to delete the whole storage root {self.url}")
        keys = self._find(prefix)
        try:
            # One DeleteObjects call per batch. Keys are passed literally: s3fs's rm()
            # would glob-expand '[' and '*', and a recursive rm() at a bucket's root removes
            # the bucket.
            for start in range(0, len(keys), self.delete_batch):
                batch = keys[start : start + self.delete_batch]
                self._retry(functools.partial(self._delete_objects, batch))
        finally:
            self.fs.invalidate_cache()

    def _delete_objects(self, keys: Sequence[str]) -> None:
        objects = [{"Key": key.split("/", 1)[1]} for key in keys]
        response = self.fs.call_s3(
            "delete_objects", Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}
        )
        failed = response.get("Errors", [])
        if failed:
            first = failed[0]
            message = (
                f"could not delete {len(failed)} object(s) from {self.url}, the first "
                f"{first.get('Key')!r}: {first.get('Code')} {first.get('Message')}"
            )
            if first.get("Code") == "AccessDenied":
                raise PermissionError(message)
            raise OSError(errno.EIO, message)  # per-key 5xx and throttling: retried
