"""Issue 14, finding 7: refusals grew the event log one event each, and the console's pages loaded
all of them. Refusals are now counted (Prometheus, and one `access.denials` event per minute and
reason, shared by every gateway process through `access_denials`); the usage, signals and
timeline pages show a page at a time (docs/design/access.md, Refusals; docs/design/console.md)."""

from __future__ import annotations

import json
import re
import secrets
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from emeritus.access import (
    DENIALS_EVENT,
    Accounts,
    DenialReason,
    Denials,
    Gate,
    Grants,
    Keys,
    Principals,
    check_terms,
)
from emeritus.access.denials import CLOSE_AFTER, OTHER, TOP, minute_of
from emeritus.gateway import mock_opener, new_admin_key, running
from emeritus.gateway.console_pages import PAGE_ROWS
from emeritus.lifecycle import Registry
from emeritus.store import Settings, Store, append_event, list_events, utc_now
from gateway_server import ADMIN_KEY, gateway

MODEL = "kept-model"
PASSWORD = "correct horse battery"
FLOOD = 5000
pytestmark = pytest.mark.timeout(300)


def _at(minute: int, second: float = 0) -> datetime:
    return datetime.fromtimestamp(minute + second, UTC)


def _denial_metrics(base: str) -> dict[str, float]:
    text = httpx.get(
        base.removesuffix("/v1") + "/metrics", headers={"Authorization": f"Bearer {ADMIN_KEY}"}
    ).text
    return {
        reason: float(value)
        for reason, value in re.findall(r'emeritus_denials_total\{reason="(\w+)"\} (\S+)', text)
    }


