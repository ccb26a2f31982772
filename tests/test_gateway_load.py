"""The gateway under load, over PostgreSQL, with the mock backend (what is measured is the
gateway: auth, quota and metering): two processes sharing one database enforce one rate limit and
one token quota; 200 concurrent clients for a minute get no error, and every answered request has
exactly one usage row."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from emeritus.access import Grants, Keys, Principals, check_terms
from emeritus.lifecycle import Availability, Registry
from emeritus.store import Settings, Store, utc_now
from gateway_server import gateway

MODEL = "served-model"
LOAD_SECONDS = float(os.environ.get("EMERITUS_LOAD_SECONDS", "60"))
pytestmark = pytest.mark.timeout(600)


def retired_model(store: Store) -> None:
    from datetime import timedelta

    registry = Registry(store)
    registry.add(MODEL)
    registry.add("its-successor")
    now = utc_now()
    registry.deprecate(
        MODEL,
        retire_at=now + timedelta(days=61),
        successor="its-successor",
        availability_after=Availability.RESTRICTED,
        now=now,
    )
    registry.tick(now=now + timedelta(days=62))


def key_with_grant(store: Store, name: str, *, tokens: int, rpm: int) -> str:
    Principals(store).add(name, tier="paid")
    Grants(store).grant(name, MODEL, terms=check_terms(30, tokens, "day", rpm))
    return Keys(store).create(name, [MODEL]).key


async def hammer(
    bases: list[str], key: str, *, clients: int, seconds: float | None, each: int | None
) -> list[tuple[int, str]]:
    """`clients` concurrent loops, each sending to the bases in turn, for `seconds` or `each`
    requests; (status, completion id or error code) per response."""
    results: list[tuple[int, str]] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def loop(index: int) -> None:
            deadline = time.monotonic() + seconds if seconds else None
            sent = 0
            while (deadline and time.monotonic() < deadline) or (each and sent < each):
                base = bases[(index + sent) % len(bases)]
                response = await client.post(
                    f"{base}/chat/completions",
                    headers={"Authorization": f"Bearer {key}"},
                    json={
                        "model": MODEL,
                        "messages": [{"role": "user", "content": "hi"}],
                        "max_tokens": 8,
                    },
                )
                body = response.json()
                tag = body.get("id") or body.get("error", {}).get("code", "")
                results.append((response.status_code, tag))
                sent += 1

        await asyncio.gather(*(loop(i) for i in range(clients)))
    return results


def usage_ids(settings: Settings) -> list[str]:
    with Store.open(settings) as store, store.transaction() as session:
        return list(session.execute(sa.text("SELECT request_id FROM access_usage")).scalars())


def test_two_gateways_on_one_database_enforce_one_limit(tmp_path: Path, postgres_url: str) -> None:
    settings = Settings(home=tmp_path, database_url=postgres_url, actor="tester")
    with Store.open(settings) as store:
        retired_model(store)
        by_rate = key_with_grant(store, "rate", tokens=10**9, rpm=40)
        by_tokens = key_with_grant(store, "tokens", tokens=60, rpm=100_000)
    # A rate window is a clock minute: start early in one, so that all requests fall inside it.
    if time.time() % 60 > 30:
        time.sleep(60 - time.time() % 60 + 0.5)
    script = tmp_path / "mock.yaml"
    script.write_text("default: I am a mock model.\n")  # 5 completion tokens
    with (
        gateway(tmp_path, database_url=postgres_url, mock=script) as a,
        gateway(tmp_path, database_url=postgres_url, mock=script) as b,
    ):
        rated = asyncio.run(hammer([a, b], by_rate, clients=20, seconds=None, each=5))
        tokened = asyncio.run(hammer([a, b], by_tokens, clients=20, seconds=None, each=5))
    counts = Counter(status for status, _ in rated)
    assert counts == {200: 40, 429: 60}, counts  # exactly the limit, across both processes
    answered = Counter(status for status, _ in tokened)
    # Each request reserves 26 tokens (8 + 2 characters + 16 for the message) and uses 6 (1 + 5):
    # one after another, 6 fit in 60; racing, fewer; never more than the quota is used.
    assert 1 <= answered[200] <= 6 and answered[200] + answered[429] == 100, answered
    with Store.open(settings) as store, store.transaction() as session:
        used = session.execute(
            sa.text(
                "SELECT sum(prompt_tokens + completion_tokens) FROM access_usage u "
                "JOIN access_principals p ON p.id = u.principal_id WHERE p.name = 'tokens'"
            )
        ).scalar_one()
    assert used == 6 * answered[200] <= 60
    assert len(usage_ids(settings)) == 40 + answered[200]


def test_two_hundred_clients_for_a_minute(tmp_path: Path, postgres_url: str) -> None:
    settings = Settings(home=tmp_path, database_url=postgres_url, actor="tester")
    with Store.open(settings) as store:
        retired_model(store)
        key = key_with_grant(store, "busy", tokens=10**12, rpm=10**6 - 1)
    script = tmp_path / "mock.yaml"
    script.write_text("default: A short answer from the mock model.\n")
    with gateway(tmp_path, database_url=postgres_url, mock=script) as base:
        started = time.monotonic()
        results = asyncio.run(hammer([base], key, clients=200, seconds=LOAD_SECONDS, each=None))
        elapsed = time.monotonic() - started
    statuses = Counter(status for status, _ in results)
    assert statuses == {200: len(results)}, statuses
    answered = sorted(tag.removeprefix("chatcmpl-") for _, tag in results)
    recorded = sorted(rid.removeprefix("req_") for rid in usage_ids(settings))
    assert recorded == answered  # exactly one usage row per answered request, no stray row
    print(
        f"\n{len(results)} requests from 200 clients in {elapsed:.0f} s: "
        f"{len(results) / elapsed:.0f} requests/s"
    )
