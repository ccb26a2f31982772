"""A real S3 server for the tests: moto in server mode on 127.0.0.1, one per test process (each
pytest-xdist worker starts its own on its own port). A server that does not come up fails the
tests that need it: they are never skipped."""

from __future__ import annotations

import functools
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

START_TIMEOUT = 30.0  # seconds for moto_server to answer
ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def _start(log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start moto_server on a free port; try another port if the chosen one was taken first."""
    command = Path(sys.executable).with_name("moto_server")
    problem = ""
    for _attempt in range(3):
        port = _free_port()
        with log.open("ab") as output:
            server = subprocess.Popen(
                [str(command), "-H", "127.0.0.1", "-p", str(port)],
                stdout=output,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while server.poll() is None and time.monotonic() < deadline:
            if _answers(port):
                return server, port
            time.sleep(0.05)
        if server.poll() is None:
            server.kill()
            server.wait()
            problem = f"no answer on port {port} within {START_TIMEOUT:.0f} s"
            break  # a slow start is not a port clash: do not wait that long again
        problem = f"exited with status {server.returncode} (port {port})"
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    pytest.fail(f"{command} did not start: {problem}\n{tail}", pytrace=False)


@pytest.fixture(scope="session")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start moto_server, point the standard AWS variables at it (botocore and s3fs read
    AWS_ENDPOINT_URL), and stop it and restore the variables at the end."""
    server, port = _start(tmp_path_factory.mktemp("moto") / "moto_server.log")
    endpoint = f"http://127.0.0.1:{port}"
    settings = {**ENVIRONMENT, "AWS_ENDPOINT_URL": endpoint}
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        yield endpoint
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@functools.cache
def _client(endpoint: str) -> Any:
    """One boto3 client per server: making one costs a good part of a second."""
    return boto3.client("s3", endpoint_url=endpoint)


@pytest.fixture
def s3_url(s3_endpoint: str) -> str:
    """A fresh, empty bucket for this test, as "s3://<bucket>/root"."""
    bucket = f"emeritus-{uuid.uuid4().hex[:16]}"
    _client(s3_endpoint).create_bucket(Bucket=bucket)
    return f"s3://{bucket}/root"
