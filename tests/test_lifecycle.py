"""Lifecycle rules: notice periods, successors, cancellation, retirement, availability."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from emeritus.errors import Conflict, InvalidInput, NotFound
from emeritus.lifecycle import Availability, Registry, State
from emeritus.store import Store, list_events, verify_chain

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def _snapshot(registry: Registry, store: Store) -> tuple[object, ...]:
    with store.transaction() as session:
        events = [e.digest for e in list_events(session)]
    return ([m.to_dict() for m in registry.models()], [n.uid for n in registry.notices()], events)


@pytest.fixture
def pair(registry: Registry) -> Registry:
    registry.add(
        "old",
        family="F",
        version="1",
        description="the old one",
        release_date=date(2024, 1, 2),
        now=NOW - 400 * DAY,
    )
    registry.add("new", family="F", version="2", now=NOW - 10 * DAY)
    return registry


def test_add_records_an_active_model_and_an_event(pair: Registry, store: Store) -> None:
    old = pair.get("old")
    assert old.state is State.ACTIVE and old.release_date == date(2024, 1, 2)
    assert old.created_at == NOW - 400 * DAY
    with store.transaction() as session:
        events = list_events(session, subject="model:old")
    assert [e.kind for e in events] == ["model.registered"]
    assert events[0].actor == "tester" and events[0].payload["description"] == "the old one"


@pytest.mark.parametrize("name", ["", "-x", "a/b", "has space", "x" * 101, "ünïcode"])
def test_bad_names_are_refused(registry: Registry, name: str) -> None:
    with pytest.raises(InvalidInput, match="bad model name"):
        registry.add(name)
    assert registry.models() == []


def test_duplicate_name_is_refused(pair: Registry, store: Store) -> None:
    before = _snapshot(pair, store)
    with pytest.raises(Conflict, match="already registered"):
        pair.add("old")
    assert _snapshot(pair, store) == before


def test_deprecate_with_notice(pair: Registry, store: Store) -> None:
    info = pair.deprecate(
        "old",
        retire_at=NOW + 60 * DAY,
        successor="new",
        availability_after=Availability.RESTRICTED,
        now=NOW,
    )
    assert info.state is State.DEPRECATED and info.successor == "new"
    assert info.announced_at == NOW and info.retire_at == NOW + 60 * DAY
    assert info.availability_after is Availability.RESTRICTED and info.availability is None
    with store.transaction() as session:
        kinds = [e.kind for e in list_events(session, subject="model:old")]
        deprecated = list_events(session, kind="lifecycle.deprecated")[0]
    assert kinds == ["model.registered", "lifecycle.deprecated", "notice.published"]
    assert deprecated.payload["forced"] is False and deprecated.payload["successor"] == "new"
    [notice] = pair.notices(model="old")
    assert notice.kind == "deprecation" and "new" in notice.body


def test_short_notice_is_refused_and_changes_nothing(pair: Registry, store: Store) -> None:
    before = _snapshot(pair, store)
    with pytest.raises(Conflict, match=r"notice too short: 30.0 days .* at least 60"):
        pair.deprecate("old", retire_at=NOW + 30 * DAY, successor="new", now=NOW)
    with pytest.raises(InvalidInput, match="--force needs --reason"):
        pair.deprecate("old", retire_at=NOW + 30 * DAY, force=True, reason="  ", now=NOW)
    assert _snapshot(pair, store) == before
    assert pair.get("old").state is State.ACTIVE


def test_short_notice_with_force_and_reason_is_recorded(pair: Registry, store: Store) -> None:
    pair.deprecate("old", retire_at=NOW + 7 * DAY, force=True, reason="security issue", now=NOW)
    with store.transaction() as session:
        [event] = list_events(session, kind="lifecycle.deprecated")
    assert event.payload["forced"] is True and event.payload["reason"] == "security issue"
    assert "security issue" in pair.notices(model="old")[0].body


def test_notice_days_can_be_configured(pair: Registry) -> None:
    pair.deprecate("old", retire_at=NOW + 30 * DAY, notice_days=30, now=NOW)
    with pytest.raises(InvalidInput):
        pair.deprecate("new", retire_at=NOW + 30 * DAY, notice_days=-1, now=NOW)


def test_retirement_date_must_be_in_the_future(pair: Registry) -> None:
    with pytest.raises(Conflict, match="not in the future"):
        pair.deprecate("old", retire_at=NOW - DAY, force=True, reason="oops", now=NOW)


def test_successor_rules(pair: Registry, store: Store) -> None:
    before = _snapshot(pair, store)
    with pytest.raises(NotFound, match="unknown successor 'ghost'"):
        pair.deprecate("old", retire_at=NOW + 90 * DAY, successor="ghost", now=NOW)
    with pytest.raises(Conflict, match="its own successor"):
        pair.deprecate("old", retire_at=NOW + 90 * DAY, successor="old", now=NOW)
    assert _snapshot(pair, store) == before
    pair.deprecate("new", retire_at=NOW + 90 * DAY, now=NOW)
    with pytest.raises(Conflict, match="successor new is deprecated"):
        pair.deprecate("old", retire_at=NOW + 90 * DAY, successor="new", now=NOW)


def test_unknown_model(registry: Registry) -> None:
    with pytest.raises(NotFound, match="unknown model 'ghost'"):
        registry.deprecate("ghost", retire_at=NOW + 90 * DAY, now=NOW)
    with pytest.raises(NotFound):
        registry.get("ghost")


def test_deprecating_twice_is_illegal(pair: Registry) -> None:
    pair.deprecate("old", retire_at=NOW + 90 * DAY, now=NOW)
    with pytest.raises(Conflict, match="already deprecated"):
        pair.deprecate("old", retire_at=NOW + 120 * DAY, now=NOW)


def test_cancel_returns_to_active_and_says_so(pair: Registry, store: Store) -> None:
    pair.deprecate("old", retire_at=NOW + 90 * DAY, successor="new", now=NOW)
    info = pair.cancel("old", reason="users still need it", now=NOW + DAY)
    assert info.state is State.ACTIVE and info.retire_at is None and info.successor is None
    assert [n.kind for n in pair.notices(model="old")] == ["deprecation", "cancellation"]
    with store.transaction() as session:
        [event] = list_events(session, kind="lifecycle.deprecation_cancelled")
    assert event.payload["reason"] == "users still need it"
    assert event.payload["cancelled_successor"] == "new"
    with pytest.raises(InvalidInput):
        pair.cancel("new", reason=" ")
    with pytest.raises(Conflict, match="illegal transition active → active"):
        pair.cancel("new", reason="x")


def test_tick_retires_due_models_once(pair: Registry, store: Store) -> None:
    pair.deprecate(
        "old",
        retire_at=NOW + 60 * DAY,
        successor="new",
        availability_after=Availability.RESTRICTED,
        now=NOW,
    )
    assert pair.tick(now=NOW + 59 * DAY) == []
    [retired] = pair.tick(now=NOW + 61 * DAY)
    assert retired.state is State.RETIRED and retired.retired_at == NOW + 60 * DAY
    assert retired.availability is Availability.RESTRICTED
    before = _snapshot(pair, store)
    assert pair.tick(now=NOW + 62 * DAY) == []
    assert _snapshot(pair, store) == before
    with store.transaction() as session:
        [event] = list_events(session, kind="lifecycle.retired")
    assert event.actor == "system"


def test_retire_before_the_date_needs_force_and_reason(pair: Registry, store: Store) -> None:
    pair.deprecate("old", retire_at=NOW + 60 * DAY, now=NOW)
    before = _snapshot(pair, store)
    with pytest.raises(Conflict, match="not yet reached"):
        pair.retire("old", now=NOW + DAY)
    with pytest.raises(InvalidInput, match="needs --reason"):
        pair.retire("old", force=True, now=NOW + DAY)
    assert _snapshot(pair, store) == before
    info, changed = pair.retire("old", force=True, reason="leak", now=NOW + DAY)
    assert changed and info.retired_at == NOW + DAY and info.availability is Availability.NONE


def test_active_model_cannot_be_retired_directly(pair: Registry) -> None:
    with pytest.raises(Conflict, match="deprecate it first"):
        pair.retire("old", force=True, reason="x", now=NOW)


def test_retired_availability_changes_but_state_never(pair: Registry) -> None:
    pair.deprecate("old", retire_at=NOW + 60 * DAY, now=NOW)
    pair.tick(now=NOW + 60 * DAY)
    info, changed = pair.retire("old", availability=Availability.PUBLIC, now=NOW + 70 * DAY)
    assert changed and info.availability is Availability.PUBLIC
    info, changed = pair.retire("old", availability=Availability.PUBLIC, now=NOW + 71 * DAY)
    assert not changed
    assert [n.kind for n in pair.notices(model="old")] == [
        "deprecation",
        "retirement",
        "availability",
    ]
    with pytest.raises(Conflict, match="a retired model never changes state"):
        pair.cancel("old", reason="come back")
    with pytest.raises(Conflict, match="retired → deprecated"):
        pair.deprecate("old", retire_at=NOW + 200 * DAY, now=NOW + 71 * DAY)


def test_every_change_keeps_the_chain_intact(pair: Registry, store: Store) -> None:
    pair.deprecate("old", retire_at=NOW + 60 * DAY, successor="new", now=NOW)
    pair.cancel("old", reason="changed our minds", now=NOW + DAY)
    pair.deprecate("old", retire_at=NOW + 100 * DAY, now=NOW + 2 * DAY)
    pair.tick(now=NOW + 200 * DAY)
    with store.transaction() as session:
        report = verify_chain(session)
    assert report.ok and report.events == 10
