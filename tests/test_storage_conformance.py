"""The one conformance suite every storage backend passes (the contract is in the docstrings of
emeritus.archive.storage.Storage), run on a local directory and on a real S3 server (moto), plus
the backend-specific parts: S3 retries, local temporary files, URL dispatch."""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from importlib.metadata import EntryPoint, EntryPoints, entry_points
from pathlib import Path, PosixPath
from typing import Any, BinaryIO

import pytest

import emeritus.archive.storage as storage_package
from emeritus.archive.storage import Storage, backends, open_storage
from emeritus.archive.storage.local import TEMP_PREFIX, LocalStorage
from emeritus.archive.storage.s3 import S3Storage, is_transient
from emeritus.errors import InvalidInput

MiB = 1 << 20


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return open_storage(str(tmp_path / "root"))
    url: str = request.getfixturevalue("s3_url")
    opened = open_storage(url)
    assert isinstance(opened, S3Storage)
    opened.backoff = 0  # retries never sleep in tests
    return opened


def leftovers(storage: Storage) -> list[str]:
    """Whatever a failed write may have left behind beyond the listed files: temporary files
    (local) or unfinished multipart uploads (S3)."""
    if isinstance(storage, LocalStorage):
        if not storage.root.exists():
            return []
        return sorted(p.name for p in storage.root.rglob("*") if p.name.startswith(TEMP_PREFIX))
    assert isinstance(storage, S3Storage)
    uploads = storage.fs.call_s3("list_multipart_uploads", Bucket=storage.bucket)
    return sorted(upload["Key"] for upload in uploads.get("Uploads", []))


# Round trips


def test_round_trip_empty_small_and_nested(storage: Storage) -> None:
    storage.write_bytes("empty", b"")
    storage.write_bytes("small.txt", b"hello")
    storage.write_bytes("a/b/c/deep.bin", bytes(range(256)))
    assert storage.read_bytes("empty") == b""
    assert storage.read_bytes("small.txt") == b"hello"
    assert storage.read_bytes("a/b/c/deep.bin") == bytes(range(256))
    assert storage.size("empty") == 0
    assert storage.size("small.txt") == 5
    assert storage.exists("a/b/c/deep.bin")
    assert storage.list() == ["a/b/c/deep.bin", "empty", "small.txt"]