def _pipelined(port: int, requests: list[bytes]) -> list[int]:
    """Send `requests` back to back on one connection (HTTP/1.1 pipelining, as a flood would)
    while reading the answers; their statuses, in order."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
        sender = threading.Thread(target=connection.sendall, args=(b"".join(requests),))
        sender.start()
        received = b""
        while received.count(b"HTTP/1.1 ") < len(requests):
            chunk = connection.recv(1 << 16)
            assert chunk, "the gateway closed the connection mid-flood"
            received += chunk
        sender.join()
    return [int(status) for status in re.findall(rb"HTTP/1\.1 (\d{3}) ", received)]


def test_an_unauthenticated_flood_costs_one_event_per_minute_and_reason(tmp_path: Path) -> None:
    home = tmp_path / "home"
    settings = Settings(home=home, database_url=f"sqlite:///{home}/emeritus.db", actor="tester")
    with Store.open(settings) as store:
        Registry(store).add(MODEL)
        with store.transaction() as session:
            first_new = list_events(session, limit=1)[-1].seq + 1
    # What an attacker sends: no key, garbage, and well-formed keys that do not exist, each
    # naming a model of its choosing (never a bounded set).
    keys = [b"", b"Authorization: Bearer not-a-key\r\n"]
    keys.append(f"Authorization: Bearer emk_{secrets.token_hex(6)}_{'A' * 43}\r\n".encode())

    def request(n: int) -> bytes:
        body = json.dumps({"model": f"guess-{n}", "messages": [{"role": "user", "content": "hi"}]})
        return (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: gateway\r\n"
            b"Content-Type: application/json\r\n%bContent-Length: %d\r\n\r\n%b"
            % (keys[n % 3], len(body), body.encode())
        )

    started = utc_now()
    with gateway(home) as base:
        before = _denial_metrics(base)
        port = int(base.removesuffix("/v1").rsplit(":", 1)[1])
        shares = [[request(n) for n in range(k, FLOOD, 4)] for k in range(4)]
        with ThreadPoolExecutor(4) as pool:
            statuses = [s for part in pool.map(lambda r: _pipelined(port, r), shares) for s in part]
        after = _denial_metrics(base)
    ended = utc_now()  # the gateway has stopped: it wrote and logged everything it counted
    assert statuses == [401] * FLOOD
    sent = {"missing_key": len(range(0, FLOOD, 3))}
    sent["unknown_key"] = FLOOD - sent["missing_key"]
    assert {r: after.get(r, 0) - before.get(r, 0) for r in sent} == sent  # Prometheus: each one
    with Store.open(settings) as store, store.transaction() as session:
        logged = [e for e in list_events(session) if e.seq >= first_new]
    minutes = (minute_of(ended) - minute_of(started)) // 60 + 1
    assert {e.kind for e in logged} == {DENIALS_EVENT}
    assert len(logged) <= len(sent) * minutes
    counted = {r: sum(e.payload["count"] for e in logged if e.payload["reason"] == r) for r in sent}
    assert counted == {r: int(after[r]) for r in sent}  # every refusal, the start-up probes too
    # Nothing the attacker chose reaches the log: no guessed model, no unknown key id.
    assert all(e.payload["keys"] == {} and e.payload["models"] == {} for e in logged)
    assert not any("guess-" in str(e.payload) for e in logged)


@pytest.fixture
def world(store: Store) -> Store:
    Registry(store).add(MODEL)
    Principals(store).add("rita", tier="research")
    Grants(store).grant("rita", MODEL, terms=check_terms(30, 10**6, "day", 10**4))
    return store


def test_processes_share_one_rollup_logged_once(world: Store) -> None:
    """Two gateway processes (two counters on one database) refuse in the same minute: one
    event per reason carries both counts, however many flushes run, concurrently or not; counts
    written after the minute was logged get an event of their own, never a lost count."""
    minute = minute_of(utc_now()) - 600
    a, b, late = Denials(world), Denials(world), Denials(world)
    for n in range(30):
        a.count("missing_key", 401, _at(minute, n))
        b.count("missing_key", 401, _at(minute, n + 1))
        b.count("rate_limited", 429, _at(minute, n), key_id="0123456789ab", model=MODEL)
    late.count("missing_key", 401, _at(minute, 59))
    assert not a.due(_at(minute, 59)) and a.flush(_at(minute, 59)) == []  # the minute runs on
    assert a.flush(_at(minute, 61)) == [] and b.flush(_at(minute, 62)) == []  # written, not over
    closing = _at(minute, 60 + CLOSE_AFTER + 1)
    ready = threading.Barrier(2)
    found: list[list[object]] = []

    def close(denials: Denials) -> None:
        ready.wait()
        found.append(list(denials.flush(closing)))

    threads = [threading.Thread(target=close, args=(d,)) for d in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(len(f) for f in found) == [0, 2]  # one flush logged both reasons, once
    assert a.flush(closing + timedelta(seconds=30)) == []
    [extra] = late.flush(closing + timedelta(seconds=60))
    assert extra.payload["count"] == 1
    with world.transaction() as session:
        events = list_events(session, kind=DENIALS_EVENT)
    by_reason: dict[str, int] = {}
    for event in events:
        assert event.payload["minute"].startswith(_at(minute).strftime("%Y-%m-%dT%H:%M"))
        by_reason[event.payload["reason"]] = (
            by_reason.get(event.payload["reason"], 0) + event.payload["count"]
        )
    assert by_reason == {"missing_key": 61, "rate_limited": 30}
    [limited] = [e for e in events if e.payload["reason"] == "rate_limited"]
    assert limited.payload["keys"] == {"0123456789ab": 30}
    assert limited.payload["models"] == {MODEL: 30}
    totals = {t.reason: t.count for t in a.totals()}
    assert totals == by_reason


def test_the_rollup_is_bounded_and_names_only_keys_and_models_that_exist(world: Store) -> None:
    gate = Gate(world)
    key = Keys(world).create("rita", [MODEL]).key
    key_id = key.split("_")[1]
    Keys(world).revoke(key_id, reason="leaked")
    now = utc_now()
    for _ in range(300):  # a revoked key, used again and again: visible by its id
        assert gate.authorize(key, MODEL, now=now).reason is DenialReason.KEY_REVOKED
    for n in range(300):  # unknown keys naming unknown models: neither is kept
        guess = f"emk_{n:012x}_{'B' * 43}"
        assert gate.authorize(guess, f"guess-{n}", now=now).reason is DenialReason.UNKNOWN_KEY
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert gate.authorize(forged, MODEL, now=now).reason is DenialReason.UNKNOWN_KEY
    many = Denials(world)
    for n in range(1000):  # more distinct keys than a minute keeps: the rest count as one
        many.count("rate_limited", 429, now, key_id=f"{n:012x}", model=MODEL)
    gate.close()
    [rolled] = many.flush(now, final=True)
    with world.transaction() as session:
        events = {e.payload["reason"]: e.payload for e in list_events(session, kind=DENIALS_EVENT)}
    assert events["key_revoked"]["count"] == 300
    assert events["key_revoked"]["keys"] == {key_id: 300}
    assert events["unknown_key"]["count"] == 301
    assert events["unknown_key"]["keys"] == {key_id: 1}  # a real key's id with a wrong secret
    assert events["unknown_key"]["models"] == {}
    assert len(rolled.payload["keys"]) == TOP + 1 and rolled.payload["keys"][OTHER] == 1000 - TOP
    assert sum(rolled.payload["keys"].values()) == 1000
    assert key not in str(events) and forged not in str(events)


def test_refusals_logged_one_by_one_before_are_still_counted(settings: Settings) -> None:
    """A database from before the change: its `access.denied` events count in the totals as
    refusals already logged (nothing is logged twice), without what they named."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy.orm import Session

    from emeritus.store.database import MIGRATIONS, Database

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    database = Database(settings.database_url)
    with database.engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0009")
    minute = minute_of(utc_now()) - 7200
    with Session(database.engine) as session, session.begin():
        for n, reason in enumerate(["missing_key", "missing_key", "unknown_key", "missing_key"]):
            when = _at(minute + 60 * (n // 3), n)
            payload = {"reason": reason, "status": 401, "key_id": None, "model": "guess"}
            append_event(
                session,
                kind="access.denied",
                subject="access:gateway",
                actor="gateway",
                payload={**payload, "time": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")},
            )
    database.engine.dispose()
    with Store.open(settings) as store:
        totals = {t.reason: (t.count, t.latest) for t in Denials(store).totals()}
        assert totals == {
            "missing_key": (3, _at(minute + 60)),
            "unknown_key": (1, _at(minute)),
        }
        assert Denials(store).flush(final=True) == []  # already logged, one by one


# -- the pages, a page at a time -------------------------------------------------------------------


@pytest.fixture
def console(world: Store) -> Iterator[httpx.Client]:
    Accounts(world).add("otto", "operator", PASSWORD)
    me = Accounts(world).sign_in("otto", PASSWORD)
    assert me is not None and me.token is not None
    with running(world, admin_key=new_admin_key(), opener=mock_opener()) as base:
        root = base.removesuffix("/v1") + "/console"
        with httpx.Client(
            base_url=root, cookies={"emeritus_session": me.token}, timeout=60
        ) as client:
            yield client


def _follow(client: httpx.Client, path: str, row: str, link: str) -> list[list[str]]:
    """Every page from `path` on through its `link`, as the rows matching `row` on each."""
    pages = []
    while True:
        shown = client.get(path)
        assert shown.status_code == 200, shown.text
        pages.append(re.findall(row, shown.text))
        assert len(pages[-1]) <= PAGE_ROWS
        found = re.search(rf'<a href="([^"]+)">{link}</a>', shown.text)
        if found is None:
            return pages
        path = found.group(1).removeprefix("/console")


def test_the_timeline_comes_a_page_at_a_time(world: Store, console: httpx.Client) -> None:
    with world.transaction() as session:
        for n in range(2 * PAGE_ROWS + 7):
            append_event(session, kind=f"test.step{n:03d}", subject=f"model:{MODEL}", actor="t")
    pages = _follow(console, f"/models/{MODEL}", r"test\.step(\d{3})", "Earlier events")
    assert [len(p) for p in pages[:3]] == [PAGE_ROWS, PAGE_ROWS, 7]
    steps = [int(s) for page in reversed(pages) for s in page]
    assert steps == list(range(2 * PAGE_ROWS + 7))  # each event once, oldest first
    refused = console.get(f"/models/{MODEL}", params={"before": "1 OR 1=1"})
    assert refused.status_code == 400 and "before must be a whole number" in refused.text


def test_the_signals_page_lists_logged_minutes_a_page_at_a_time(
    world: Store, console: httpx.Client
) -> None:
    denials = Denials(world)
    start = minute_of(utc_now()) - 3 * 3600
    for n in range(PAGE_ROWS + 20):
        denials.count("unknown_key", 401, _at(start + 60 * n))
    assert len(denials.flush(final=True)) == PAGE_ROWS + 20
    pages = _follow(console, "/signals", r"<td>#(\d+)</td>", "Earlier refusals")
    assert [len(p) for p in pages] == [PAGE_ROWS, 20]
    seqs = [int(s) for page in pages for s in page]
    assert seqs == sorted(seqs, reverse=True) and len(set(seqs)) == PAGE_ROWS + 20
    first = console.get("/signals").text
    assert re.search(r"<td>unknown_key</td><td>70</td>", first)  # the total, from the table
    refused = console.get("/signals", params={"before": "-5"})
    assert refused.status_code == 400 and "before must be a whole number" in refused.text


def test_the_usage_totals_come_a_page_at_a_time(world: Store, console: httpx.Client) -> None:
    gate, principals, grants, keys = Gate(world), Principals(world), Grants(world), Keys(world)
    terms = check_terms(30, 10**6, "day", 10**4)
    for n in range(PAGE_ROWS + 1):
        name = f"user-{n:03d}"
        principals.add(name, tier="research")
        grants.grant(name, MODEL, terms=terms)
        ticket = gate.authorize(keys.create(name, [MODEL]).key, MODEL).ticket
        assert ticket is not None
        gate.record_usage(ticket, prompt_tokens=3, completion_tokens=2, latency_s=0.01)
    pages = _follow(console, "/usage", r"<td>(user-\d{3})</td>", "Next page")
    assert [len(p) for p in pages] == [PAGE_ROWS, 1]
    assert [u for page in pages for u in page] == [f"user-{n:03d}" for n in range(PAGE_ROWS + 1)]
    for bad in ("0", "two", "9" * 40):
        refused = console.get("/usage", params={"page": bad})
        assert refused.status_code == 400 and "page must be a whole number" in refused.text
