"""Shared fixtures: a hermetic home per test, and every store test on SQLite and PostgreSQL.

PostgreSQL is the server on 127.0.0.1:5432 (override with EMERITUS_TEST_POSTGRES_URL); each test
gets its own schema, dropped afterwards. A missing server fails the tests: it is never skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from emeritus.lifecycle import Registry
from emeritus.store import Settings, Store

# Read once at start-up: the hermetic fixture below clears EMERITUS_* variables for each test.
DISALLOW_SKIP = bool(os.environ.get("CI") or os.environ.get("EMERITUS_DISALLOW_SKIP"))
POSTGRES_URL = os.environ.get(
    "EMERITUS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(autouse=True)
def hermetic_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point EMERITUS_HOME at a temporary directory and clear every other setting."""
    for name in list(os.environ):
        if name.startswith("EMERITUS_") and name != "EMERITUS_TEST_POSTGRES_URL":
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("EMERITUS_HOME", str(home))
    monkeypatch.setenv("EMERITUS_ACTOR", "tester")
    # Tests run two at a time on two cores: one llama.cpp thread each, or both collapse.
    monkeypatch.setenv("EMERITUS_THREADS", "1")
    return home


def _admin_engine() -> sa.Engine:
    return sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A URL whose connections use a fresh schema of their own."""
    schema = f"emeritus_test_{uuid.uuid4().hex[:12]}"
    engine = _admin_engine()
    try:
        with engine.connect() as connection:
            connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(f"PostgreSQL at {POSTGRES_URL} is required for these tests: {exc}")
    separator = "&" if "?" in POSTGRES_URL else "?"
    yield f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"
    with engine.connect() as connection:
        connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'emeritus.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def settings(hermetic_home: Path, database_url: str) -> Settings:
    return Settings(home=hermetic_home, database_url=database_url, actor="tester")


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    with Store.open(settings) as opened:
        yield opened


@pytest.fixture
def registry(store: Store) -> Registry:
    return Registry(store)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[None] | pytest.TestReport:
    """In CI (or with EMERITUS_DISALLOW_SKIP=1) a skipped test is a failure: gated suites must
    run, not quietly vanish (restic's RESTIC_TEST_DISALLOW_SKIP)."""
    report: pytest.TestReport = yield  # type: ignore[misc]
    if DISALLOW_SKIP and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped, which is not allowed here: {report.longrepr}"
    return report


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Longest first: the modules whose tests may run longest (their largest timeout) start
    first, so that on two workers the short tests fill the gaps instead of a long one starting
    last and running alone. A module's tests stay together and in order (module fixtures)."""
    longest: dict[str, float] = {}
    for item in items:
        marker = item.get_closest_marker("timeout")
        limit = float(marker.args[0]) if marker and marker.args else 0.0
        key = item.nodeid.split("::")[0]
        longest[key] = max(longest.get(key, 0.0), limit)
    items.sort(key=lambda item: -longest[item.nodeid.split("::")[0]])


# The S3 server (moto) fixtures live in their own module.
from llama_server import llama_server  # noqa: E402, F401
from s3_server import s3_endpoint, s3_url  # noqa: E402, F401
