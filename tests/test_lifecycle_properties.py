"""Property tests: random sequences of transitions and dates against a reference of the rules.

The reference below restates docs/design/lifecycle.md independently of the implementation; after
every step the database must agree with it, a refused step must change nothing, and the event
chain must verify.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from emeritus.errors import Conflict, EmeritusError, InvalidInput
from emeritus.lifecycle import Availability, Registry
from emeritus.store import Settings, Store, list_events, verify_chain

NAMES = ["m0", "m1", "m2", "m3"]
START = datetime(2030, 1, 1, tzinfo=UTC)
availability = st.sampled_from(list(Availability))
reasons = st.sampled_from([None, "", "  ", "a recorded reason"])


@dataclass(frozen=True)
class Expected:
    state: str = "active"
    retire_at: datetime | None = None
    successor: str | None = None
    after: str | None = None
    availability: str | None = None


def _has_reason(reason: str | None) -> bool:
    return bool(reason and reason.strip())


class LifecycleMachine(RuleBasedStateMachine):
    # Set by the test functions below: a machine is a class, its database a fixture.
    database_url: str = ""
    home: Path = Path()

    @initialize()
    def setup(self) -> None:
        self.store = Store.open(
            Settings(home=self.home, database_url=self.database_url, actor="prop")
        )
        _reset(self.store)
        self.registry = Registry(self.store)
        self.now = START
        self.expected: dict[str, Expected] = {}
        for name in NAMES:
            self.registry.add(name, now=self.now)
            self.expected[name] = Expected()

    def teardown(self) -> None:
        if hasattr(self, "store"):
            self.store.close()

    # -- the operations, each with the outcome the rules predict -----------------------------

    def _attempt(self, expected_error: type[EmeritusError] | None, action: object) -> bool:
        before = self._snapshot()
        try:
            action()  # type: ignore[operator]
        except EmeritusError as exc:
            assert expected_error is not None, f"unexpected refusal: {exc}"
            assert type(exc) is expected_error, f"expected {expected_error.__name__}: {exc}"
            assert self._snapshot() == before, "a refused operation changed something"
            return False
        assert expected_error is None, f"expected {expected_error.__name__}, but it succeeded"
        return True

    @rule(days=st.integers(0, 90), hours=st.integers(0, 23))
    def advance_clock(self, days: int, hours: int) -> None:
        self.now += timedelta(days=days, hours=hours)

    @rule(name=st.sampled_from(NAMES), offset=st.sampled_from([-1, 0, 0, 1]))
    def cron_at_retirement_date(self, name: str, offset: int) -> None:
        """Boundaries matter most: tick just before, on, or just after a retirement time."""
        retire_at = self.expected[name].retire_at
        if retire_at is not None and retire_at + timedelta(hours=offset) > self.now:
            self.now = retire_at + timedelta(hours=offset)
            self.tick()

    @rule(
        name=st.sampled_from(NAMES),
        ahead=st.sampled_from([24 * 30, 24 * 60]) | st.integers(-24, 24 * 120),
        successor=st.sampled_from([None, *NAMES]),
        notice_days=st.sampled_from([0, 30, 60]),
        force=st.booleans(),
        reason=reasons,
        after=availability,
    )
    def deprecate(
        self,
        name: str,
        ahead: int,
        successor: str | None,
        notice_days: int,
        force: bool,
        reason: str | None,
        after: Availability,
    ) -> None:
        retire_at = self.now + timedelta(hours=ahead)
        model = self.expected[name]
        error: type[EmeritusError] | None = None
        if model.state != "active" or retire_at <= self.now:
            error = Conflict
        elif retire_at - self.now < timedelta(days=notice_days):
            error = (
                InvalidInput if force and not _has_reason(reason) else (None if force else Conflict)
            )
        if (
            error is None
            and successor is not None
            and (successor == name or self.expected[successor].state != "active")
        ):
            error = Conflict
        if self._attempt(
            error,
            lambda: self.registry.deprecate(
                name,
                retire_at=retire_at,
                successor=successor,
                notice_days=notice_days,
                force=force,
                reason=reason,
                availability_after=after,
                now=self.now,
            ),
        ):
            self.expected[name] = Expected("deprecated", retire_at, successor, after.value)

    @rule(name=st.sampled_from(NAMES), reason=reasons)
    def cancel(self, name: str, reason: str | None) -> None:
        error: type[EmeritusError] | None = None
        if not _has_reason(reason):
            error = InvalidInput
        elif self.expected[name].state != "deprecated":
            error = Conflict
        if self._attempt(
            error, lambda: self.registry.cancel(name, reason=reason or "", now=self.now)
        ):
            self.expected[name] = Expected()

    @rule(
        name=st.sampled_from(NAMES),
        chosen=st.one_of(st.none(), availability),
        force=st.booleans(),
        reason=reasons,
    )
    def retire(
        self, name: str, chosen: Availability | None, force: bool, reason: str | None
    ) -> None:
        model = self.expected[name]
        error: type[EmeritusError] | None = None
        if model.state == "active":
            error = Conflict
        elif model.state == "deprecated" and model.retire_at and self.now < model.retire_at:
            error = (
                InvalidInput if force and not _has_reason(reason) else (None if force else Conflict)
            )
        if not self._attempt(
            error,
            lambda: self.registry.retire(
                name, availability=chosen, force=force, reason=reason, now=self.now
            ),
        ):
            return
        if model.state == "deprecated":
            self.expected[name] = replace(
                model, state="retired", availability=(chosen.value if chosen else model.after)
            )
        elif chosen is not None:
            self.expected[name] = replace(model, availability=chosen.value)

    @rule()
    def tick(self) -> None:
        retired = {m.name for m in self.registry.tick(now=self.now)}
        due = {
            n
            for n, m in self.expected.items()
            if m.state == "deprecated" and m.retire_at and m.retire_at <= self.now
        }
        assert retired == due
        for name in due:
            self.expected[name] = replace(
                self.expected[name], state="retired", availability=self.expected[name].after
            )

    # -- what must always hold ---------------------------------------------------------------

    @invariant()
    def database_agrees_with_the_rules(self) -> None:
        if not hasattr(self, "store"):
            return
        for info in self.registry.models():
            model = self.expected[info.name]
            assert info.state.value == model.state
            assert info.retire_at == model.retire_at
            assert info.successor == model.successor
            assert (info.availability and info.availability.value) == model.availability
            if model.state == "retired":
                assert info.availability is not None

    @invariant()
    def chain_verifies(self) -> None:
        if not hasattr(self, "store"):
            return
        with self.store.transaction() as session:
            assert verify_chain(session).ok

    def _snapshot(self) -> tuple[object, ...]:
        with self.store.transaction() as session:
            head = [e.digest for e in list_events(session, limit=1)]
        return ([m.to_dict() for m in self.registry.models()], len(self.registry.notices()), head)


def _reset(store: Store) -> None:
    with store.db.engine.begin() as connection:
        for table in ("notices", "models", "events"):
            connection.execute(sa.text(f"DELETE FROM {table}"))
        connection.execute(
            sa.text("UPDATE event_chain_head SET seq = 0, digest = :g"), {"g": "sha256:" + "0" * 64}
        )


def _run(database_url: str, home: Path, examples: int) -> None:
    LifecycleMachine.database_url, LifecycleMachine.home = database_url, home
    LifecycleMachine.TestCase.settings = settings(
        max_examples=examples,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    LifecycleMachine.TestCase().runTest()


def test_random_transitions_on_sqlite(tmp_path: Path) -> None:
    _run(f"sqlite:///{tmp_path}/prop.db", tmp_path, examples=60)


def test_random_transitions_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    _run(postgres_url, tmp_path, examples=25)
