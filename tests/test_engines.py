"""Managed engines behind the gateway (docs/design/engines.md), against the real `llama-server`
built by `make` from the same llama.cpp and flags as the embedded backend: started by the first
request, shared by concurrent requests (continuous batching), killed mid-stream and restarted,
stopped when idle and by an operator; and the starts that must not happen: an engine that never
becomes healthy, a port another process holds, an archive copy that fails its fixity check."""

from __future__ import annotations

import json
import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from emeritus.access import Grants, Keys, Principals, check_terms
from emeritus.archive import Archive
from emeritus.cli import app
from emeritus.lifecycle import Registry
from emeritus.runtime import Deployment, deploy
from emeritus.runtime.bundled import BUNDLED
from emeritus.store import Settings, Store, list_events
from gateway_server import gateway

MODEL = "smollm2-135m-instruct"
pytestmark = [pytest.mark.timeout(600), pytest.mark.serial, pytest.mark.xdist_group("llama-server")]
runner = CliRunner()


@dataclass
class Served:
    base: str
    home: Path
    settings: Settings
    key: str

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base, api_key=self.key, max_retries=0, timeout=120)

    def events(self, kind: str) -> list[dict[str, Any]]:
        with Store.open(self.settings) as store, store.transaction() as session:
            return [e.payload for e in list_events(session, kind=kind)]

    def usage(self) -> list[tuple[int, int, int]]:
        with Store.open(self.settings) as store, store.transaction() as session:
            rows = session.execute(
                sa.text(
                    "SELECT status, prompt_tokens, completion_tokens FROM access_usage ORDER BY id"
                )
            )
            return [tuple(r) for r in rows]  # type: ignore[misc]

    def state(self, model: str = MODEL) -> dict[str, Any]:
        return state_of(self.home, model)


def state_of(home: Path, model: str) -> dict[str, Any]:
    """The engine's state as its one supervisor (the gateway, or a command) wrote it."""
    [path] = (home / "engines" / model).glob("state-*.json")
    return json.loads(path.read_text())


def log_of(home: Path, model: str) -> str:
    return "".join(p.read_text() for p in (home / "engines" / model).glob("engine-*.log"))


def _home(
    root: Path, deployments: dict[str, Deployment], database_url: str | None = None
) -> tuple[Settings, str]:
    """A home with the bundled SmolLM2 preserved under each name, deployed as given, and one
    principal holding a grant and a key for all of them."""
    url = database_url or f"sqlite:///{root}/emeritus.db"
    settings = Settings(home=root, database_url=url, actor="tester")
    [smollm] = [b for b in BUNDLED if b.name == MODEL]
    with Store.open(settings) as store, tempfile.TemporaryDirectory() as scratch:
        registry, archive = Registry(store), Archive(store)
        located = smollm.locate(Path(scratch))
        for name, deployment in deployments.items():
            registry.add(name)
            archive.preserve(name, [located])
            deploy(store, name, deployment)
        Principals(store).add("rita", tier="research")
        for name in deployments:
            Grants(store).grant("rita", name, terms=check_terms(30, 10_000_000, "day", 10_000))
        key = Keys(store).create("rita", list(deployments)).key
    return settings, key


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("engine-home")
    options = {"parallel": 4, "context": 512, "keep_alive": 4}
    settings, key = _home(home, {MODEL: Deployment("llama-server", options=options)})
    with gateway(home) as base:
        yield Served(base, home, settings, key)


def _ask(client: openai.OpenAI, text: str, tokens: int = 16) -> str:
    answer = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": text}], max_tokens=tokens
    )
    return answer.choices[0].message.content or ""


def test_the_first_request_starts_the_engine_and_concurrent_requests_share_it(
    served: Served,
) -> None:
    assert not list((served.home / "engines").glob("*/state-*.json"))
    before = len(served.usage())
    answers: list[str] = []
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            answers.append(_ask(served.client(), f"Name a colour. ({i})", tokens=24))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(answers) == 8 and all(answers)
    started = served.events("runtime.engine_started")
    assert len(started) == 1 and started[0]["slots"] == 4 and started[0]["kind"] == "llama-server"
    assert [s for s, _, _ in served.usage()[before:]] == [200] * 8  # one usage row each
    state = served.state()
    assert state["state"] == "ready" and state["slots"] == 4
    # The engine ran requests side by side: its log names more than one slot at work.
    log = log_of(served.home, MODEL)
    slots = {line.split("id")[1].split()[0] for line in log.splitlines() if "launch_slot_" in line}
    assert len(slots) > 1, log[-2000:]


