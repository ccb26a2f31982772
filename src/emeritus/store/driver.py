"""Plain SQL on a session's own connection, for the few statements every request runs.

SQLAlchemy's work per statement (building and coercing it, its cache key, loading objects, the
unit of work) cost about ten times what SQLite spent on the metering's statements
(`bench/metering.py`). Where a statement runs on every request it is written here once, with
`:name` placeholders, and sent to the database driver's cursor inside the session's transaction
(the same lock, the same commit). What differs between the dialects lives here: the driver's
placeholders, `FOR UPDATE`, and how a time is stored, bound through `UTCDateTime`'s own
processor so that the rows are exactly those the ORM writes and reads.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from emeritus.store.database import UTCDateTime

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import Dialect
    from sqlalchemy.orm import Session

_PLACEHOLDER = re.compile(r"(?<![:\w]):(\w+)")
_PYFORMAT: dict[str, str] = {}  # statement as written -> psycopg's form, converted once


class DriverSQL:
    """Statements on one transaction's DBAPI cursor; made by `driver_sql(session)`."""

    def __init__(self, session: Session, cursor: Any) -> None:
        connection = session.connection()
        self._cursor = cursor
        self._dialect = connection.dialect
        self.dialect = connection.dialect.name
        self._time = _time_processor(connection.dialect)
        # The driver's IntegrityError (PEP 249): a unique or foreign key refused the write.
        self.IntegrityError: type[Exception] = connection.dialect.loaded_dbapi.IntegrityError

    @property
    def for_update(self) -> str:
        """The row lock of a `SELECT`: SQLite's `BEGIN IMMEDIATE` already holds the database."""
        return " FOR UPDATE" if self.dialect == "postgresql" else ""

    def time(self, value: datetime) -> Any:
        """A timezone-aware time as the ORM's `UTCDateTime` stores it on this database."""
        return self._time(value) if self._time is not None else value

    def run(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        """Execute `sql` (placeholders `:name`); the cursor, for `fetchone` and `rowcount`."""
        self._cursor.execute(self._statement(sql), dict(params or {}))
        return self._cursor

    def rows(self, table: Table, sql: str, params: Mapping[str, Any] | None = None) -> list[Any]:
        """The rows of a `SELECT` from `table`, each with its columns as attributes, converted
        as the ORM converts them (times, dates, booleans: the table's own column types)."""
        cursor = self.run(sql, params)
        names = [d[0] for d in cursor.description]
        convert = [_result_processor(table, name, self._dialect) for name in names]
        return [
            SimpleNamespace(
                **{
                    name: (f(value) if f is not None else value)
                    for name, f, value in zip(names, convert, row, strict=True)
                }
            )
            for row in cursor.fetchall()
        ]

    def _statement(self, sql: str) -> str:
        if self.dialect == "sqlite":  # sqlite3 takes `:name` as written
            return sql
        converted = _PYFORMAT.get(sql)
        if converted is None:  # psycopg: `%(name)s`, and a literal % doubled
            converted = _PLACEHOLDER.sub(r"%(\1)s", sql.replace("%", "%%"))
            _PYFORMAT[sql] = converted
        return converted


_TIME = UTCDateTime()


def _time_processor(dialect: Dialect) -> Callable[[Any], Any] | None:
    """The dialect's own implementation of the type, whose processor SQLAlchemy keeps per
    dialect (SQLite's DATETIME writes the text form with its fraction; the generic type's
    processor would leave the formatting to the driver)."""
    return _TIME.dialect_impl(dialect).bind_processor(dialect)


_PROCESSORS: dict[tuple[str, str, str], Callable[[Any], Any] | None] = {}


def _result_processor(table: Table, column: str, dialect: Dialect) -> Callable[[Any], Any] | None:
    key = (table.name, column, dialect.name)
    if key not in _PROCESSORS:
        kind = table.c[column].type
        _PROCESSORS[key] = kind.dialect_impl(dialect).result_processor(dialect, None)
    return _PROCESSORS[key]


@contextmanager
def driver_sql(session: Session) -> Iterator[DriverSQL]:
    """The session's transaction as plain SQL; what the session has pending is flushed first,
    so the statements see it and run after it, as the ORM's own would."""
    session.flush()
    cursor = session.connection().connection.cursor()
    try:
        yield DriverSQL(session, cursor)
    finally:
        cursor.close()
