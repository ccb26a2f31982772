"""Running the gateway: models opened from the archive (or scripted, for load tests of the layers
above the runtime), a pool within a memory budget, the admission layer's settings (queue wait,
stall timeout, slots), uvicorn on the chosen address."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from emeritus.archive import Archive
from emeritus.errors import EmeritusError
from emeritus.gateway.admission import AdmissionSettings
from emeritus.gateway.app import create_app
from emeritus.runtime import Backend, MockBackend, ModelPool, open_preserved
from emeritus.store import Store

Opener = Callable[[str], tuple[Backend, int]]
# Seconds an idle keep-alive connection stays open. uvicorn's default, 5 s, is shorter than the
# time a client that alternates between servers, or waits in a model's queue, leaves a pooled
# connection idle: the server then closes it just as the client reuses it (a reset the client
# sees as a read error). 75 s is what common proxies keep.
KEEP_ALIVE_S = 75
# Seconds uvicorn waits for open connections at shutdown: a client that never reads again keeps
# its connection open (holding no slot), and must not keep the server from stopping.
SHUTDOWN_WAIT = 10
# Seconds between two sweeps of the pool: an idle model (or engine) stops within this long of
# its keep-alive running out.
SWEEP_EVERY = 1.0


def preserved_opener(archive: Archive, **options: Any) -> Opener:
    """Each model from its preserved GGUF weights, memory-mapped from the archive."""

    def opener(model: str) -> tuple[Backend, int]:
        return open_preserved(archive, model, **options)

    return opener


def mock_opener(script: str | Path | dict[str, Any] | None = None) -> Opener:
    """A scripted backend for every model: for testing the gateway, never for serving."""

    def opener(_model: str) -> tuple[Backend, int]:
        return MockBackend(script), 0

    return opener


def flushing_refusals(app: FastAPI) -> None:
    """While the app is served, its refusal counts are written every few seconds, and all of
    them when it stops: at the end of its lifespan, which uvicorn reaches on SIGTERM too."""
    inner = app.router.lifespan_context
    denials = app.state.gateway.gate.denials

    @contextlib.asynccontextmanager
    async def lifespan(served: Any) -> AsyncIterator[Any]:
        with denials.flushing():
            async with inner(served) as state:
                yield state

    app.router.lifespan_context = lifespan


def serve(
    store: Store,
    *,
    host: str,
    port: int,
    admin_key: str,
    opener: Opener,
    budget_bytes: int | None = None,
    keep_alive: float = 300.0,
    admission: AdmissionSettings | None = None,
    log_level: str = "warning",
) -> None:
    import uvicorn

    pool = ModelPool(opener, keep_alive=keep_alive, budget_bytes=budget_bytes)
    app = create_app(store, pool, admin_key=admin_key, admission=admission)
    flushing_refusals(app)
    sweeping = pool.sweeping(SWEEP_EVERY)
    try:
        uvicorn.run(
            app,
            host=host,
            port=port,
            log_level=log_level,
            access_log=False,
            timeout_graceful_shutdown=SHUTDOWN_WAIT,
            timeout_keep_alive=KEEP_ALIVE_S,
        )
    finally:
        sweeping.set()
        pool.close()


@contextlib.contextmanager
def running(
    store: Store,
    *,
    admin_key: str,
    opener: Opener,
    admission: AdmissionSettings | None = None,
    keep_alive: float = 300.0,
) -> Iterator[str]:
    """The gateway in a background thread on a free loopback port, for as long as the block
    runs (the demo's stage); yields the API base URL."""
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pool = ModelPool(opener, keep_alive=keep_alive)
    app = create_app(store, pool, admin_key=admin_key, admission=admission)
    flushing_refusals(app)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=SHUTDOWN_WAIT,
        timeout_keep_alive=KEEP_ALIVE_S,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="emeritus-gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise EmeritusError(f"the gateway did not start on 127.0.0.1:{port}")
        time.sleep(0.05)
    sweeping = pool.sweeping(SWEEP_EVERY)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sweeping.set()
        pool.close()