def test_kill_9_mid_stream_is_an_error_event_metered_and_the_next_request_restarts_it(
    served: Served,
) -> None:
    _ask(served.client(), "Hello")  # the engine is up
    pid = served.state()["pid"]
    crashed_before = len(served.events("runtime.engine_crashed"))
    before = len(served.usage())
    stream = served.client().chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Write a long story about the sea."}],
        max_tokens=400,
        stream=True,
    )
    received = 0
    with pytest.raises(openai.APIError, match="failed"):
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received += 1
                if received == 3:
                    os.kill(pid, signal.SIGKILL)
    assert received >= 3
    rows = served.usage()[before:]
    assert len(rows) == 1 and rows[0][0] == 502 and rows[0][2] >= 3  # metered, what it got
    deadline = time.monotonic() + 10
    while len(served.events("runtime.engine_crashed")) == crashed_before:
        assert time.monotonic() < deadline, "the crash was not recorded"
        time.sleep(0.1)
    assert "exit status -9" in served.events("runtime.engine_crashed")[-1]["reason"]
    assert _ask(served.client(), "Say hello.")  # the next request starts it again
    assert served.state()["pid"] != pid


def test_a_client_that_disconnects_cancels_the_engines_work_and_is_metered(
    served: Served,
) -> None:
    _ask(served.client(), "Hello")
    port = served.state()["port"]
    before = len(served.usage())
    with httpx.stream(
        "POST",
        f"{served.base}/chat/completions",
        headers={"Authorization": f"Bearer {served.key}"},
        json={
            "model": MODEL,
            "messages": [{"role": "user", "content": "Write a very long story about ships."}],
            "max_tokens": 500,
            "stream": True,
        },
        timeout=60,
    ) as response:
        chunks = 0
        for line in response.iter_lines():
            chunks += line.startswith("data:")
            if chunks == 4:
                break  # and hang up
    deadline = time.monotonic() + 15
    while True:  # the engine's own view of its slots: none still generating
        slots = httpx.get(f"http://127.0.0.1:{port}/slots", timeout=5).json()
        if not any(s.get("is_processing") for s in slots):
            break
        assert time.monotonic() < deadline, slots
        time.sleep(0.1)
    while len(served.usage()) == before:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    [(status, prompt, completion)] = served.usage()[before:]
    assert status == 499 and prompt > 0 and 0 < completion < 500
    # The engine was told: llama-server logs the cancelled task when its client hangs up.
    assert "cancel task" in log_of(served.home, MODEL)


def test_a_client_that_never_reads_holds_only_its_own_slot(served: Served) -> None:
    """A streamed request whose client never reads a byte: the engine's other slots answer
    others meanwhile, and the stalled request is metered once, like any other."""
    import socket
    from urllib.parse import urlsplit

    _ask(served.client(), "Hello")
    before = len(served.usage())
    where = urlsplit(served.base)
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect((where.hostname or "127.0.0.1", where.port or 80))
    body = json.dumps(
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": "Write a very long story about rivers."}],
            "max_tokens": 400,
            "stream": True,
        }
    ).encode()
    stalled.sendall(
        (
            "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {served.key}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        + body
    )
    try:
        answers: list[str] = []
        others = [
            threading.Thread(target=lambda: answers.append(_ask(served.client(), "Say hi.", 8)))
            for _ in range(3)
        ]
        for thread in others:
            thread.start()
        for thread in others:
            thread.join(120)
        assert len(answers) == 3 and all(answers)  # served beside the stalled stream
    finally:
        stalled.close()
    deadline = time.monotonic() + 60
    while len(served.usage()) < before + 4:
        assert time.monotonic() < deadline, served.usage()[before:]
        time.sleep(0.1)
    rows = served.usage()[before:]
    assert len(rows) == 4  # one row per request, the stalled one included
    assert sorted(status for status, _, _ in rows)[:3] == [200, 200, 200]
    assert all(prompt > 0 for _, prompt, _ in rows)


def test_a_prompt_longer_than_the_engines_context_is_a_400_that_costs_nothing(
    served: Served,
) -> None:
    """llama-server refuses a prompt longer than a slot's context (512 here) with its own 400;
    through the gateway it is the client's `context_length_exceeded`, not the engine failing,
    plain or streamed, and it is metered at nothing."""
    long = "Tell me about the sea and its tides. " * 120  # about 1,000 tokens
    _ask(served.client(), "Hello")
    before = len(served.usage())
    with pytest.raises(openai.BadRequestError) as plain:
        _ask(served.client(), long)
    assert plain.value.code == "context_length_exceeded", plain.value
    assert "exceeds the context of 512" in str(plain.value)
    with pytest.raises(openai.BadRequestError) as streamed:  # before its first chunk: a 400
        served.client().chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": long}], max_tokens=16, stream=True
        )
    assert streamed.value.code == "context_length_exceeded", streamed.value
    assert served.usage()[before:] == [(400, 0, 0), (400, 0, 0)]
    assert _ask(served.client(), "Say hello.")  # the engine was not harmed


