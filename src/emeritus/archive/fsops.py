"""Filesystem operations the primary copy's commits rest on: fsync, locks, atomic exchange."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from emeritus.errors import EmeritusError
from emeritus.store import fsync_path

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


def fsync_tree(root: Path) -> None:
    for directory, _dirs, files in os.walk(root):
        for name in files:
            fsync_path(Path(directory) / name)
        fsync_path(Path(directory))


def make_dirs(path: Path) -> None:
    """Create a directory and its parents, fsyncing each parent that gained an entry."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir()
        fsync_path(directory.parent)


def exchange(a: Path, b: Path) -> None:
    """Atomically swap two directory trees (Linux renameat2 RENAME_EXCHANGE)."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        raise EmeritusError("this system has no renameat2: versions cannot be committed atomically")
    renameat2.argtypes = [
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_char_p,
        ctypes.c_uint,
    ]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise EmeritusError(
                f"the filesystem under {b.parent} cannot exchange directories atomically; "
                "refusing to add a version that could be seen half-written"
            )
        raise OSError(code, os.strerror(code), str(a))


@contextlib.contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """An exclusive advisory lock held for the duration (released by the kernel on a crash)."""
    make_dirs(lock_file.parent)
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
