"""Plain SQL on a session's connection (store/driver.py): what it writes is what the ORM writes,
on SQLite and PostgreSQL, and a refused write changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from emeritus.store import Store, append_event, driver_sql, list_events, verify_chain
from emeritus.store.driver import DriverSQL
from emeritus.store.events import EventRow

# A whole second: a driver's own adapter would store it without the fraction, and the stored
# text would then sort apart from the ORM's (SQLite keeps times as text).
ON_THE_SECOND = datetime(2026, 12, 3, 10, 0, 0, tzinfo=UTC)
LATER = datetime(2026, 12, 3, 10, 0, 0, 500_000, tzinfo=UTC)


def _row(seq: int, when: datetime, kind: str, digest: str) -> EventRow:
    return EventRow(
        seq=seq,
        v=1,
        time=when,
        kind=kind,
        subject="s",
        actor="a",
        payload="{}",
        prev_digest="x",
        digest=digest,
    )


def _stored_times(store: Store) -> list[object]:
    with store.db.engine.connect() as connection:
        return list(connection.execute(sa.text("SELECT time FROM events ORDER BY seq")).scalars())


def test_an_event_appended_by_plain_sql_is_stored_as_the_orm_stores_one(store: Store) -> None:
    with store.transaction() as session:  # one row the ORM writes, in the same form
        session.add(_row(1, ON_THE_SECOND, "test.orm", "y"))
    orm_form = _stored_times(store)[0]
    with store.transaction() as session:
        session.execute(sa.delete(EventRow))
    for when in (ON_THE_SECOND, LATER):
        with store.transaction() as session:
            append_event(session, kind="test.step", subject="s", actor="a", time=when)
    stored = _stored_times(store)
    assert stored[0] == orm_form  # the same text on SQLite, the same timestamp on PostgreSQL
    with store.transaction() as session:
        events = list_events(session)
        assert verify_chain(session).ok
    assert [e.time for e in events] == [ON_THE_SECOND, LATER]
    assert all(e.time.tzinfo is not None for e in events)


def test_a_write_refused_by_a_unique_column_raises_the_drivers_error_and_changes_nothing(
    store: Store,
) -> None:
    with store.transaction() as session:
        append_event(session, kind="test.step", subject="s", actor="a")
    with (
        pytest.raises(Exception) as refused,
        store.transaction() as session,
        driver_sql(session) as sql,
    ):
        error = sql.IntegrityError
        sql.run(
            "INSERT INTO events (seq, v, time, kind, subject, actor, payload, prev_digest, "
            "digest) VALUES (:seq, 1, :time, 'test.dup', 's', 'a', '{}', 'p', 'd')",
            {"seq": 1, "time": sql.time(LATER)},  # seq 1 exists
        )
    assert isinstance(refused.value, error)
    with store.transaction() as session:
        assert [e.kind for e in list_events(session)] == ["test.step"]


def test_placeholders_are_the_drivers_own(store: Store) -> None:
    with store.transaction() as session, driver_sql(session) as sql:
        row = sql.run("SELECT :a || '%' AS joined, :b AS n", {"a": "x:y", "b": 7}).fetchone()
    assert tuple(row) == ("x:y%", 7)


def test_an_orm_change_pending_in_the_session_is_written_before_the_plain_statements(
    store: Store,
) -> None:
    with store.transaction() as session:
        session.add(_row(5, LATER, "test.pending", "z"))
        with driver_sql(session) as sql:
            count = sql.run("SELECT count(*) FROM events WHERE seq = 5").fetchone()[0]
    assert count == 1


def test_for_update_is_only_said_where_the_database_has_it(store: Store) -> None:
    with store.transaction() as session, driver_sql(session) as sql:
        assert isinstance(sql, DriverSQL)
        expected = " FOR UPDATE" if store.settings.database_url.startswith("postgresql") else ""
        assert sql.for_update == expected
