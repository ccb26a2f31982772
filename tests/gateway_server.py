"""`emeritus serve` as a real process on a free loopback port, for the gateway tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

ADMIN_KEY = "emadmin_test-operator-key-0123456789"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def gateway(
    home: Path,
    *,
    database_url: str | None = None,
    mock: Path | None = None,
    options: tuple[str, ...] = (),
) -> Iterator[str]:
    """A gateway over `home` (and its database), with `emeritus serve`'s `options`; yields the
    API base URL."""
    port = free_port()
    env = {
        **os.environ,
        "EMERITUS_HOME": str(home),
        "EMERITUS_ADMIN_KEY": ADMIN_KEY,
        "EMERITUS_THREADS": "1",
    }
    if database_url:
        env["EMERITUS_DATABASE_URL"] = database_url
    command = [sys.executable, "-m", "emeritus", "serve", "--port", str(port)]
    if mock is not None:
        command += ["--mock", str(mock)]
    command += options
    log = home / f"gateway-{port}.log"
    with log.open("wb") as out:
        server = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/models", timeout=1).status_code == 401:
                break
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"emeritus serve did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    try:
        yield base
    finally:
        server.terminate()
        server.wait(timeout=20)