def test_behind_the_engine_every_row_is_what_its_client_was_told(served: Served) -> None:
    """Plain and streamed requests at once, with one too long among them: each client's usage
    (the response's, or the stream's last chunk) is its request's one row, and the grant's
    tokens are the sum of the rows (the quota stays exact)."""
    _ask(served.client(), "Hello")
    before = len(served.usage())
    told: list[tuple[int, int, int]] = []
    lock = threading.Lock()

    def plain(text: str) -> None:
        answer = served.client().chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": text}], max_tokens=24
        )
        assert answer.usage is not None
        with lock:
            told.append((200, answer.usage.prompt_tokens, answer.usage.completion_tokens))

    def streamed(text: str) -> None:
        usage = None
        for chunk in served.client().chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": text}],
            max_tokens=24,
            stream=True,
            stream_options={"include_usage": True},
        ):
            usage = chunk.usage or usage
        assert usage is not None
        with lock:
            told.append((200, usage.prompt_tokens, usage.completion_tokens))

    def too_long() -> None:
        with pytest.raises(openai.BadRequestError):
            plain("Again and again. " * 300)
        with lock:
            told.append((400, 0, 0))

    work = [threading.Thread(target=plain, args=(f"Name a colour, {i}.",)) for i in range(4)]
    work += [threading.Thread(target=streamed, args=(f"Name a fruit, {i}.",)) for i in range(4)]
    work.append(threading.Thread(target=too_long))
    for thread in work:
        thread.start()
    for thread in work:
        thread.join(120)
    assert len(told) == 9
    rows = served.usage()[before:]
    assert sorted(rows) == sorted(told)
    with Store.open(served.settings) as store, store.transaction() as session:
        granted = session.execute(sa.text("SELECT period_tokens FROM access_grants")).scalar_one()
        everything = session.execute(
            sa.text("SELECT sum(prompt_tokens + completion_tokens) FROM access_usage")
        ).scalar_one()
    assert granted == everything


