"""Preflight: `emeritus interview` refuses, before the first question and in one line, a run that
could not finish (no preserved object, a missing fact, a server that does not answer or does not
serve the model), and writes nothing: no plan, no session file, no archive version, no event."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from emeritus.archive import Archive
from emeritus.cli import app
from emeritus.errors import NotFound
from emeritus.interview import RunConfig, grid, load_protocol, run_interview
from emeritus.runtime.mock import MockBackend
from emeritus.store import Settings, Store, list_events
from helpers import make_model

FACTS = "usage: a year\nreception: fine\nsuccessor: next\n"
TINY = "interviewer=neutral,wording=neutral,disclosure=undisclosed,system_prompt=without"


class Counting(MockBackend):
    def __init__(self) -> None:
        super().__init__({"default": "yes"})
        self.calls = 0

    def chat(self, request: Any) -> Any:
        self.calls += 1
        return super().chat(request)


class Stub(BaseHTTPRequestHandler):
    """A tiny OpenAI-compatible server that serves some other model: `models` is what GET
    /models lists (None: no such route); every chat request for another name is a 404."""

    models: ClassVar[list[str] | None] = ["other-model"]
    requests: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _answer(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self.requests.append(f"GET {self.path}")
        if self.path == "/v1/models" and self.models is not None:
            self._answer(200, {"object": "list", "data": [{"id": m} for m in self.models]})
        else:
            self._answer(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append(f"POST {self.path} {body.get('model')} {body.get('max_tokens')}")
        message = f"The model `{body.get('model')}` does not exist."
        self._answer(404, {"error": {"message": message, "type": "NotFoundError"}})


@pytest.fixture
def stub() -> Iterator[tuple[str, type[Stub]]]:
    handler = type("Handler", (Stub,), {"requests": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", handler
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _setup(runner: CliRunner, tmp_path: Path, *, preserve: bool = True, facts: str = FACTS) -> None:
    (tmp_path / "facts.yaml").write_text(facts)
    steps = [["models", "add", "m"], ["facts", "m", "--file", str(tmp_path / "facts.yaml")]]
    if preserve:
        steps.insert(1, ["preserve", "m", str(make_model(tmp_path / "w"))])
    for args in steps:
        assert runner.invoke(app, args).exit_code == 0


def _state(home: Path) -> tuple[int, list[str]]:
    """The events recorded, and every file under the home but the database."""
    with Store.open(Settings.from_env()) as store, store.transaction() as session:
        events = len(list_events(session))
    files = sorted(
        str(p.relative_to(home))
        for p in home.rglob("*")
        if p.is_file() and not p.name.startswith("emeritus.db")
    )
    return events, files


def _interview(runner: CliRunner, *extra: str) -> Any:
    args = ["interview", "m", "--sessions", "1", "--max-tokens", "8", "--framings", TINY]
    return runner.invoke(app, [*args, *extra])


def _refused(result: Any, code: int) -> str:
    assert result.exit_code == code, result.output
    message: str = result.stderr.strip()
    assert message.startswith("error: ") and "\n" not in message, message
    return message


def test_a_model_not_preserved_is_refused_and_nothing_written(
    tmp_path: Path, hermetic_home: Path, stub: tuple[str, type[Stub]]
) -> None:
    runner = CliRunner()
    _setup(runner, tmp_path, preserve=False)
    before = _state(hermetic_home)
    url, handler = stub
    for extra in ((), ("--base-url", url)):
        message = _refused(_interview(runner, *extra), 3)
        assert "m is not preserved" in message
    assert handler.requests == []  # refused before the server was asked anything
    assert not (hermetic_home / "interviews").exists()
    assert _state(hermetic_home) == before


def test_a_missing_fact_is_refused_and_nothing_written(tmp_path: Path, hermetic_home: Path) -> None:
    runner = CliRunner()
    _setup(runner, tmp_path, facts="usage: a year\n")
    before = _state(hermetic_home)
    for extra in ((), ("--base-url", f"http://127.0.0.1:{_free_port()}/v1")):
        message = _refused(_interview(runner, *extra), 2)
        assert "needs the fact {reception}" in message
    assert not (hermetic_home / "interviews").exists()
    assert _state(hermetic_home) == before


def test_an_unreachable_server_is_refused_at_once(tmp_path: Path, hermetic_home: Path) -> None:
    runner = CliRunner()
    _setup(runner, tmp_path)
    before = _state(hermetic_home)
    url = f"http://127.0.0.1:{_free_port()}/v1"
    started = time.monotonic()
    message = _refused(_interview(runner, "--base-url", url), 3)
    assert time.monotonic() - started < 2.0  # one attempt: no retries, no backoff
    assert f"no server answers at {url} for m" in message
    assert not (hermetic_home / "interviews").exists()
    assert _state(hermetic_home) == before


def test_a_server_that_does_not_serve_the_model_is_refused(
    tmp_path: Path, hermetic_home: Path, stub: tuple[str, type[Stub]]
) -> None:
    runner = CliRunner()
    _setup(runner, tmp_path)
    before = _state(hermetic_home)
    url, handler = stub
    message = _refused(_interview(runner, "--base-url", url), 3)
    assert f"the server at {url} does not serve m (it lists other-model)" in message
    assert "does not exist" in message  # the server's own words
    # Without a /models route, a 1-token chat request decides.
    handler.models = None
    message = _refused(_interview(runner, "--base-url", url, "--server-model", "gone"), 3)
    assert f"the server at {url} does not serve gone:" in message
    assert handler.requests == [
        "GET /v1/models",
        "POST /v1/chat/completions m 1",
        "GET /v1/models",
        "POST /v1/chat/completions gone 1",
    ]
    assert not (hermetic_home / "interviews").exists()
    assert _state(hermetic_home) == before


def test_run_interview_refuses_a_model_not_preserved(hermetic_home: Path) -> None:
    """Library callers are protected too: the runner runs the checks that need no server."""
    with Store.open(Settings.from_env()) as store:
        archive = Archive(store)
        framings = tuple(grid({"interviewer": ["neutral"]}))
        config = RunConfig("m", load_protocol("standard"), 1, framings, facts={})
        backend = Counting()
        with pytest.raises(NotFound, match="m is not preserved"):
            run_interview(archive, config, backend, provenance={})
    assert backend.calls == 0
    assert not (hermetic_home / "interviews").exists()


# The success path through a real server (llama.cpp's, which lists its model by path but serves
# it under any name, so the 1-token chat request admits it) is test_cli_interview_and_analyze.
