"""The model pool: load on first request, keep alive for a while, stay within a memory budget.
How many generations run on a model at once, and who waits, is not the pool's business: the
gateway's admission layer decides it (docs/design/admission.md). The pool holds no lock while a
model generates, only while it loads one."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from emeritus.runtime.backend import Backend, LoadError

DEFAULT_KEEP_ALIVE = 300.0


@dataclass
class _Entry:
    backend: Backend | None = None
    size: int = 0
    last_used: float = 0.0
    busy: int = 0
    keep_alive: float = DEFAULT_KEEP_ALIVE
    loading: threading.Lock = field(default_factory=threading.Lock)  # one load at a time


Opener = Callable[[str], tuple[Backend, int]]  # model name -> (backend, bytes it occupies)


class ModelPool:
    def __init__(
        self,
        opener: Opener,
        *,
        keep_alive: float = DEFAULT_KEEP_ALIVE,
        budget_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.opener = opener
        self.keep_alive = keep_alive
        self.budget = budget_bytes
        self.clock = clock
        self._entries: dict[str, _Entry] = {}
        self._guard = threading.Lock()

    def set_keep_alive(self, model: str, seconds: float) -> None:
        with self._guard:
            self._entries.setdefault(model, _Entry(keep_alive=self.keep_alive)).keep_alive = seconds

    @contextlib.contextmanager
    def use(self, model: str) -> Iterator[Backend]:
        """The loaded model (loaded first if needed), never unloaded while the block runs. Holds
        no lock while the block runs: concurrent users of one model are the caller's to limit."""
        with self._guard:
            entry = self._entries.setdefault(model, _Entry(keep_alive=self.keep_alive))
            entry.busy += 1
        try:
            with entry.loading:
                if entry.backend is None:
                    self._load(model, entry)
                backend = entry.backend
            assert backend is not None
            try:
                yield backend
            finally:
                entry.last_used = self.clock()
        finally:
            with self._guard:
                entry.busy -= 1

    def _load(self, model: str, entry: _Entry) -> None:
        backend, size = self.opener(model)
        with self._guard:
            if self.budget is not None:
                if size > self.budget:
                    backend.close()
                    raise LoadError(
                        f"{model} needs {size:,} bytes, more than the whole memory "
                        f"budget of {self.budget:,}"
                    )
                self._make_room(size, model)
            entry.backend, entry.size, entry.last_used = backend, size, self.clock()

    def _make_room(self, size: int, loading: str) -> None:
        """Unload idle models, least recently used first, until `size` fits (guard held)."""

        def used() -> int:
            return sum(e.size for e in self._entries.values() if e.backend is not None)

        idle = sorted(
            (
                (n, e)
                for n, e in self._entries.items()
                if e.backend is not None and e.busy == 0 and n != loading
            ),
            key=lambda item: item[1].last_used,
        )
        assert self.budget is not None
        for _name, entry in idle:
            if used() + size <= self.budget:
                break
            self._unload(entry)
        if used() + size > self.budget:
            raise LoadError(f"cannot load {loading}: the memory budget is taken by models in use")

    def sweep(self) -> list[str]:
        """Unload every idle model whose keep-alive has run out; returns their names."""
        now = self.clock()
        unloaded = []
        with self._guard:
            for name, entry in self._entries.items():
                if (
                    entry.backend is not None
                    and entry.busy == 0
                    and now - entry.last_used >= entry.keep_alive
                ):
                    self._unload(entry)
                    unloaded.append(name)
        return unloaded

    @staticmethod
    def _unload(entry: _Entry) -> None:
        assert entry.backend is not None
        entry.backend.close()
        entry.backend, entry.size = None, 0

    def loaded(self) -> list[str]:
        with self._guard:
            return sorted(n for n, e in self._entries.items() if e.backend is not None)

    def close(self) -> None:
        with self._guard:
            for entry in self._entries.values():
                if entry.backend is not None:
                    self._unload(entry)
