"""The store: settings, migrations on first use, and a writer killed mid-flight."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

import emeritus.access  # registers the access tables on the metadata
import emeritus.archive  # and the archive tables
import emeritus.chat  # and the console's chat
import emeritus.corner  # and the essay channel tables
import emeritus.interview  # and the interview tables
import emeritus.lifecycle
import emeritus.notify.tables  # and notice delivery's (the package loads its modules on use)
import emeritus.report  # and the report tables
from emeritus.errors import InvalidInput
from emeritus.store import Base, Database, Settings, Store, atomic_write, list_events, verify_chain


def test_settings_from_environment(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "EMERITUS_HOME": str(tmp_path / "h"),
            "EMERITUS_NOTICE_DAYS": "90",
            "EMERITUS_PUBLIC_URL": "https://models.example.org/",
            "EMERITUS_ACTOR": "ops",
        }
    )
    assert settings.home == (tmp_path / "h").resolve()
    assert settings.database_url == f"sqlite:///{settings.home / 'emeritus.db'}"
    assert settings.notice_days == 90 and settings.actor == "ops"
    assert settings.public_url == "https://models.example.org"
    other = Settings.from_env({"EMERITUS_DATABASE_URL": "postgresql+psycopg://h/db"}, home=tmp_path)
    assert other.database_url == "postgresql+psycopg://h/db" and other.notice_days == 60


def test_default_home_is_the_user_data_directory(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert Settings.from_env({}).home == (tmp_path / "xdg" / "emeritus").resolve()


@pytest.mark.parametrize("value", ["-1", "lots", ""])
def test_bad_notice_days(value: str) -> None:
    with pytest.raises(InvalidInput, match="EMERITUS_NOTICE_DAYS"):
        Settings.from_env({"EMERITUS_NOTICE_DAYS": value})


def test_bad_database_url() -> None:
    with pytest.raises(InvalidInput, match="bad database URL"):
        Database("not a url")


def test_migrations_match_the_tables(store: Store) -> None:
    """The hand-written migrations create exactly what the ORM tables declare."""
    with store.db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def _alembic_config() -> Config:
    from emeritus.store.database import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def test_migration_runs_once_and_is_idempotent(settings: Settings) -> None:
    with Store.open(settings) as first, first.transaction() as session:
        head = session.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    assert head == ScriptDirectory.from_config(_alembic_config()).get_current_head()
    with Store.open(settings) as second, second.transaction() as session:
        assert session.execute(sa.text("SELECT count(*) FROM event_chain_head")).scalar() == 1


def test_the_head_is_read_without_alembic_as_alembic_reads_it() -> None:
    """A store that is current opens without importing Alembic: the head is the highest
    numbered file, so every revision must be its file's number, in one unbranched chain."""
    from emeritus.store.database import schema_head

    script = ScriptDirectory.from_config(_alembic_config())
    assert schema_head() == script.get_current_head()
    for revision in script.walk_revisions():
        assert revision.path is not None
        assert Path(revision.path).name.startswith(f"{revision.revision}_")


def test_concurrent_first_use_migrates_once(database_url: str, tmp_path: Path) -> None:
    errors: list[Exception] = []

    def opener() -> None:
        try:
            Store.open(Settings(home=tmp_path, database_url=database_url)).close()
        except Exception as exc:  # noqa: BLE001 - collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_times_are_utc_aware_on_every_backend(store: Store) -> None:
    from datetime import datetime, timedelta, timezone

    from emeritus.store import UTCDateTime

    column = UTCDateTime()
    with pytest.raises(ValueError, match="naive datetime refused"):
        column.process_bind_param(datetime(2030, 1, 1), store.db.engine.dialect)  # noqa: DTZ001
    registry = emeritus.lifecycle.Registry(store)
    plus_two = timezone(timedelta(hours=2))
    registry.add("m", now=datetime(2030, 1, 1, 12, tzinfo=plus_two))
    created = registry.get("m").created_at
    assert created.utcoffset() == timedelta(0) and created.hour == 10


def test_atomic_write_replaces_whole_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "file.txt"
    atomic_write(target, b"first")
    atomic_write(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]


WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from emeritus.lifecycle import Registry
    from emeritus.store import Settings, Store
    store = Store.open(Settings(home=Path(sys.argv[1]), database_url=sys.argv[2], actor="w"))
    registry = Registry(store)
    n = 0
    while True:
        registry.add(f"m{n}")
        n += 1
        if n == 5:
            print("ready", flush=True)
""")


def test_a_killed_writer_leaves_a_consistent_log(database_url: str, tmp_path: Path) -> None:
    """SIGKILL a process that keeps registering models: every committed model has its event,
    nothing is half-written, and the chain verifies."""
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path), database_url],
        stdout=subprocess.PIPE,
        text=True,
        env=os.environ.copy(),
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    time.sleep(0.3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with Store.open(Settings(home=tmp_path, database_url=database_url)) as store:
        registry = emeritus.lifecycle.Registry(store)
        names = {m.name for m in registry.models()}
        with store.transaction() as session:
            events = list_events(session)
            report = verify_chain(session)
        assert report.ok, report.problem
        assert len(names) >= 5
        assert {e.subject for e in events} == {f"model:{n}" for n in names}
        registry.add("after-the-crash")
        with store.transaction() as session:
            assert verify_chain(session).ok


def test_threads_of_one_process_take_turns_without_sleeping(tmp_path: Path) -> None:
    """SQLite's busy handler sleeps up to 100 ms between tries, so threads of one process (a
    gateway's requests) queue on a lock of the process's own instead; every transaction still
    lands, in one chain."""
    store = Store.open(Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path}/e.db"))
    failures: list[BaseException] = []

    def append(worker: int) -> None:
        try:
            for n in range(15):
                store.record("test.step", f"model:w{worker}", {"n": n})
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=append, args=(w,)) for w in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    with store.transaction() as session:
        assert len(list_events(session, limit=1000)) == 12 * 15
        assert verify_chain(session).ok


def test_a_transaction_that_waits_too_long_for_its_turn_fails_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from emeritus.errors import Conflict
    from emeritus.store import database

    monkeypatch.setattr(database, "BUSY_TIMEOUT_S", 0.2)
    store = Store.open(Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path}/e.db"))
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store.transaction():
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    try:
        with pytest.raises(Conflict, match=r"the database is locked: waited 0\.2 s"):
            store.record("test.step", "model:a", {})
    finally:
        release.set()
        holder.join()
    store.record("test.step", "model:a", {})  # and it is free again
