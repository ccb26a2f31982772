"""The database: engine, sessions, and schema migrations applied automatically on first use.

SQLite by default, PostgreSQL by URL. SQLite transactions begin with `BEGIN IMMEDIATE` so that two
writers queue on the database lock instead of failing half-way; PostgreSQL writers serialise on the
rows they lock (see `events.py`).

Within one process, SQLite transactions also take turns on a lock of the process's own: SQLite's
busy handler waits for the database lock by sleeping 1, 2, 5, 10 ... 100 ms between tries, so that
threads queueing behind one another (a gateway's requests) would each sleep far longer than the
lock is held. Other processes (a CLI beside the gateway) still queue on SQLite's lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, DateTime, Engine, create_engine, event, inspect, text
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.types import TypeDecorator

from emeritus.errors import Conflict, InvalidInput
from emeritus.store.clock import as_utc

if TYPE_CHECKING:  # the ORM loads with the first session (see tables.py)
    from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
# Arbitrary constant: the PostgreSQL advisory lock that serialises concurrent first-use migrations.
_MIGRATION_LOCK_KEY = 0x656D6572
BUSY_TIMEOUT_S = 30  # how long a SQLite transaction waits for the database before it fails


def schema_head() -> str:
    """The newest revision: migrations are numbered files (`0013_...py`) whose revision is their
    number, one chain without branches (a test holds this against Alembic's own reading)."""
    numbers = [p.name[:4] for p in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py")]
    return max(numbers)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite keeps no zone: we store UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: emeritus stores timezone-aware times only")
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)


class Database:
    """An engine and its session factory for one database URL."""

    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise InvalidInput(f"bad database URL {url!r}") from None
        self.url = url
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = create_engine(url, pool_pre_ping=not self.is_sqlite)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self._sessions: sessionmaker[Session] | None = None  # made with the first session
        # Reentrant: a second transaction opened inside a thread's first meets SQLite's lock, as
        # before (it waits for itself there and fails after the busy timeout), not this one.
        self._turn = threading.RLock() if self.is_sqlite else None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work is committed on success and rolled back on any exception."""
        if self._sessions is None:
            from sqlalchemy.orm import sessionmaker

            self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        with self._my_turn(), self._sessions() as session, session.begin():
            yield session

    @contextlib.contextmanager
    def connection(self) -> Iterator[Connection]:
        """A Core connection in a transaction of its own, like `transaction`'s (the same turn,
        `BEGIN IMMEDIATE` on SQLite), for reads that need no ORM and so do not load it."""
        with self._my_turn(), self.engine.begin() as connection:
            yield connection

    @contextlib.contextmanager
    def _my_turn(self) -> Iterator[None]:
        if self._turn is None:
            yield
            return
        if not self._turn.acquire(timeout=BUSY_TIMEOUT_S):
            raise Conflict(f"the database is locked: waited {BUSY_TIMEOUT_S} s for a transaction")
        try:
            yield
        finally:
            self._turn.release()

    def migrate(self) -> None:
        """Bring the schema to the newest revision; cheap when it is already there.

        Concurrent first uses (two CLI processes, several gateway workers) take a lock, so only
        one of them migrates and the others find the schema done.
        """
        head = schema_head()
        if self._revision() == head:
            return  # the common case, without importing Alembic (a fifth of a second)
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        with self._migration_lock():
            if self._revision() == head:
                return
            with self.engine.connect() as connection:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")

    def _revision(self) -> str | None:
        with self.engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            rows = connection.execute(text("SELECT version_num FROM alembic_version")).all()
            return rows[0][0] if len(rows) == 1 else None

    @contextlib.contextmanager
    def _migration_lock(self) -> Iterator[None]:
        if self.is_sqlite:
            database = make_url(self.url).database
            if database in (None, "", ":memory:"):
                yield
                return
            with Path(f"{database}.migrate.lock").open("a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)
            return
        with self.engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
            connection.commit()
            try:
                yield
            finally:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK_KEY}
                )
                connection.commit()

    def dispose(self) -> None:
        self.engine.dispose()


def _configure_sqlite(engine: Engine) -> None:
    # pysqlite's own transaction handling issues a deferred BEGIN late; take control of it so every
    # transaction starts with BEGIN IMMEDIATE (SQLAlchemy's documented recipe).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
        _use_wal(cursor)
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _use_wal(cursor: Any) -> None:
    """Switch a new database to WAL once. The switch needs the database to itself and SQLite
    refuses it at once, without its busy handler, while another connection is opening (several
    first uses at once): so ask first, and retry the switch until the busy timeout."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
