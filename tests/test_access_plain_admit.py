"""The common admission as plain SQL (access/plain_admit.py) admits exactly what the ORM path
admits, with the same ticket, and declines every other case having written nothing, on SQLite and
PostgreSQL. The refusals themselves stay the ORM path's (tests/test_access.py, every denial)."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pytest

from emeritus.access import Gate, Grants, Keys, Policies, Principals, check_terms
from emeritus.access.keys_format import parse_key
from emeritus.access.plain_admit import admit_plain
from emeritus.access.tables import GrantRecord
from emeritus.lifecycle import Availability, Registry
from emeritus.store import Store, driver_sql, utc_now
from test_access import HEIR, MODEL, grant_rita, legacy_key, world  # noqa: F401 (fixture)


class _Rollback(Exception):
    pass


def _plain(store: Store, key: str, model: str = MODEL, **kw: Any) -> dict[str, Any] | None:
    now = kw.pop("now", utc_now())
    key_id = parse_key(key)
    assert key_id is not None
    with store.transaction() as session, driver_sql(session) as sql:
        return admit_plain(sql, key_id, key, model, now, kw.get("reserve", 0))


def _orm(store: Store, key: str, model: str = MODEL, **kw: Any) -> Any:
    """The ORM path's ticket for the same request, in a transaction rolled back after."""
    gate, now = Gate(store), kw.get("now", utc_now())
    key_id = parse_key(key)
    assert key_id is not None
    found: list[Any] = []
    with pytest.raises(_Rollback), store.transaction() as session:
        row = gate._key(session, key_id, key, now)
        found.append(gate._admit_key(session, row, model, now, kw.get("reserve", 0)))
        raise _Rollback
    return found[0]


def _counters(store: Store) -> list[tuple[int, ...]]:
    with store.transaction() as session:
        return [
            (g.id, g.minute_start, g.minute_requests, g.period_start, g.period_tokens)
            for g in session.query(GrantRecord).order_by(GrantRecord.id)
        ]


def test_an_admitted_request_gets_the_ticket_the_orm_path_gives(world: Store) -> None:  # noqa: F811
    key = grant_rita(world, tokens=1000)
    now = utc_now()
    expected = dataclasses.asdict(_orm(world, key, now=now, reserve=300))
    admitted = _plain(world, key, now=now, reserve=300)
    assert admitted is not None
    for field in ("request_id",):  # new for every request
        assert admitted.pop(field).startswith("req_") and expected.pop(field)
    assert {k: v for k, v in admitted.items() if k != "info"} == {
        k: v for k, v in expected.items() if k != "info"
    }
    assert dataclasses.asdict(admitted["info"]) == expected["info"]
    assert admitted["info"].successor == HEIR
    # The reservation was taken: the ORM path now sees 300 tokens fewer.
    assert _orm(world, key, reserve=0).tokens_left == 1000 - 300


def test_the_successor_chain_is_followed_as_far_as_the_orm_path_follows_it(
    world: Store,  # noqa: F811
) -> None:
    registry = Registry(world)
    registry.add("newest")
    now = utc_now()
    registry.deprecate(HEIR, retire_at=now + timedelta(days=61), successor="newest", now=now)
    key = grant_rita(world)
    admitted = _plain(world, key)
    assert admitted is not None
    assert admitted["info"].successor_chain == (HEIR, "newest")
    assert admitted["info"] == _orm(world, key).info


def test_every_other_case_is_declined_with_nothing_written(world: Store) -> None:  # noqa: F811
    key = grant_rita(world, days=120, tokens=1000, requests_per_minute=2)  # outlives the key
    spare = Keys(world).create("rita", [MODEL]).key
    Grants(world).grant("rita", HEIR, terms=check_terms(30, 1000, "day", 5))
    other = Keys(world).create("rita", [HEIR]).key  # her own key, for the other model only
    Grants(world).grant("paul", MODEL, terms=check_terms(30, 1000, "day", 5))
    pauls = Keys(world).create("paul", [MODEL]).key  # lives 90 days, the grant 30
    Principals(world).add("nora", tier="research")
    before = _counters(world)
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert _plain(world, forged) is None  # right id, wrong secret
    assert _plain(world, key, "never-registered") is None
    assert _plain(world, other, MODEL) is None  # outside the key's scope
    assert _plain(world, key, reserve=1001) is None  # over the quota
    assert _plain(world, key, now=utc_now() + timedelta(days=91)) is None  # the key expired
    assert _plain(world, pauls, now=utc_now() + timedelta(days=31)) is None  # the grant expired
    assert _plain(world, legacy_key(world, "nora", MODEL)) is None  # no grant
    Keys(world).revoke(spare.split("_")[1], reason="leaked")
    assert _plain(world, spare) is None
    assert _counters(world) == before
    assert _plain(world, key) is not None  # and the same grant admits the good key
    minute = (utc_now() + timedelta(hours=1)).replace(second=5)  # a minute of its own
    assert _plain(world, key, now=minute) is not None
    assert _plain(world, key, now=minute) is not None
    counted = _counters(world)
    assert _plain(world, key, now=minute) is None  # the third in a minute: rate limited
    assert _counters(world) == counted
    later = utc_now() + timedelta(hours=2)
    assert _plain(world, key, now=later) is not None
    Registry(world).retire(MODEL, availability=Availability.NONE)
    assert _plain(world, key, now=later + timedelta(minutes=1)) is None  # answering nobody
    Registry(world).retire(MODEL, availability=Availability.RESTRICTED)
    assert _plain(world, key, now=later + timedelta(minutes=2)) is not None
    Grants(world).revoke("rita", MODEL, reason="purpose ended")  # its keys with it
    assert _plain(world, legacy_key(world, "rita", MODEL)) is None  # a key left: the grant's gone


def test_a_tiers_entitlement_is_left_to_the_orm_path(world: Store) -> None:  # noqa: F811
    policy = Policies(world).get(MODEL).document()
    tiers = {"paid": {"tokens": 500, "period": "day", "requests_per_minute": 5}}
    Policies(world).set(MODEL, {**policy, "tiers": tiers})
    Principals(world).add("tess", tier="paid")
    gate = Gate(world)
    entitled = Keys(world).create("tess", [MODEL]).key
    assert _plain(world, entitled) is None  # no grant yet: made by the ORM path on first use
    decision = gate.authorize(entitled, MODEL)
    assert decision.allowed  # the gate's ORM path made the entitlement's grant
    assert _plain(world, entitled) is None  # a tier's grant: the entitlement is re-checked there
