"""What the gate's two transactions cost a request: `Gate.authorize` (key, model, grant, quota
reservation) and `Gate.record_usage` (settlement, the usage row, a hash-chained event), called
in process on SQLite, one request at a time; against the same statements sent straight to
SQLite through the database's own DBAPI connection (no ORM, no SQLAlchemy), in the same run on
the same database file. The difference is what an ORM-free hot path could save; the rest is
what only taking metering off the response path (or batching it) would.

Run: .venv/bin/python bench/metering.py [--requests 400] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from gateway import MODEL, prepare
from sqlalchemy import select

from emeritus.access import Gate
from emeritus.access.tables import KeyRecord
from emeritus.store import Settings, Store, iso, utc_now


def timed(step: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = step()
    return time.perf_counter() - started, result


def through_gate(store: Store, key: str, requests: int) -> tuple[list[float], list[float]]:
    gate = Gate(store)
    admit, record = [], []
    for _ in range(requests):
        spent, decision = timed(partial(gate.authorize, key, MODEL, reserve_tokens=100))
        admit.append(spent)
        metered = partial(
            gate.record_usage, decision.ticket, prompt_tokens=10, completion_tokens=20
        )
        record.append(timed(partial(metered, latency_s=0.01))[0])
    return admit, record


def direct(store: Store, key_id: str, requests: int) -> tuple[list[float], list[float]]:
    """The same reads and writes as the gate's, as plain SQL on one DBAPI connection."""
    raw = store.db.engine.raw_connection()
    db = raw.driver_connection
    assert db is not None
    admit, record = [], []
    try:
        for _ in range(requests):
            spent, rows = timed(partial(_admit, db, key_id))
            admit.append(spent)
            record.append(timed(partial(_record, db, *rows))[0])
    finally:
        raw.close()
    return admit, record


def _admit(db: Any, key_id: str) -> tuple[int, int, int, int]:
    db.execute("BEGIN IMMEDIATE")
    key_row, principal, secret, _ = db.execute(
        "SELECT id, principal_id, secret_hash, models FROM access_keys WHERE key_id = ?", (key_id,)
    ).fetchone()
    hashlib.sha256(secret.encode()).hexdigest()  # the gate compares the key's hash
    model = db.execute("SELECT * FROM models WHERE name = ?", (MODEL,)).fetchone()[0]
    grant = db.execute(
        "SELECT * FROM access_grants WHERE principal_id = ? AND model_id = ? "
        "AND revoked_at IS NULL ORDER BY id DESC LIMIT 1",
        (principal, model),
    ).fetchone()[0]
    db.execute("SELECT * FROM access_principals WHERE id = ?", (principal,)).fetchone()
    db.execute(
        "UPDATE access_grants SET minute_requests = minute_requests + 1, "
        "period_tokens = period_tokens + 100 WHERE id = ?",
        (grant,),
    )
    db.execute("COMMIT")
    return key_row, principal, model, grant


def _record(db: Any, key_row: int, principal: int, model: int, grant: int) -> None:
    db.execute("BEGIN IMMEDIATE")
    db.execute("SELECT * FROM access_grants WHERE id = ?", (grant,)).fetchone()
    db.execute("UPDATE access_grants SET period_tokens = period_tokens - 70 WHERE id = ?", (grant,))
    db.execute("SELECT document FROM access_policies WHERE model_id = ?", (model,)).fetchone()
    now = iso(utc_now())
    db.execute(
        "INSERT INTO access_usage (request_id, time, principal_id, key_id, model_id, grant_id, "
        "status, prompt_tokens, completion_tokens, latency_ms, cost_micros) "
        "VALUES (?, ?, ?, ?, ?, ?, 200, 10, 20, 10, 0)",
        (f"req_{uuid.uuid4().hex}", now, principal, key_row, model, grant),
    )
    seq, prev = db.execute("SELECT seq, digest FROM event_chain_head WHERE id = 1").fetchone()
    payload = json.dumps({"model": MODEL, "prompt_tokens": 10}, sort_keys=True)
    digest = "sha256:" + hashlib.sha256(f"{seq + 1}{prev}{payload}".encode()).hexdigest()
    db.execute(
        "INSERT INTO events (seq, v, time, kind, subject, actor, payload, prev_digest, digest) "
        "VALUES (?, 1, ?, 'access.request', ?, 'bench', ?, ?, ?)",
        (seq + 1, now, f"model:{MODEL}", payload, prev, digest),
    )
    db.execute("UPDATE event_chain_head SET seq = ?, digest = ? WHERE id = 1", (seq + 1, digest))
    db.execute("COMMIT")


def ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    gated: list[tuple[float, float]] = []
    plain: list[tuple[float, float]] = []
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        key, _ = prepare(home)
        settings = Settings(home=home, database_url=f"sqlite:///{home}/emeritus.db", actor="bench")
        with Store.open(settings) as store:
            with store.transaction() as session:
                key_id = session.scalars(select(KeyRecord.key_id)).one()
            through_gate(store, key, 20)  # warm: statement caches, page cache
            direct(store, key_id, 20)
            for _ in range(args.rounds):  # interleaved: one round varies with the machine
                admit, record = through_gate(store, key, args.requests)
                gated.append((ms(admit), ms(record)))
                admit, record = direct(store, key_id, args.requests)
                plain.append((ms(admit), ms(record)))
    g_admit, g_record = (round(statistics.median(x), 3) for x in zip(*gated, strict=True))
    p_admit, p_record = (round(statistics.median(x), 3) for x in zip(*plain, strict=True))
    print(f"\n{args.requests} requests x {args.rounds} rounds, medians of the rounds' medians (ms)")
    print("\n| path | authorize | record_usage | both |")
    print("|---|---:|---:|---:|")
    print(f"| emeritus Gate (SQLAlchemy ORM) | {g_admit} | {g_record} | {g_admit + g_record:.3f} |")
    print(
        f"| same statements, sqlite3 direct | {p_admit} | {p_record} | {p_admit + p_record:.3f} |"
    )
    print(
        f"ratio: {(g_admit + g_record) / (p_admit + p_record):.1f}x "
        f"(authorize {g_admit / p_admit:.1f}x, record_usage {g_record / p_record:.1f}x)"
    )


if __name__ == "__main__":
    main()
