"""One conformance suite every storage backend passes (the contract is in
emeritus.archive.storage.base), run against a local directory and a real S3 server (moto)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from emeritus.archive.storage import Storage, backends, open_storage
from emeritus.archive.storage.s3 import S3Storage
from emeritus.errors import InvalidInput


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    if request.param == "local":
        return open_storage(str(tmp_path / "root"))
    url: str = request.getfixturevalue("s3_url")
    return open_storage(url)


def test_round_trip(storage: Storage) -> None:
    storage.write_bytes("a/b/c.bin", b"hello")
    storage.write_bytes("empty", b"")
    assert storage.read_bytes("a/b/c.bin") == b"hello"
    assert storage.read_bytes("empty") == b""
    assert storage.exists("a/b/c.bin") and not storage.exists("a/b")
    assert storage.size("a/b/c.bin") == 5 and storage.size("empty") == 0


def test_overwrite_is_whole_and_idempotent(storage: Storage) -> None:
    storage.write_bytes("x", b"first version, longer")
    storage.write_bytes("x", b"second")
    storage.write_bytes("x", b"second")
    assert storage.read_bytes("x") == b"second"
    assert storage.list() == ["x"]


def test_write_file_streams_with_progress(storage: Storage, tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    data = os.urandom(20 * 1024 * 1024 + 123)
    source.write_bytes(data)
    seen: list[int] = []
    storage.write_file("deep/big.bin", source, progress=seen.append)
    assert sum(seen) == len(data) and len(seen) > 1
    assert storage.size("deep/big.bin") == len(data)
    with storage.open_read("deep/big.bin") as handle:
        parts = []
        while chunk := handle.read(1 << 20):
            parts.append(chunk)
    assert b"".join(parts) == data


def test_listing_is_recursive_sorted_and_fresh(storage: Storage) -> None:
    assert storage.list() == []
    storage.write_bytes("b/2", b"x")
    assert storage.list() == ["b/2"]
    storage.write_bytes("a/1", b"x")
    storage.write_bytes("b/c/3", b"x")
    assert storage.list() == ["a/1", "b/2", "b/c/3"]
    assert storage.list("b/") == ["b/2", "b/c/3"]
    assert storage.list("b") == ["b/2", "b/c/3"]
    assert storage.list("nothing/") == []
    storage.delete("b/2")
    assert storage.list() == ["a/1", "b/c/3"]  # no stale cached listing
    assert not storage.exists("b/2")


def test_missing_files(storage: Storage) -> None:
    with pytest.raises(FileNotFoundError):
        storage.read_bytes("missing")
    with pytest.raises(FileNotFoundError), storage.open_read("missing"):
        pass
    with pytest.raises(FileNotFoundError):
        storage.size("missing")


def test_deletes_are_idempotent(storage: Storage) -> None:
    storage.write_bytes("t/1", b"x")
    storage.write_bytes("t/u/2", b"x")
    storage.write_bytes("keep", b"x")
    storage.delete("missing")
    storage.delete_tree("t/")
    storage.delete_tree("t/")
    assert storage.list() == ["keep"]


@pytest.mark.parametrize(
    "bad", ["/abs", "../up", "a/../../b", "a/./b", "a//b", "a\\b", "", "x\x00"]
)
def test_escaping_paths_are_refused(storage: Storage, bad: str) -> None:
    with pytest.raises(InvalidInput, match="bad storage path"):
        storage.write_bytes(bad, b"x")
    with pytest.raises(InvalidInput):
        storage.read_bytes(bad)
    assert storage.list() == []


def test_a_failed_write_leaves_nothing(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        storage.write_file("gone", tmp_path / "no-such-source")

    def failing(_count: int) -> None:
        raise RuntimeError("the disk went away")

    source = tmp_path / "src"
    source.write_bytes(os.urandom(9 * 1024 * 1024))
    with pytest.raises(RuntimeError):
        storage.write_file("half", source, progress=failing)
    assert storage.list() == []
    if storage.local_path("x") is not None:
        assert not list(Path(str(storage.local_path("x"))).parent.iterdir())


def test_local_path_only_for_local(storage: Storage) -> None:
    assert (storage.local_path("a") is not None) == (storage.scheme == "file")


def test_open_storage_dispatch(tmp_path: Path) -> None:
    assert open_storage(str(tmp_path)).url == tmp_path.as_uri()
    assert open_storage(tmp_path.as_uri()).scheme == "file"
    s3 = open_storage("s3://bucket/some/prefix/")
    assert s3.scheme == "s3" and s3.url == "s3://bucket/some/prefix"
    with pytest.raises(InvalidInput, match="unknown storage scheme 'ftp'"):
        open_storage("ftp://host/x")
    with pytest.raises(InvalidInput, match="no bucket"):
        open_storage("s3:///x")
    assert {"file", "s3"} <= set(backends())


class _Flaky:
    """Wraps an s3fs filesystem so that one method fails `failures` times first."""

    def __init__(self, fs: object, method: str, failures: int, error: Exception) -> None:
        self.fs, self.method, self.failures, self.error = fs, method, failures, error

    def __getattr__(self, name: str) -> object:
        real = getattr(self.fs, name)
        if name != self.method:
            return real

        def flaky(*args: object, **kwargs: object) -> object:
            if self.failures:
                self.failures -= 1
                raise self.error
            return real(*args, **kwargs)

        return flaky


def test_s3_retries_transient_errors_only(s3_url: str) -> None:
    storage = open_storage(s3_url)
    assert isinstance(storage, S3Storage)
    storage.write_bytes("f", b"data")
    storage.backoff = 0
    storage.fs = _Flaky(storage.fs, "cat_file", 2, ConnectionError("reset"))  # type: ignore[assignment]
    assert storage.read_bytes("f") == b"data"
    storage.fs = _Flaky(storage.fs.fs, "cat_file", 9, ConnectionError("reset"))  # type: ignore[attr-defined]
    with pytest.raises(ConnectionError):
        storage.read_bytes("f")
    flaky = _Flaky(storage.fs.fs, "cat_file", 1, PermissionError("denied"))  # type: ignore[attr-defined]
    storage.fs = flaky  # type: ignore[assignment]
    with pytest.raises(PermissionError):
        storage.read_bytes("f")
    assert flaky.failures == 0