def test_write_file_streams_20_mb_with_progress(storage: Storage, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    data = os.urandom(20 * MiB + 123)  # several S3 multipart parts, one short
    source.write_bytes(data)
    seen: list[int] = []
    storage.write_file("models/big.bin", source, progress=seen.append)
    assert sum(seen) == len(data)
    assert len(seen) >= 3  # reported per chunk, not once at the end
    assert storage.size("models/big.bin") == len(data)
    with storage.open_read("models/big.bin") as handle:
        parts = []
        while piece := handle.read(MiB):
            parts.append(piece)
    assert len(parts) > 1
    assert b"".join(parts) == data
    assert storage.read_bytes("models/big.bin") == data


def test_write_file_without_progress_and_empty_source(storage: Storage, tmp_path: Path) -> None:
    source = tmp_path / "empty"
    source.write_bytes(b"")
    seen: list[int] = []
    storage.write_file("e", source, progress=seen.append)
    storage.write_file("f", source)
    assert sum(seen) == 0
    assert storage.read_bytes("e") == storage.read_bytes("f") == b""


def test_open_read_small_file(storage: Storage) -> None:
    storage.write_bytes("x/y", b"0123456789")
    with storage.open_read("x/y") as handle:
        assert handle.read(4) == b"0123"
        assert handle.read() == b"456789"
        assert handle.read() == b""


def test_overwrite_replaces_the_whole_file(storage: Storage, tmp_path: Path) -> None:
    storage.write_bytes("x", b"first version, the longer one")
    storage.write_bytes("x", b"second")
    assert storage.read_bytes("x") == b"second"
    assert storage.size("x") == 6
    source = tmp_path / "third"
    source.write_bytes(b"3")
    storage.write_file("x", source)
    assert storage.read_bytes("x") == b"3"
    assert storage.list() == ["x"]


def test_rewriting_the_same_content_is_idempotent(storage: Storage, tmp_path: Path) -> None:
    source = tmp_path / "s"
    source.write_bytes(b"same")
    for _ in range(3):
        storage.write_bytes("a/x", b"same")
        storage.write_file("a/y", source)
    assert storage.list() == ["a/x", "a/y"]
    assert storage.read_bytes("a/x") == storage.read_bytes("a/y") == b"same"
    assert leftovers(storage) == []


# Listings


def test_list_is_recursive_sorted_and_files_only(storage: Storage) -> None:
    assert storage.list() == []
    for path in ["z", "b/c/3", "a/1", "b/2", "a.txt", "ab/1"]:
        storage.write_bytes(path, b"x")
    assert storage.list() == ["a.txt", "a/1", "ab/1", "b/2", "b/c/3", "z"]


def test_list_with_a_prefix(storage: Storage) -> None:
    for path in ["a/1", "a/2/3", "ab/1", "a.txt", "b/1"]:
        storage.write_bytes(path, b"x")
    assert storage.list("a") == ["a/1", "a/2/3"]  # never "ab/1" or "a.txt"
    assert storage.list("a/") == ["a/1", "a/2/3"]
    assert storage.list("a/2") == ["a/2/3"]
    assert storage.list("a.txt") == ["a.txt"]  # a file is "at" its own path
    assert storage.list("nothing") == []
    assert storage.list("nothing/deeper/") == []
    assert storage.list("") == storage.list()


def test_listings_are_never_stale(storage: Storage) -> None:
    """The s3fs listing cache regression: every check right after a write or delete sees it."""
    assert storage.list() == []
    assert not storage.exists("a")
    storage.write_bytes("a", b"1")
    assert storage.list() == ["a"]
    storage.write_bytes("d/b", b"22")
    assert storage.list() == ["a", "d/b"]
    assert storage.list("d") == ["d/b"]
    assert storage.exists("d/b")
    assert storage.size("d/b") == 2
    storage.write_bytes("d/b", b"333")
    assert storage.size("d/b") == 3
    storage.delete("a")
    assert storage.list() == ["d/b"]
    assert not storage.exists("a")
    with pytest.raises(FileNotFoundError):
        storage.size("a")
    storage.delete_tree("d")
    assert storage.list() == []
    assert storage.list("d") == []
    assert not storage.exists("d/b")


def test_changes_through_another_instance_are_seen(storage: Storage) -> None:
    other = open_storage(storage.url)
    assert other.url == storage.url
    assert other.list() == []
    storage.write_bytes("p/q", b"x")
    assert other.list() == ["p/q"]
    assert other.exists("p/q")
    other.delete("p/q")
    assert storage.list() == []
    assert not storage.exists("p/q")


# Existence, sizes and missing files


def test_missing_files_raise_file_not_found(storage: Storage) -> None:
    storage.write_bytes("dir/file", b"x")
    for missing in ["missing", "dir/missing", "dir", "dir/file/below"]:
        assert not storage.exists(missing)
        with pytest.raises(FileNotFoundError):
            storage.read_bytes(missing)
        with pytest.raises(FileNotFoundError), storage.open_read(missing):
            pass
        with pytest.raises(FileNotFoundError):
            storage.size(missing)


def test_exists_and_size(storage: Storage) -> None:
    storage.write_bytes("n/x", b"12345")
    assert storage.exists("n/x")
    assert not storage.exists("n")  # a prefix is not a file
    assert storage.size("n/x") == 5


# Deletes


def test_delete_is_idempotent(storage: Storage) -> None:
    storage.write_bytes("d/1", b"x")
    storage.write_bytes("keep", b"x")
    storage.delete("d/1")
    storage.delete("d/1")
    storage.delete("never-there")
    storage.delete("d")  # only a prefix: not a file, nothing to do
    assert storage.list() == ["keep"]


def test_delete_tree_is_idempotent_and_stays_inside_its_prefix(storage: Storage) -> None:
    for path in ["t/1", "t/u/2", "t/u/v/3", "tt/1", "t.txt", "keep"]:
        storage.write_bytes(path, b"x")
    storage.delete_tree("t")
    assert storage.list() == ["keep", "t.txt", "tt/1"]
    storage.delete_tree("t/")
    storage.delete_tree("never/there")
    storage.delete_tree("t.txt")  # a single file is the tree at its own path
    assert storage.list() == ["keep", "tt/1"]


def test_delete_tree_of_many_files(storage: Storage) -> None:
    if isinstance(storage, S3Storage):
        storage.delete_batch = 7  # several DeleteObjects requests, the last one short
    paths = [f"many/{i // 10}/{i:04d}" for i in range(30)]
    for path in paths:
        storage.write_bytes(path, b"")
    assert storage.list("many") == sorted(paths)
    storage.delete_tree("many/")
    assert storage.list() == []


def test_delete_tree_refuses_the_whole_root(storage: Storage) -> None:
    storage.write_bytes("x", b"x")
    with pytest.raises(InvalidInput, match="whole storage root"):
        storage.delete_tree("")
    assert storage.list() == ["x"]


# Paths that could escape the root


BAD_PATHS = [
    "",
    "/",
    "/abs",
    "//host/share",
    ".",
    "..",
    "../up",
    "a/..",
    "a/../../b",
    "./a",
    "a/./b",
    "a//b",
    "a/",
    "a\\b",
    "..\\..\\x",
    "C:\\x",
    "x\x00",
    "a/\x00/b",
]
BAD_PREFIXES = ["/", "/abs", "..", "../up", "a/../..", "./a", "a//b", "a//", "a\\b", "x\x00"]


def test_escaping_paths_are_refused_and_nothing_is_written(
    storage: Storage, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    source.write_bytes(b"x")
    for bad in BAD_PATHS:  # a loop, not parameters: one S3 bucket for them all
        for operation in _operations(storage, bad, source):
            with pytest.raises(InvalidInput, match="bad storage path") as caught:
                operation()
            assert repr(bad) in str(caught.value)  # the message names the path
    if isinstance(storage, LocalStorage):
        assert not storage.root.exists()  # refused before any I/O: not even the root was made
    assert storage.list() == []


def _operations(storage: Storage, path: str, source: Path) -> list[Callable[[], object]]:
    def enter() -> None:
        with storage.open_read(path):
            pass

    return [
        lambda: storage.read_bytes(path),
        enter,
        lambda: storage.write_bytes(path, b"x"),
        lambda: storage.write_file(path, source),
        lambda: storage.exists(path),
        lambda: storage.size(path),
        lambda: storage.delete(path),
        lambda: storage.local_path(path),
    ]


def test_escaping_prefixes_are_refused(storage: Storage) -> None:
    storage.write_bytes("a/b", b"x")
    for bad in BAD_PREFIXES:
        with pytest.raises(InvalidInput, match="bad storage path"):
            storage.list(bad)
        with pytest.raises(InvalidInput, match="bad storage path"):
            storage.delete_tree(bad)
    assert storage.list() == ["a/b"]


class _NoIO:
    """A stand-in filesystem that fails any use: path checks must come before any I/O."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"I/O attempted: fs.{name}")


@pytest.mark.parametrize("bad", BAD_PATHS)
def test_s3_refuses_bad_paths_before_any_io(bad: str, tmp_path: Path) -> None:
    storage = S3Storage("s3://bucket/root", filesystem=_NoIO())
    for operation in _operations(storage, bad, tmp_path / "never-opened"):
        with pytest.raises(InvalidInput):
            operation()


def test_s3_refuses_bad_prefixes_before_any_io() -> None:
    storage = S3Storage("s3://bucket/root", filesystem=_NoIO())
    for bad in BAD_PREFIXES:
        with pytest.raises(InvalidInput):
            storage.list(bad)
        with pytest.raises(InvalidInput):
            storage.delete_tree(bad)
    with pytest.raises(InvalidInput):
        storage.delete_tree("")


def test_a_reserved_temporary_name_is_refused_locally(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path))
    with pytest.raises(InvalidInput, match="reserved"):
        storage.write_bytes(f"a/{TEMP_PREFIX}x", b"x")


# Failed writes


class _BreakingSource(PosixPath):
    """A source file whose reading fails after the first chunk, like a disk going away."""

    def open(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return _BreakingReader(super().open(*args, **kwargs))


class _BreakingReader:
    def __init__(self, inner: BinaryIO) -> None:
        self.inner, self.reads = inner, 0

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        if self.reads > 1:
            raise OSError(errno.ENXIO, "the source device went away")
        return self.inner.read(size)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __enter__(self) -> _BreakingReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.inner.close()


def test_a_failed_write_file_leaves_nothing(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        storage.write_file("gone", tmp_path / "no-such-source")
    source = _BreakingSource(tmp_path / "breaking")
    source.write_bytes(os.urandom(18 * MiB))  # enough that S3 has started a multipart upload
    with pytest.raises(OSError, match="went away"):
        storage.write_file("broken", source)

    def failing(_count: int) -> None:
        raise RuntimeError("the caller gave up")

    plain = tmp_path / "plain"
    plain.write_bytes(os.urandom(9 * MiB))
    with pytest.raises(RuntimeError, match="gave up"):
        storage.write_file("half", plain, progress=failing)
    assert storage.list() == []
    assert leftovers(storage) == []


def test_a_failed_overwrite_keeps_the_old_content(storage: Storage, tmp_path: Path) -> None:
    storage.write_bytes("kept", b"old")
    source = _BreakingSource(tmp_path / "breaking")
    source.write_bytes(os.urandom(10 * MiB))
    with pytest.raises(OSError, match="went away"):
        storage.write_file("kept", source)
    assert storage.read_bytes("kept") == b"old"
    assert storage.list() == ["kept"]
    assert leftovers(storage) == []


# Local paths and dispatch


def test_local_path_only_for_local_storage(storage: Storage) -> None:
    storage.write_bytes("m/w.bin", b"weights")
    path = storage.local_path("m/w.bin")
    if storage.scheme == "file":
        assert path is not None
        assert path.read_bytes() == b"weights"
        assert storage.url == path.parent.parent.as_uri()
    else:
        assert storage.scheme == "s3"
        assert path is None


def test_open_storage_dispatches_by_scheme(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    local = open_storage(str(tmp_path / "plain"))
    assert isinstance(local, LocalStorage)
    assert local.url == (tmp_path / "plain").as_uri()
    assert open_storage(local.url).url == local.url
    assert open_storage(f"FILE://{tmp_path}").url == tmp_path.as_uri()
    monkeypatch.chdir(tmp_path)
    assert open_storage("relative/dir").url == (tmp_path / "relative/dir").as_uri()
    s3 = open_storage("s3://bucket/some/prefix/")
    assert isinstance(s3, S3Storage)
    assert (s3.scheme, s3.url, s3.bucket, s3.prefix) == (
        "s3",
        "s3://bucket/some/prefix",
        "bucket",
        "some/prefix",
    )
    assert open_storage("s3://bucket").url == "s3://bucket"
    assert open_storage("S3://bucket/p").url == "s3://bucket/p"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://host/x", "unknown storage scheme 'ftp': known are file, s3"),
        ("", "empty storage URL"),
        ("s3:///x", "no bucket"),
        ("s3://b/x", "not a valid bucket name"),
        ("s3://bucket/x?endpoint_url=http://127.0.0.1:5000", "AWS_ENDPOINT_URL"),
        ("s3://bucket/../x", "bad storage path"),
        ("s3://bucket//x", "bad storage path"),
        ("file://elsewhere/x", "bad file URL"),
    ],
)
def test_open_storage_refuses_bad_urls(url: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        open_storage(url)


def test_backends_are_entry_points() -> None:
    registered = entry_points(group="emeritus.storage")
    assert {"file", "s3"} <= set(registered.names)
    assert registered["file"].load() is LocalStorage
    assert registered["s3"].load() is S3Storage
    assert backends()["file"] is LocalStorage
    assert backends()["s3"] is S3Storage


def test_a_plugin_that_is_not_a_storage_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = EntryPoints([EntryPoint(name="bogus", value="os.path:join", group="emeritus.storage")])
    monkeypatch.setattr(storage_package, "entry_points", lambda group: fake)
    with pytest.raises(InvalidInput, match="not a Storage class"):
        open_storage("bogus://x")


# S3 retries


class _Flaky:
    """Wraps an s3fs filesystem: `method` raises each of `errors` in turn, then works."""

    def __init__(self, fs: Any, method: str, errors: list[BaseException]) -> None:
        self.fs, self.method, self.errors, self.calls = fs, method, list(errors), 0

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.fs, name)
        if name != self.method:
            return real

        def flaky(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            if self.errors:
                raise self.errors.pop(0)
            return real(*args, **kwargs)

        return flaky


@pytest.fixture
def s3(s3_url: str) -> S3Storage:
    storage = open_storage(s3_url)
    assert isinstance(storage, S3Storage)
    storage.backoff = 0.1
    return storage


@pytest.fixture
def waits(s3: S3Storage) -> list[float]:
    """The backoff waits `s3` asks for, recorded instead of slept."""
    recorded: list[float] = []
    s3.sleep = recorded.append
    return recorded


def flaky(storage: S3Storage, method: str, *errors: BaseException) -> _Flaky:
    wrapper = _Flaky(storage.fs, method, list(errors))
    storage.fs = wrapper
    return wrapper


def test_s3_retries_transient_errors_with_backoff(s3: S3Storage, waits: list[float]) -> None:
    s3.write_bytes("f", b"data")
    wrapper = flaky(s3, "cat_file", ConnectionResetError("reset"), OSError(errno.EBUSY, "SlowDown"))
    assert s3.read_bytes("f") == b"data"
    assert wrapper.calls == 3
    assert waits == [0.1, 0.2]


def test_s3_gives_up_after_its_attempts(s3: S3Storage, waits: list[float]) -> None:
    s3.write_bytes("f", b"data")
    wrapper = flaky(s3, "cat_file", *[TimeoutError("slow")] * 9)
    with pytest.raises(TimeoutError):
        s3.read_bytes("f")
    assert wrapper.calls == s3.attempts == 4
    assert waits == [0.1, 0.2, 0.4]


@pytest.mark.parametrize(
    "error",
    [
        PermissionError("AccessDenied"),
        FileNotFoundError("NoSuchKey"),
        OSError(errno.EINVAL, "InvalidArgument"),
        InvalidInput("bad"),
    ],
)
def test_s3_raises_permanent_errors_at_once(
    s3: S3Storage, waits: list[float], error: Exception
) -> None:
    s3.write_bytes("f", b"data")
    wrapper = flaky(s3, "cat_file", error)
    with pytest.raises(type(error)):
        s3.read_bytes("f")
    assert wrapper.calls == 1
    assert waits == []


def test_s3_retries_writes_and_deletes(s3: S3Storage) -> None:
    flaky(s3, "pipe_file", ConnectionError("reset"))
    s3.write_bytes("a/f", b"data")
    assert s3.read_bytes("a/f") == b"data"
    flaky(s3, "call_s3", OSError(errno.EREMOTEIO, "InternalError"))
    s3.delete_tree("a")
    assert s3.list() == []


def test_s3_retried_upload_counts_progress_once(s3: S3Storage, tmp_path: Path) -> None:
    """An upload that fails midway is aborted and redone from the start; progress adds up to
    the size once, and no unfinished multipart upload is left."""
    source = tmp_path / "big"
    data = os.urandom(20 * MiB)
    source.write_bytes(data)
    real_open = s3.fs.open
    opened: list[_FailingUpload] = []

    def open_failing_once(*args: Any, **kwargs: Any) -> Any:
        handle = real_open(*args, **kwargs)
        if opened:
            return handle
        opened.append(_FailingUpload(handle))
        return opened[0]

    s3.fs.open = open_failing_once
    seen: list[int] = []
    s3.write_file("big", source, progress=seen.append)
    assert opened and opened[0].writes == 2
    assert sum(seen) == len(data)
    assert s3.read_bytes("big") == data
    assert leftovers(s3) == []


class _FailingUpload:
    """An S3 upload whose second write fails with a reset connection."""

    def __init__(self, inner: Any) -> None:
        object.__setattr__(self, "inner", inner)
        object.__setattr__(self, "writes", 0)

    def write(self, data: bytes) -> int:
        object.__setattr__(self, "writes", self.writes + 1)
        if self.writes == 2:
            raise ConnectionResetError("reset mid-upload")
        written: int = self.inner.write(data)
        return written

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self.inner, name, value)


def test_s3_missing_bucket(s3_endpoint: str) -> None:
    storage = open_storage("s3://emeritus-no-such-bucket/root")
    assert storage.list() == []
    assert not storage.exists("x")
    with pytest.raises(FileNotFoundError, match="bucket 'emeritus-no-such-bucket' does not exist"):
        storage.write_bytes("x", b"x")


def test_transient_classification() -> None:
    assert is_transient(ConnectionResetError())
    assert is_transient(TimeoutError())
    assert is_transient(OSError(errno.EBUSY, "SlowDown"))
    assert is_transient(OSError(errno.EIO, "502 Bad Gateway"))
    assert not is_transient(FileNotFoundError())
    assert not is_transient(PermissionError())
    assert not is_transient(OSError(errno.EINVAL, "400"))
    assert not is_transient(ValueError())
