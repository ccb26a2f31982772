"""The hash-chained event log: appending, listing, and detecting every kind of tampering."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from emeritus.errors import InvalidInput
from emeritus.store import GENESIS_DIGEST, Store, append_event, list_events, verify_chain


def _append(store: Store, count: int, subject: str = "model:a") -> None:
    for n in range(count):
        with store.transaction() as session:
            append_event(
                session,
                kind="test.step",
                subject=subject,
                actor="tester",
                payload={"n": n, "text": "héllo"},
            )


def _execute(store: Store, sql: str, **params: object) -> None:
    with store.db.engine.begin() as connection:
        connection.execute(sa.text(sql), params)


def test_append_links_each_event_to_the_previous(store: Store) -> None:
    _append(store, 3)
    with store.transaction() as session:
        events = list_events(session)
        report = verify_chain(session)
    assert [e.seq for e in events] == [1, 2, 3]
    assert events[0].prev_digest == GENESIS_DIGEST
    assert events[1].prev_digest == events[0].digest
    assert events[2].prev_digest == events[1].digest
    assert events[0].time.tzinfo is not None
    assert events[0].payload == {"n": 0, "text": "héllo"}
    assert report.ok and report.events == 3 and report.head_digest == events[2].digest


def test_empty_log_verifies(store: Store) -> None:
    with store.transaction() as session:
        report = verify_chain(session)
    assert report.ok and report.events == 0 and report.head_digest == GENESIS_DIGEST


def test_filters_by_subject_kind_and_limit(store: Store) -> None:
    _append(store, 2, "model:a")
    _append(store, 3, "model:b")
    with store.transaction() as session:
        append_event(session, kind="other.thing", subject="model:b", actor="x")
        assert [e.seq for e in list_events(session, subject="model:a")] == [1, 2]
        assert len(list_events(session, subject="model:b")) == 4
        assert [e.kind for e in list_events(session, kind="other.")] == ["other.thing"]
        assert [e.seq for e in list_events(session, limit=2)] == [5, 6]


def test_event_rolls_back_with_its_transaction(store: Store) -> None:
    _append(store, 1)
    with pytest.raises(RuntimeError), store.transaction() as session:
        append_event(session, kind="test.step", subject="model:a", actor="tester")
        raise RuntimeError("the change failed")
    _append(store, 1)
    with store.transaction() as session:
        assert [e.seq for e in list_events(session)] == [1, 2]
        assert verify_chain(session).ok


def test_refuses_non_json_payload_and_missing_fields(store: Store) -> None:
    with store.transaction() as session:
        with pytest.raises(InvalidInput):
            append_event(session, kind="k", subject="s", actor="a", payload={"x": float("nan")})
        with pytest.raises(InvalidInput):
            append_event(
                session, kind="k", subject="s", actor="a", payload={"when": datetime.now(UTC)}
            )
        with pytest.raises(InvalidInput):
            append_event(session, kind="", subject="s", actor="a")
    with store.transaction() as session:
        assert list_events(session) == []


def _verify(store: Store) -> tuple[int | None, str]:
    with store.transaction() as session:
        report = verify_chain(session)
    assert not report.ok
    return report.first_bad, report.problem or ""


def test_detects_an_edited_payload(store: Store) -> None:
    _append(store, 5)
    _execute(store, "UPDATE events SET payload = :p WHERE seq = 3", p='{"n":99,"text":"héllo"}')
    bad, problem = _verify(store)
    assert bad == 3 and problem.startswith("event 3 (test.step, model:a)")
    assert "does not match its digest" in problem


@pytest.mark.parametrize(
    "column,value", [("actor", "mallory"), ("kind", "test.other"), ("subject", "model:z")]
)
def test_detects_an_edited_field(store: Store, column: str, value: str) -> None:
    _append(store, 4)
    _execute(store, f"UPDATE events SET {column} = :v WHERE seq = 2", v=value)
    assert _verify(store)[0] == 2


def test_detects_an_edited_time(store: Store) -> None:
    _append(store, 3)
    with store.transaction() as session:
        first = list_events(session)[0]
    _execute(
        store,
        "UPDATE events SET time = :t WHERE seq = 1",
        t=first.time.replace(year=2020)
        if store.db.is_sqlite is False
        else first.time.replace(year=2020, tzinfo=None),
    )
    assert _verify(store)[0] == 1


def test_detects_an_edit_whose_digest_was_recomputed(store: Store) -> None:
    """An editor who re-hashes the row is caught by the next event's link."""
    from emeritus.store import canonical_json, digest_of
    from emeritus.store.events import EventRow, _canonical_fields  # the writer's own recipe

    _append(store, 5)
    with store.transaction() as session:
        row = session.get(EventRow, 2)
        assert row is not None
        row.actor = "mallory"
        row.digest = digest_of(
            _canonical_fields(
                row.seq,
                row.time,
                row.kind,
                row.subject,
                row.actor,
                {"n": 1, "text": "héllo"},
                row.prev_digest,
                row.v,
            )
        )
        assert canonical_json({"n": 1, "text": "héllo"}) == row.payload
    bad, problem = _verify(store)
    assert bad == 2 and "altered and re-hashed" in problem


def test_detects_a_deleted_event(store: Store) -> None:
    _append(store, 5)
    _execute(store, "DELETE FROM events WHERE seq = 3")
    bad, problem = _verify(store)
    assert bad == 3 and problem.startswith("event 3 deleted")


def test_detects_deleted_newest_events(store: Store) -> None:
    _append(store, 5)
    _execute(store, "DELETE FROM events WHERE seq >= 4")
    bad, problem = _verify(store)
    assert bad == 4 and "events 4-5 deleted" in problem


def test_detects_reordered_events(store: Store) -> None:
    _append(store, 5)
    # Swap the positions of events 2 and 4 (through a free seq, as the key is unique).
    _execute(store, "UPDATE events SET seq = 100 WHERE seq = 2")
    _execute(store, "UPDATE events SET seq = 2 WHERE seq = 4")
    _execute(store, "UPDATE events SET seq = 4 WHERE seq = 100")
    bad, problem = _verify(store)
    assert bad == 2 and "does not match its digest" in problem


def test_detects_an_event_inserted_behind_the_heads_back(store: Store) -> None:
    _append(store, 2)
    with store.transaction() as session:
        last = list_events(session)[-1]
    _execute(
        store,
        "INSERT INTO events (seq, v, time, kind, subject, actor, payload, prev_digest, "
        "digest) SELECT 3, v, time, kind, subject, actor, payload, :prev, :d FROM events "
        "WHERE seq = 2",
        prev=last.digest,
        d="sha256:" + "1" * 64,
    )
    assert _verify(store)[0] == 3


def test_refuses_an_unknown_format_version(store: Store) -> None:
    _append(store, 2)
    _execute(store, "UPDATE events SET v = 7 WHERE seq = 2")
    bad, problem = _verify(store)
    assert bad == 2 and "unknown event format version 7" in problem


def test_concurrent_appenders_never_fork_the_chain(store: Store) -> None:
    """Several writers (threads, each with its own connection) append at once."""
    errors: list[Exception] = []

    def writer(name: str) -> None:
        try:
            _append(store, 15, f"model:{name}")
        except Exception as exc:  # noqa: BLE001 - collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"m{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with store.transaction() as session:
        report = verify_chain(session)
        assert [e.seq for e in list_events(session)] == list(range(1, 61))
    assert report.ok and report.events == 60
