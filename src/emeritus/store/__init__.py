"""Settings, the data directory, the database and the hash-chained event log.

The names that need the ORM (`Base`, the event log's) load with their module on first use: a
command that reads by Core (`Store.connection`) loads neither the ORM nor any mapper.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from emeritus.lazy import lazy_names
from emeritus.store.anchor import (
    ANCHOR_EVERY,
    Checkpoint,
    KeyRefused,
    SigningKey,
    record_verifies,
    remember_checkpoint,
    remembered_checkpoint,
    remembered_line,
    sign_record,
)
from emeritus.store.atomic import atomic_write, fsync_path
from emeritus.store.canonical import GENESIS_DIGEST, canonical_json, digest_of, sha256_digest
from emeritus.store.clock import as_utc, human_day, human_minute, iso, parse_when, utc_now
from emeritus.store.database import Database, UTCDateTime
from emeritus.store.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

    from emeritus.store.driver import DriverSQL, driver_sql
    from emeritus.store.events import (
        ChainReport,
        Event,
        Position,
        append_event,
        list_events,
        verify_chain,
    )
    from emeritus.store.tables import Base

# Each name that needs the ORM, and the module under emeritus.store that holds it.
_ORM_NAMES = {
    "Base": "tables",
    "ChainReport": "events",
    "DriverSQL": "driver",
    "driver_sql": "driver",
    "Event": "events",
    "Position": "events",
    "append_event": "events",
    "list_events": "events",
    "verify_chain": "events",
}


# The event log's tables join Base's metadata with it, as when the store loaded them first.
__getattr__, __dir__ = lazy_names(__name__, _ORM_NAMES, globals(), first=("events",))


class Store:
    """One installation's data: its settings, home directory and database (migrated on open)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database_url)
        self._key: SigningKey | None = None

    @classmethod
    def open(cls, settings: Settings) -> Store:
        settings.home.mkdir(parents=True, exist_ok=True)
        store = cls(settings)
        store.db.migrate()
        return store

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        with self.db.transaction() as session:
            yield session

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        """A Core connection in a transaction of its own, for reads that need no ORM."""
        with self.db.connection() as connection:
            yield connection

    def record(
        self, kind: str, subject: str, payload: dict[str, Any], actor: str | None = None
    ) -> Event:
        """Append one event in a transaction of its own (for work whose state lives outside
        the database, recorded once that work is done)."""
        from emeritus.store.events import append_event

        with self.transaction() as session:
            return append_event(
                session,
                kind=kind,
                subject=subject,
                actor=actor or self.settings.actor,
                payload=payload,
            )

    def signing_key(self) -> SigningKey:
        """The home's Ed25519 key (created on first use; refused when others may read it)."""
        if self._key is None:
            self._key = SigningKey.open(self.settings.home)
        return self._key

    def anchored_within(self, age: timedelta, now: datetime) -> bool:
        """Whether the database's last verified checkpoint is signed by this home's key and
        younger than `age`. The newest checkpoint over every copy is then at least as young, so
        a caller deciding whether one is due need not read the copies (nor load the archive)."""
        with self.connection() as connection:  # a tick that has nothing due loads no ORM
            line = remembered_line(connection)
        if line is None:
            return False
        try:
            checkpoint = Checkpoint.from_line(line)
        except ValueError:
            return False
        return checkpoint.problem(self.signing_key()) is None and now - checkpoint.time < age

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


__all__ = [
    "ANCHOR_EVERY",
    "GENESIS_DIGEST",
    "Base",
    "ChainReport",
    "Checkpoint",
    "Database",
    "DriverSQL",
    "Event",
    "KeyRefused",
    "Position",
    "Settings",
    "SigningKey",
    "Store",
    "UTCDateTime",
    "append_event",
    "as_utc",
    "atomic_write",
    "canonical_json",
    "digest_of",
    "driver_sql",
    "fsync_path",
    "human_day",
    "human_minute",
    "iso",
    "list_events",
    "parse_when",
    "record_verifies",
    "remember_checkpoint",
    "remembered_checkpoint",
    "remembered_line",
    "sha256_digest",
    "sign_record",
    "utc_now",
    "verify_chain",
]
