"""Password hashing (argon2id) within a bound: each hash takes ~64 MiB and a core for ~0.1 s, so
at most `HASH_SLOTS` run at once in a process, and a caller that finds no slot within
`HASH_WAIT_S` is refused (`Busy`, said as 503 with Retry-After) rather than queued without end.
Spec: docs/design/console.md, "Sign-in"."""

from __future__ import annotations

import functools
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from emeritus.errors import EmeritusError

if TYPE_CHECKING:
    from argon2 import PasswordHasher

HASH_SLOTS = 2  # concurrent argon2 hashes per process
HASH_WAIT_S = 2.0  # how long a caller waits for a slot before it is refused
BUSY_RETRY_S = 2
# Process-wide by nature: the memory it guards is the process's.
_SLOTS = threading.BoundedSemaphore(HASH_SLOTS)


class Busy(EmeritusError):
    """Every hashing slot stayed taken for the whole wait: try again in `retry_after` seconds."""

    def __init__(self, retry_after: int = BUSY_RETRY_S) -> None:
        super().__init__(f"the console is busy; try again in {retry_after} seconds")
        self.retry_after = retry_after


@contextmanager
def hashing_slot() -> Iterator[None]:
    """Hold one of the process's hashing slots, or raise `Busy` after `HASH_WAIT_S`."""
    if not _SLOTS.acquire(timeout=HASH_WAIT_S):
        raise Busy
    try:
        yield
    finally:
        _SLOTS.release()


@functools.cache
def _hasher() -> PasswordHasher:
    """argon2id with the library's current defaults (64 MiB, t=3, p=4), imported on first use:
    commands that never see a password (a cron tick) do not load it."""
    from argon2 import PasswordHasher

    return PasswordHasher()


def hash_password(password: str) -> str:
    with hashing_slot():
        return _hasher().hash(password)


def password_matches(stored: str | None, password: str) -> bool:
    """Verify against `stored`, or against a dummy hash when there is none, so that a wrong
    name costs what a wrong password costs (no name oracle). The caller holds a slot."""
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return _hasher().verify(stored or _dummy_hash(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


@functools.cache
def _dummy_hash() -> str:
    """Made on first use: a hash costs ~0.1 s, which every command would pay at import."""
    return _hasher().hash(secrets.token_urlsafe(16))
