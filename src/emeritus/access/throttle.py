"""Sign-in throttling: failures counted per account name and per client address in the database
(so the count holds across gateway processes), with a lock-out window that doubles with each
failure past the free ones, capped. While a key is locked a sign-in is refused before any
password work. Spec: docs/design/console.md, "Sign-in"."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.expression import Executable

from emeritus.access.tables import SignInThrottleRecord
from emeritus.errors import EmeritusError
from emeritus.store import as_utc

ACCOUNT_FREE = 5  # failures of one account name before it is locked
ADDRESS_FREE = 10  # failures from one client address (any names) before it is locked
SIGN_UP_FREE = 5  # sign-ups from one client address before the next one waits
LOCK_BASE_S = 15  # the first lock-out; each further failure doubles it
LOCK_CAP_S = 900
FORGET_S = 3600  # a counter with no failure for this long (and no lock) starts again


class Throttled(EmeritusError):
    """Too many failed sign-ins for this name or address; said the same whether or not an
    account of that name exists."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins; try again in {retry_after} seconds")
        self.retry_after = retry_after


def account_key(name: str) -> str:
    return f"account:{name[:100]}"


def address_key(address: str) -> str:
    return f"address:{address[:64]}"


def sign_up_key(address: str) -> str:
    """Sign-ups are counted per address like failures: each creates a principal, an account
    and two events, so an address gets a few at once and then one per lock-out window."""
    return f"sign-up:{address[:64]}"


def _free(key: str) -> int:
    if key.startswith("sign-up:"):
        return SIGN_UP_FREE
    return ACCOUNT_FREE if key.startswith("account:") else ADDRESS_FREE


def lock_seconds(failures: int, free: int) -> int:
    """The lock-out after `failures` failures: none up to `free - 1`, then doubling, capped."""
    if failures < free:
        return 0
    return int(min(LOCK_CAP_S, LOCK_BASE_S * 2 ** min(failures - free, 32)))


def check(session: Session, keys: Iterable[str], now: datetime) -> None:
    """Raise `Throttled` when any of `keys` is locked at `now`, with the longest wait."""
    rows = session.scalars(
        select(SignInThrottleRecord).where(SignInThrottleRecord.key.in_(list(keys)))
    ).all()
    wait = max(
        (
            (as_utc(r.locked_until) - now).total_seconds()
            for r in rows
            if r.locked_until is not None
        ),
        default=0.0,
    )
    if wait > 0:
        raise Throttled(max(1, math.ceil(wait)))


def _insert_new(session: Session, key: str, now: datetime) -> Executable:
    """The key's counter row unless it exists, in the dialect's own upsert; the dialects are
    imported here because PostgreSQL's costs every command that loads access 0.03 s."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return (
            pg_insert(SignInThrottleRecord)
            .values(key=key, failures=0, last_failure_at=now)
            .on_conflict_do_nothing(index_elements=["key"])
        )
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return (
        sqlite_insert(SignInThrottleRecord)
        .values(key=key, failures=0, last_failure_at=now)
        .on_conflict_do_nothing(index_elements=["key"])
    )


def failed(session: Session, keys: Iterable[str], now: datetime) -> None:
    """Count one failure against each key (under its row lock) and lock those past their free
    failures; forget counters that have been quiet for `FORGET_S`."""
    forgotten = now - timedelta(seconds=FORGET_S)
    session.execute(
        delete(SignInThrottleRecord).where(
            SignInThrottleRecord.last_failure_at < forgotten,
            (SignInThrottleRecord.locked_until.is_(None))
            | (SignInThrottleRecord.locked_until < now),
        )
    )
    for key in keys:
        session.execute(_insert_new(session, key, now))
        row = session.scalar(
            select(SignInThrottleRecord).where(SignInThrottleRecord.key == key).with_for_update()
        )
        assert row is not None  # inserted above, and deleted only when quiet
        row.failures += 1
        row.last_failure_at = now
        seconds = lock_seconds(row.failures, _free(key))
        row.locked_until = now + timedelta(seconds=seconds) if seconds else None


def succeeded(session: Session, key: str) -> None:
    """A sign-in that succeeded clears its account's counter (never the address's)."""
    session.execute(delete(SignInThrottleRecord).where(SignInThrottleRecord.key == key))