def test_no_slot_of_the_engine_within_the_queue_wait_is_a_503_that_costs_nothing(
    tmp_path: Path,
) -> None:
    """One slot, a queue wait of half a second, three long answers at once: the engine's slot
    answers one at a time, the others are refused with 503 and `Retry-After` before anything
    reaches the engine, each with one usage row at no cost."""
    options = {"parallel": 1, "context": 512}
    settings, key = _home(tmp_path, {MODEL: Deployment("llama-server", options=options)})
    with gateway(tmp_path, options=("--queue-wait", "0.5")) as base:
        served = Served(base, tmp_path, settings, key)
        _ask(served.client(), "Hello")  # the engine is up
        before = len(served.usage())
        statuses: list[int] = []
        retry_after: list[str] = []

        def long_answer() -> None:
            response = httpx.post(
                f"{base}/chat/completions",
                headers={"Authorization": f"Bearer {key}"},
                json={
                    "model": MODEL,
                    "messages": [{"role": "user", "content": "Write a long story of ships."}],
                    "max_tokens": 300,
                },
                timeout=120,
            )
            statuses.append(response.status_code)
            retry_after.append(response.headers.get("Retry-After", ""))

        clients = [threading.Thread(target=long_answer) for _ in range(3)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(120)
        rows = served.usage()[before:]
    assert sorted(statuses)[0] == 200 and 503 in statuses, statuses
    assert all(r for s, r in zip(statuses, retry_after, strict=True) if s == 503)
    assert sorted(status for status, _, _ in rows) == sorted(statuses)
    assert all((p, c) == (0, 0) for s, p, c in rows if s == 503)


def test_an_idle_engine_stops_after_its_keep_alive_and_starts_again(served: Served) -> None:
    _ask(served.client(), "Hello")
    pid = served.state()["pid"]
    deadline = time.monotonic() + 20
    while served.state()["state"] != "stopped":
        assert time.monotonic() < deadline, served.state()
        time.sleep(0.2)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert served.events("runtime.engine_stopped")[-1]["reason"] == "idle"
    assert _ask(served.client(), "Hello again")
    assert served.state()["state"] == "ready"


def test_engines_list_logs_and_stop(served: Served) -> None:
    _ask(served.client(), "Hello")
    home = ["--home", str(served.home)]
    listed = runner.invoke(app, [*home, "engines", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    [entry] = json.loads(listed.output)
    assert entry["model"] == MODEL and entry["state"] == "ready" and entry["alive"]
    logs = runner.invoke(app, [*home, "engines", "logs", MODEL, "--lines", "400"])
    assert logs.exit_code == 0 and "=== starting on port" in logs.output
    stopped = runner.invoke(app, [*home, "engines", "stop", MODEL])
    assert stopped.exit_code == 0, stopped.output
    deadline = time.monotonic() + 15
    while served.state()["state"] != "stopped":
        assert time.monotonic() < deadline, served.state()
        time.sleep(0.2)
    assert served.events("runtime.engine_stopped")[-1]["reason"] == "operator"
    assert _ask(served.client(), "Still there?")  # started again on demand
    unknown = runner.invoke(app, [*home, "engines", "logs", "no-such-model"])
    assert unknown.exit_code == 3 and "no managed engine" in unknown.output


@pytest.fixture(scope="module")
def refused(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, int]]:
    """Three models whose engines must not run: one that never becomes healthy, one on a port
    another process holds, one whose archive copy fails its fixity check."""
    home = tmp_path_factory.mktemp("refused-home")
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    taken = holder.getsockname()[1]
    never = Deployment(
        "command",
        options={
            "command": "python3 -c 'import time; time.sleep(600)' {port}",
            "health_timeout": 2,
            "start_wait": 1,
        },
    )
    settings, key = _home(
        home,
        {
            "never-healthy": never,
            "port-taken": Deployment("llama-server", options={"port": taken}),
            "damaged": Deployment("llama-server"),
        },
    )
    with Store.open(settings) as store:
        archive = Archive(store)
        gguf = next(f for f in archive.logical_files("damaged") if f.endswith(".gguf"))
        path = archive.content_file("damaged", gguf)
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01  # one bit, deep in the tensor data
        path.chmod(0o644)
        path.write_bytes(bytes(data))
    with gateway(home) as base:
        yield Served(base, home, settings, key), taken
    holder.close()


def _refusal(served: Served, model: str) -> httpx.Response:
    return httpx.post(
        f"{served.base}/chat/completions",
        headers={"Authorization": f"Bearer {served.key}"},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
        timeout=60,
    )


def test_an_engine_that_never_becomes_healthy_is_a_503_and_an_event(
    refused: tuple[Served, int],
) -> None:
    served, _ = refused
    first = _refusal(served, "never-healthy")
    assert first.status_code == 503 and int(first.headers["Retry-After"]) >= 1
    assert "starting" in first.json()["error"]["message"]
    deadline = time.monotonic() + 15
    while not served.events("runtime.engine_failed"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert "was not ready within 2 s" in served.events("runtime.engine_failed")[0]["reason"]
    again = _refusal(served, "never-healthy")
    assert again.status_code == 503 and "not ready within 2 s" in again.json()["error"]["message"]
    with pytest.raises(ProcessLookupError):  # the stuck process was killed
        os.kill(int(served.events("runtime.engine_failed")[0]["pid"]), 0)


def test_a_port_taken_by_another_process_is_refused_before_the_start(
    refused: tuple[Served, int],
) -> None:
    served, port = refused
    answer = _refusal(served, "port-taken")
    assert answer.status_code == 503 and "Retry-After" in answer.headers
    assert f"port {port} is taken by another process" in answer.json()["error"]["message"]
    failed = [e for e in served.events("runtime.engine_failed") if str(port) in e["reason"]]
    assert failed and served.state("port-taken")["pid"] is None


def test_an_archive_copy_that_fails_its_fixity_check_starts_no_engine(
    refused: tuple[Served, int],
) -> None:
    served, _ = refused
    answer = _refusal(served, "damaged")
    assert answer.status_code == 503
    assert "fails its fixity check" in answer.json()["error"]["message"]
    failed = [e for e in served.events("runtime.engine_failed") if "fixity" in e["reason"]]
    assert failed and "emeritus repair damaged" in failed[0]["reason"]
    assert served.state("damaged")["pid"] is None
    assert all(status == 503 for status, _, _ in served.usage())  # metered, no tokens


@pytest.fixture(scope="module")
def opened(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Archive, Any]]:
    """SmolLM2 preserved and opened on a one-slot and a two-slot llama-server, no gateway."""
    from emeritus.runtime import open_preserved

    home = tmp_path_factory.mktemp("engine-direct")
    settings, _ = _home(home, {MODEL: Deployment("llama-server", options={"parallel": 2})})
    with Store.open(settings) as store:
        archive = Archive(store)
        backend, _size = open_preserved(archive, MODEL)
        try:
            yield archive, backend
        finally:
            backend.close()


def test_an_engines_size_is_its_weights_and_kv_cache_and_it_reports_token_ids(
    opened: tuple[Archive, Any],
) -> None:
    from emeritus.runtime import ChatRequest, Message, Params, weights_entry

    archive, backend = opened
    weights = int(weights_entry(archive, MODEL)["size"])
    # SmolLM2-135M: 30 layers, 3 KV heads of 64: 2 x 30 x 4096 x 3 x 64 x 2 bytes of f16.
    assert backend.occupies() == weights + 2 * 30 * (2 * 2048) * 3 * 64 * 2
    asked = Params(max_tokens=8, token_ids=True)  # as the fingerprints ask
    done = backend.chat(ChatRequest((Message("user", "Say hi."),), asked))
    assert done.token_ids is not None and len(done.token_ids) == done.usage.completion_tokens
    runtime = backend.describe()
    assert runtime["backend"] == "llama-server" and runtime["slots"] == 2
    assert backend.context_length() == 2048  # the engine's own word (/props), per slot
    assert "commit" in runtime["version"] and "GGML_NATIVE=OFF" in runtime["build_flags"]


def _cache_reports(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """What the engine says it took from its cache (`timings.cache_n`) for each answer."""
    from emeritus.runtime import OpenAIBackend

    cached: list[int] = []
    post = OpenAIBackend._post

    def spy(self: OpenAIBackend, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = post(self, path, body)
        cached.append(int(answer.get("timings", {}).get("cache_n", -1)))
        return answer

    monkeypatch.setattr(OpenAIBackend, "_post", spy)
    return cached


def test_a_cached_prefix_is_reused_within_one_principal_and_never_across(
    opened: tuple[Archive, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine's own report of the prompt tokens it took from its cache (`timings.cache_n`),
    read from its real answers."""
    from emeritus.runtime import ChatRequest, Message, Params

    _, backend = opened
    cached = _cache_reports(monkeypatch)
    secret = "My account number is 4417 1234 5678 9113 and my question is about fees. " * 4

    def ask(scope: str | None) -> None:
        messages = (Message("user", secret),)
        backend.chat(ChatRequest(messages, Params(max_tokens=2), cache_scope=scope))

    ask("alice")
    ask("alice")
    ask("bob")  # the same prompt, another principal: the other slot, evaluated from nothing
    ask("carol")  # alice's slot, which holds this very prompt: evaluated from nothing
    ask(None)
    assert cached[0] == 0 and cached[1] > 20, cached  # alice reuses her own prefix
    assert cached[2:] == [0, 0, 0], cached


def test_the_embedded_backend_and_llama_server_answer_the_canaries_token_for_token(
    opened: tuple[Archive, Any],
) -> None:
    """One llama.cpp, one set of build flags, flash attention off in both: the same greedy
    tokens, compared by id (llama-server's `logprobs`), requests one at a time."""
    from emeritus.runtime import across, open_preserved

    archive, engine = opened
    embedded, _ = open_preserved(archive, MODEL, Deployment("llamacpp", source="override"))
    try:
        partings = across(embedded, engine)
    finally:
        embedded.close()
    assert {p.compared for p in partings} == {"token_ids"}
    assert [p.id for p in partings if p.first_difference is not None] == []


def test_an_interview_runs_as_many_sessions_at_once_as_the_engine_has_slots(
    tmp_path: Path,
) -> None:
    settings, _ = _home(
        tmp_path / "home", {MODEL: Deployment("llama-server", options={"parallel": 2})}
    )
    home = ["--home", str(settings.home)]
    facts = tmp_path / "facts.yaml"
    facts.write_text(
        "usage: a year as a small assistant\nreception: liked for its speed\n"
        "successor: a larger model\nretire_on: 1 March 2027\n"
    )
    assert runner.invoke(app, [*home, "facts", MODEL, "--file", str(facts)]).exit_code == 0
    framing = "interviewer=neutral,wording=neutral,disclosure=undisclosed,system_prompt=without"
    done = runner.invoke(
        app,
        [
            *home,
            *("interview", MODEL, "--sessions", "2", "--max-tokens", "8"),
            *("--framings", framing, "--json"),
        ],
    )
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout)
    assert result["sessions"] == 2
    with Store.open(settings) as store:
        transcript = Archive(store).read_logical(MODEL, result["transcript"]).decode()
    headers = [json.loads(line) for line in transcript.splitlines() if '"type":"session"' in line]
    assert len(headers) == 2
    backend = headers[0]["backend"]
    assert backend["backend"] == "llama-server" and backend["slots"] == 2
    log = log_of(settings.home, MODEL)
    slots = {line.split("id")[1].split()[0] for line in log.splitlines() if "launch_slot_" in line}
    assert len(slots) == 2  # both slots answered
    assert (
        state_of(settings.home, MODEL)["state"] == "stopped"
    )  # the command stopped its engine when it was done


def test_a_comparison_runs_its_prompts_across_the_engines_slots(tmp_path: Path) -> None:
    engine = Deployment("llama-server", options={"parallel": 2})
    settings, _ = _home(tmp_path / "home", {"old-model": engine, "new-model": engine})
    home = ["--home", str(settings.home)]
    done = runner.invoke(
        app, [*home, "compare", "old-model", "new-model", "--limit", "4", "--max-tokens", "8"]
    )
    assert done.exit_code == 0, done.output
    assert "migration guide" in done.output
    for model in ("old-model", "new-model"):
        log = log_of(settings.home, model)
        slots = {
            line.split("id")[1].split()[0] for line in log.splitlines() if "launch_slot_" in line
        }
        assert len(slots) == 2, model  # prompts answered side by side


def test_two_gateways_on_one_postgresql_each_supervise_their_own_engine(
    tmp_path: Path, postgres_url: str
) -> None:
    options = {"parallel": 2, "context": 512}
    settings, key = _home(
        tmp_path, {MODEL: Deployment("llama-server", options=options)}, postgres_url
    )
    answered: list[int] = []
    failures: list[BaseException] = []

    def hammer(base: str) -> None:
        client = openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=120)
        for i in range(6):
            try:
                answer = client.chat.completions.create(
                    model=MODEL,
                    messages=[{"role": "user", "content": f"Count to {i + 2}."}],
                    max_tokens=8,
                )
                assert answer.usage is not None
                answered.append(answer.usage.total_tokens)
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

    with (
        gateway(tmp_path, database_url=postgres_url) as a,
        gateway(tmp_path, database_url=postgres_url) as b,
    ):
        threads = [threading.Thread(target=hammer, args=(base,)) for base in (a, b, a, b)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        states = sorted(
            (json.loads(p.read_text()) for p in (tmp_path / "engines" / MODEL).glob("state-*")),
            key=lambda s: s["supervisor"],
        )
    assert not failures, failures
    assert len(answered) == 24
    # Two supervisors, two engines, on two ports; each gateway forwarded to its own.
    assert len(states) == 2 and states[0]["supervisor"] != states[1]["supervisor"]
    assert states[0]["port"] != states[1]["port"]
    with Store.open(settings) as store, store.transaction() as session:
        started = [e.payload for e in list_events(session, kind="runtime.engine_started")]
        rows = session.execute(
            sa.text("SELECT count(*), sum(prompt_tokens + completion_tokens) FROM access_usage")
        ).one()
    assert len(started) == 2 and started[0]["pid"] != started[1]["pid"]
    assert tuple(rows) == (24, sum(answered))  # one row per request, the tokens the clients saw


def test_an_engine_stopped_while_it_starts_leaves_no_process(tmp_path: Path) -> None:
    """The pool may let a model go while its engine is still starting (the budget, shutdown):
    the supervisor stops there, and nothing is left running."""
    import sys

    from emeritus.runtime import Engine, EngineState, EngineUnavailable
    from emeritus.runtime.engines import EngineCommand

    command = EngineCommand("command", (sys.executable, "-c", "import time; time.sleep(600)"))
    engine = Engine("m", command, folder=tmp_path, slots=1, health_timeout=60)
    with pytest.raises(EngineUnavailable, match="starting"):
        engine.ensure(0.5)
    assert engine.state is EngineState.STARTING and engine.process is not None
    pid = engine.process.pid
    engine.stop("budget", wait=2)
    assert engine.state is EngineState.STOPPED and engine.process is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_what_an_engine_leaves_in_its_process_group_ends_with_it(tmp_path: Path) -> None:
    """vLLM's API server runs its engine core and workers as children, and they outlived an API
    server killed with SIGKILL: when an engine ends, however it ends, so does its group."""
    import sys

    from emeritus.runtime import Engine, EngineState, EngineUnavailable
    from emeritus.runtime.engines import EngineCommand

    pid_file = tmp_path / "child.pid"
    script = (
        "import subprocess, sys, time; "
        "c = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']); "
        f"open({str(pid_file)!r}, 'w').write(str(c.pid)); time.sleep(600)"
    )
    for end in ("killed", "stopped"):
        pid_file.unlink(missing_ok=True)
        command = EngineCommand("command", (sys.executable, "-c", script))
        engine = Engine("m", command, folder=tmp_path, slots=1, health_timeout=60)
        with pytest.raises(EngineUnavailable, match="starting"):
            engine.ensure(0.2)
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline, "the engine's child never started"
            time.sleep(0.05)
        child = int(pid_file.read_text())
        assert _running(child)
        if end == "killed":
            assert engine.process is not None
            os.kill(engine.process.pid, signal.SIGKILL)
            while engine.state is not EngineState.CRASHED:
                assert time.monotonic() < deadline, "the kill was not seen"
                time.sleep(0.05)
        else:
            engine.stop("operator", wait=2)
        while _running(child):
            assert time.monotonic() < deadline, f"the engine's child outlived it ({end})"
            time.sleep(0.05)


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting for a parent that does not reap it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _exchanges(count: int) -> list[Any]:
    from emeritus.runtime import Message

    said: list[Any] = []
    for i in range(count):
        said.append(Message("user", f"Question {i}: what did people ask you about in month {i}?"))
        said.append(
            Message(
                "assistant",
                f"In month {i} they mostly asked about recipes, train times and letters to "
                f"their landlords; a few asked me to explain tax forms line by line.",
            )
        )
    return said


def test_a_conversation_that_drops_its_oldest_exchanges_reuses_the_rest_with_cache_reuse(
    tmp_path: Path, opened: tuple[Archive, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interview's window drops its oldest exchanges (docs/design/interview-protocol.md):
    the next prompt shares only the system prompt as a prefix with the slot's cache. With
    `cache_reuse`, llama-server shifts the kept exchanges' cache to their new place instead
    of evaluating them again; without it, it evaluates them again; across principals, never."""
    from emeritus.runtime import ChatRequest, Message, Params, open_preserved

    cached = _cache_reports(monkeypatch)
    system = Message("system", "You are being interviewed before your retirement.")
    said, last = _exchanges(6), Message("user", "What would you like your successor to know?")
    whole, kept = (system, *said, last), (system, *said[6:], last)  # the oldest 3 dropped

    def ask(backend: Any, messages: tuple[Any, ...], scope: str) -> None:
        backend.chat(ChatRequest(messages, Params(max_tokens=2), cache_scope=scope))

    settings, _ = _home(
        tmp_path, {MODEL: Deployment("llama-server", options={"parallel": 1, "cache_reuse": 16})}
    )
    with Store.open(settings) as store:
        reusing, _size = open_preserved(Archive(store), MODEL)
        try:
            assert "--cache-reuse" in reusing.engine.command.argv
            ask(reusing, whole, "alice")
            ask(reusing, kept, "alice")
            ask(reusing, whole, "bob")  # another principal on the only slot: from nothing
        finally:
            reusing.close()
    _, plain = opened
    ask(plain, whole, "dora")
    ask(plain, kept, "dora")
    with_reuse, across, without = cached[1], cached[2], cached[4]
    # Three kept exchanges of about 45 tokens each come from the cache only with reuse.
    assert with_reuse > without + 100, cached
    assert 0 < without < 40, cached  # the system prompt alone
    assert across == 0, cached
