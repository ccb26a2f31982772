"""Settings, the data directory, the database and the hash-chained event log."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy.orm import Session

from emeritus.store.atomic import atomic_write
from emeritus.store.canonical import GENESIS_DIGEST, canonical_json, digest_of, sha256_digest
from emeritus.store.clock import as_utc, iso, parse_when, utc_now
from emeritus.store.database import Base, Database, UTCDateTime
from emeritus.store.events import ChainReport, Event, append_event, list_events, verify_chain
from emeritus.store.settings import Settings


class Store:
    """One installation's data: its settings, home directory and database (migrated on open)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(settings.database_url)

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

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


__all__ = [
    "GENESIS_DIGEST",
    "Base",
    "ChainReport",
    "Database",
    "Event",
    "Settings",
    "Store",
    "UTCDateTime",
    "append_event",
    "as_utc",
    "atomic_write",
    "canonical_json",
    "digest_of",
    "iso",
    "list_events",
    "parse_when",
    "sha256_digest",
    "utc_now",
    "verify_chain",
]
