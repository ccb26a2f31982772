"""The model pool: load on first request, keep alive for a while, stay within a memory budget.
How many generations run on a model at once, and who waits, is not the pool's business: the
gateway's admission layer decides it (docs/design/admission.md). The pool holds no lock while a
model generates, only while it loads one."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from emeritus.runtime.backend import Backend, LoadError

log = logging.getLogger(__name__)

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
        evicted: list[tuple[_Entry, Backend]] = []
        try:
            with self._guard:
                if backend.keep_alive is not None:  # its deployment's own
                    entry.keep_alive = backend.keep_alive
                if self.budget is not None:
                    if size > self.budget:
                        backend.release("budget")
                        raise LoadError(
                            f"{model} needs {size:,} bytes, more than the whole memory "
                            f"budget of {self.budget:,}"
                        )
                    self._make_room(size, model, evicted)
                entry.backend, entry.size, entry.last_used = backend, size, self.clock()
        finally:
            self._release(evicted, "budget")

    def _make_room(self, size: int, loading: str, evicted: list[tuple[_Entry, Backend]]) -> None:
        """Detach idle models, least recently used first, until `size` fits (guard held); each
        one's loading lock is taken, so that nobody loads it again before it is released."""

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
            if entry.loading.acquire(blocking=False):  # else it is being loaded: in use
                evicted.append((entry, self._detach(entry)))
        if used() + size > self.budget:
            raise LoadError(f"cannot load {loading}: the memory budget is taken by models in use")

    def sweep(self) -> list[str]:
        """Unload every idle model whose keep-alive has run out; returns their names."""
        now = self.clock()
        expired: list[tuple[_Entry, Backend]] = []
        names = []
        with self._guard:
            for name, entry in self._entries.items():
                if (
                    entry.backend is not None
                    and entry.busy == 0
                    and now - entry.last_used >= entry.keep_alive
                    and entry.loading.acquire(blocking=False)
                ):
                    expired.append((entry, self._detach(entry)))
                    names.append(name)
        self._release(expired, "idle")
        return names

    def sweeping(self, every: float) -> threading.Event:
        """Sweep every `every` seconds on a thread of its own until the returned event is set
        (the gateway's keep-alive)."""
        done = threading.Event()

        def run() -> None:
            while not done.wait(every):
                try:
                    self.sweep()
                except Exception:  # a model that fails to close must not end the sweeping
                    log.exception("the pool's sweep failed")

        threading.Thread(target=run, name="emeritus-pool-sweep", daemon=True).start()
        return done

    @staticmethod
    def _detach(entry: _Entry) -> Backend:
        assert entry.backend is not None
        backend, entry.backend, entry.size = entry.backend, None, 0
        return backend

    @staticmethod
    def _release(detached: list[tuple[_Entry, Backend]], reason: str) -> None:
        """Release detached backends outside the guard (stopping an engine takes seconds),
        then free their loading locks."""
        for entry, backend in detached:
            try:
                backend.release(reason)
            except Exception:
                log.exception("a model failed to close")
            finally:
                entry.loading.release()

    def ready_backend(self, model: str) -> Backend | None:
        """The model's backend when it is loaded and can answer now, else None: the gateway's
        way past the wait for a start on every request but the first."""
        with self._guard:
            entry = self._entries.get(model)
            backend = entry.backend if entry is not None else None
        return backend if backend is not None and backend.is_ready() else None

    def loaded(self) -> list[str]:
        with self._guard:
            return sorted(n for n, e in self._entries.items() if e.backend is not None)

    def close(self) -> None:
        with self._guard:
            entries = list(self._entries.values())
        for entry in entries:  # a load under way finishes first (its lock, then the guard)
            if not entry.loading.acquire(timeout=30):
                continue
            with self._guard:
                backend = self._detach(entry) if entry.backend is not None else None
            if backend is None:
                entry.loading.release()
            else:
                self._release([(entry, backend)], "shutdown")
