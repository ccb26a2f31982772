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
