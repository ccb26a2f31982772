"""The model pool: load on demand (once per model), keep-alive, memory budget (LRU)."""

from __future__ import annotations

import threading

import pytest

from emeritus.runtime import ChatRequest, LoadError, Message
from emeritus.runtime.mock import MockBackend
from emeritus.runtime.pool import ModelPool


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Recording(MockBackend):
    """Logs its closes."""

    def __init__(self, name: str, log: list[str]) -> None:
        super().__init__({"default": name})
        self.name_, self.log = name, log

    def close(self) -> None:
        self.log.append(f"close {self.name_}")


SIZES = {"a": 100, "b": 100, "c": 150, "huge": 1000}


@pytest.fixture
def setup() -> tuple[ModelPool, list[str], Clock]:
    log: list[str] = []
    clock = Clock()

    def opener(name: str) -> tuple[Recording, int]:
        log.append(f"load {name}")
        return Recording(name, log), SIZES[name]

    return ModelPool(opener, keep_alive=300, budget_bytes=250, clock=clock), log, clock


ASK = ChatRequest((Message("user", "hello"),))


def test_loads_on_first_use_and_reuses(setup: tuple[ModelPool, list[str], Clock]) -> None:
    pool, log, _ = setup
    assert pool.loaded() == []
    with pool.use("a") as backend:
        assert backend.chat(ASK).text == "a"
    with pool.use("a"):
        pass
    assert log == ["load a"] and pool.loaded() == ["a"]


def test_keep_alive_unloads_idle_models(setup: tuple[ModelPool, list[str], Clock]) -> None:
    pool, log, clock = setup
    pool.set_keep_alive("b", 10)
    with pool.use("a"), pool.use("b"):
        pass
    clock.now = 11
    assert pool.sweep() == ["b"]
    clock.now = 299
    assert pool.sweep() == []
    clock.now = 300
    assert pool.sweep() == ["a"]
    assert log[-2:] == ["close b", "close a"] and pool.loaded() == []


def test_budget_evicts_least_recently_used(setup: tuple[ModelPool, list[str], Clock]) -> None:
    pool, log, clock = setup
    with pool.use("a"):
        pass
    clock.now = 1
    with pool.use("b"):
        pass
    clock.now = 2
    with pool.use("a"):  # a is now the most recently used
        pass
    with pool.use("c"):  # 150 more: b (least recent) must go, a stays
        pass
    assert "close b" in log and "close a" not in log
    assert pool.loaded() == ["a", "c"]


def test_models_in_use_are_never_evicted(setup: tuple[ModelPool, list[str], Clock]) -> None:
    pool, _, _ = setup
    with (
        pool.use("a"),
        pool.use("c"),
        pytest.raises(LoadError, match="models in use"),
        pool.use("b"),
    ):
        pass
    with pytest.raises(LoadError, match="more than the whole memory budget"), pool.use("huge"):
        pass


def test_concurrent_uses_load_once_and_hold_no_lock(
    setup: tuple[ModelPool, list[str], Clock],
) -> None:
    """Loading is one at a time per model; generating is not the pool's to serialise: the
    admission layer's slots are (docs/design/admission.md), so a reader that stalls while it
    holds a model cannot block the pool."""
    pool, log, _ = setup
    together = threading.Barrier(3, timeout=5)
    failures: list[BaseException] = []

    def use() -> None:
        try:
            with pool.use("a"):
                together.wait()  # all three hold the model at once
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=use) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == [] and log.count("load a") == 1


class Reasoned(Recording):
    """Logs why the pool let it go, and keeps its deployment's own keep-alive."""

    def __init__(self, name: str, log: list[str], keep_alive: float | None = None) -> None:
        super().__init__(name, log)
        self.keep_alive = keep_alive

    def release(self, reason: str) -> None:
        self.log.append(f"release {self.name_} ({reason})")


def test_the_pool_says_why_it_releases_and_honours_a_models_own_keep_alive() -> None:
    log: list[str] = []
    clock = Clock()
    own = {"a": 10.0, "b": None, "c": None}

    def opener(name: str) -> tuple[Reasoned, int]:
        return Reasoned(name, log, own[name]), SIZES[name]

    pool = ModelPool(opener, keep_alive=300, budget_bytes=250, clock=clock)
    with pool.use("a"):
        pass
    with pool.use("b"):
        pass
    clock.now = 11  # past a's own 10 s, long before the pool's 300
    assert pool.sweep() == ["a"]
    with pool.use("a"):
        pass
    clock.now = 20
    with pool.use("c"):  # 150 more: b (least recently used) goes for the budget
        pass
    pool.close()
    assert log[:2] == ["release a (idle)", "release b (budget)"]
    assert sorted(log[2:]) == ["release a (shutdown)", "release c (shutdown)"]


def test_sweeping_stops_idle_models_by_itself() -> None:
    log: list[str] = []

    def opener(name: str) -> tuple[Reasoned, int]:
        return Reasoned(name, log, 0.2), 0

    pool = ModelPool(opener)
    done = pool.sweeping(0.05)
    try:
        with pool.use("a"):
            pass
        deadline = threading.Event()
        for _ in range(100):
            if pool.loaded() == []:
                break
            deadline.wait(0.05)
        assert pool.loaded() == [] and log == ["release a (idle)"]
    finally:
        done.set()
        pool.close()


def test_a_model_being_released_is_not_loaded_again_until_it_is_gone() -> None:
    """A sweep releases outside the pool's lock (an engine takes seconds to stop); a request
    for that model meanwhile waits, then loads a fresh one: never two at once."""
    log: list[str] = []
    releasing, resume = threading.Event(), threading.Event()

    class Slow(Reasoned):
        def release(self, reason: str) -> None:
            releasing.set()
            resume.wait(5)
            super().release(reason)

    clock = Clock()
    pool = ModelPool(lambda name: (Slow(name, log, 1.0), 0), clock=clock)
    with pool.use("a"):
        pass
    clock.now = 2
    sweeper = threading.Thread(target=pool.sweep)
    sweeper.start()
    assert releasing.wait(5)
    other_done = threading.Event()

    def use_again() -> None:
        with pool.use("a"):
            log.append("used again")
        other_done.set()

    user = threading.Thread(target=use_again)
    user.start()
    assert not other_done.wait(0.3)  # waits for the release to finish
    resume.set()
    sweeper.join(5)
    user.join(5)
    assert log == ["release a (idle)", "used again"]
