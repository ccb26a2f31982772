"""Issue 14, findings 3 and 4: one stream could hold a model indefinitely (the pool's lock was held
across every write to the client), and a request could end unmetered or metered wrongly. Each
test injects a fault at one phase of a request through a real gateway on loopback (uvicorn, the
real admission layer, a real database) and counts the usage rows against the admitted requests
(docs/design/admission.md)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from emeritus.access import Grants, Keys, Principals, check_terms
from emeritus.gateway import AdmissionSettings, running
from emeritus.lifecycle import Registry
from emeritus.runtime import BackendError, ChatRequest, Chunk, Completion, ContextExceeded
from emeritus.runtime.mock import MockBackend
from emeritus.store import Store

MODEL = "kept-model"
ADMIN = "emadmin_admission-test-operator-key-0123"
# A long answer: 4,000 words of 2,000 characters, 8 MB of server-sent events, more than the
# socket buffers hold for a client that never reads (loopback's grow to about 3 MB).
LONG = " ".join(f"{i:04d}" + "x" * 1996 for i in range(4000))
pytestmark = pytest.mark.timeout(120)


class Control:
    """What the test sees of, and does to, generations inside the server."""

    def __init__(self) -> None:
        self.holding = threading.Semaphore(0)  # released once per generation that began holding
        self.go = threading.Event()  # lets every held generation go on
        self.closed = threading.Event()  # a streamed generation's iterator was closed early

    def hold(self) -> None:
        self.holding.release()
        if not self.go.wait(30):
            raise BackendError("faulty: held for too long")


class Faulty(MockBackend):
    """The mock model, with the fault named by the last message: `fail:N` (a BackendError after
    N words), `bug:N` (a RuntimeError after N words), `hold:N` (N words, then wait until the
    test lets it go), `long` (the long answer); anything else answers in six words."""

    def __init__(self, control: Control) -> None:
        super().__init__(
            {"replies": [{"when": "long", "reply": LONG}], "default": "A short answer, six words."}
        )
        self.control = control

    @staticmethod
    def _fault(request: ChatRequest) -> tuple[str, int]:
        kind, _, after = request.messages[-1].content.partition(":")
        return kind, int(after or 0)

    def _strike(self, kind: str) -> None:
        if kind == "fail":
            raise BackendError("faulty: the engine fell over")
        if kind == "bug":
            raise RuntimeError("a bug deep in the engine, with internals in its message")
        if kind == "hold":
            self.control.hold()
        if kind == "toolong":
            raise ContextExceeded("faulty: prompt of 900 tokens plus 200 exceeds 1024")
        if kind == "holdfail":
            self.control.hold()
            raise BackendError("faulty: the engine fell over while held")

    def chat(self, request: ChatRequest) -> Completion:
        self._strike(self._fault(request)[0])
        return super().chat(request)

    def stream_chat(self, request: ChatRequest) -> Iterator[Chunk]:
        kind, after = self._fault(request)
        done = super().chat(request)  # the mock's answer, without the fault of chat() above
        try:
            for index, word in enumerate(done.text.split(" ")):
                if index == after:
                    self._strike(kind)
                yield Chunk(word if index == 0 else " " + word)
            yield Chunk("", done.usage, done.finish_reason, done.prompt_format)
        except GeneratorExit:
            self.control.closed.set()
            raise


@dataclass
class Served:
    base: str
    key: str
    store: Store
    control: Control

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1].split("/")[0])

    def ask(self, content: str, *, timeout: float = 30, **extra: Any) -> httpx.Response:
        return httpx.post(
            f"{self.base}/chat/completions",
            headers={"Authorization": f"Bearer {self.key}"},
            json=self.body(content, **extra),
            timeout=timeout,
        )

    @staticmethod
    def body(content: str, **extra: Any) -> dict[str, Any]:
        return {"model": MODEL, "messages": [{"role": "user", "content": content}], **extra}

    def metric(self, name: str) -> float:
        text = httpx.get(
            self.base.removesuffix("/v1") + "/metrics",
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=15,  # 45 admissions at once on a busy machine: seconds, not a failure
        ).text
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def rows(self) -> list[tuple[int, int, int]]:
        """(status, prompt tokens, completion tokens) of every usage row, in order."""
        with self.store.transaction() as session:
            found = session.execute(
                sa.text(
                    "SELECT status, prompt_tokens, completion_tokens FROM access_usage ORDER BY id"
                )
            )
            return [(int(a), int(b), int(c)) for a, b, c in found]

    def reserved(self) -> int:
        """The grant's tokens in this period: once every request is settled, what they used."""
        with self.store.transaction() as session:
            return int(
                session.execute(sa.text("SELECT period_tokens FROM access_grants")).scalar_one()
            )

    def settled(self, count: int) -> list[tuple[int, int, int]]:
        """The usage rows, once there are `count` (settling follows the slot's release)."""
        wait_until(lambda: len(self.rows()) >= count, f"{count} usage rows")
        rows = self.rows()
        assert len(rows) == count, rows
        assert self.reserved() == sum(p + c for _, p, c in rows)  # every reservation returned
        return rows


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.01)


@contextmanager
def serving(store: Store, **settings: Any) -> Iterator[Served]:
    Registry(store).add(MODEL)
    Principals(store).add("rita", tier="research")
    Grants(store).grant("rita", MODEL, terms=check_terms(30, 10**9, "day", 10_000))
    key = Keys(store).create("rita", [MODEL]).key
    control = Control()
    backend = Faulty(control)
    try:
        with running(
            store,
            admin_key=ADMIN,
            opener=lambda _model: (backend, 0),
            admission=AdmissionSettings(**settings),
        ) as base:
            yield Served(base, key, store, control)
    finally:
        control.go.set()  # never leave a generation held


def events(lines: Iterator[str]) -> Iterator[dict[str, Any]]:
    for line in lines:
        if line.startswith("data: ") and line != "data: [DONE]":
            yield json.loads(line.removeprefix("data: "))


def test_every_failure_is_settled_once_with_its_status(store: Store) -> None:
    with serving(store) as served:
        failed = served.ask("fail")
        bug = served.ask("bug")
        assert (failed.status_code, failed.json()["error"]["code"]) == (502, "backend_error")
        assert (bug.status_code, bug.json()["error"]["code"]) == (500, "internal_error")
        assert "internals" not in bug.text  # the exception is logged, not sent
        streamed = {}
        for fault in ("fail:2", "bug:2"):
            response = served.ask(fault, stream=True)
            assert response.status_code == 200
            streamed[fault] = list(events(response.iter_lines()))
        # Failed before its first word: the response had not started, so it is an HTTP error.
        early = served.ask("fail:0", stream=True)
        rows = served.settled(5)
    assert (early.status_code, early.json()["error"]["code"]) == (502, "backend_error")
    assert [e["error"]["code"] for e in streamed["fail:2"] if "error" in e] == ["backend_error"]
    assert [e["error"]["code"] for e in streamed["bug:2"] if "error" in e] == ["internal_error"]
    words = [
        e
        for e in streamed["fail:2"]
        if e.get("choices") and e["choices"][0]["delta"].get("content")
    ]
    assert len(words) == 2
    # Plain failures cost nothing; a stream that failed is charged what it handed over, with
    # its failure status (never 200); one that failed before its first word costs nothing.
    assert sorted((s, c, p > 0) for s, p, c in rows) == [
        (500, 0, False),  # plain, RuntimeError
        (500, 2, True),  # streamed, RuntimeError after 2 words
        (502, 0, False),  # plain, BackendError
        (502, 0, False),  # streamed, BackendError before the first word
        (502, 2, True),  # streamed, BackendError after 2 words
    ]


@contextmanager
def usage_held(store: Store) -> Iterator[None]:
    """No usage row can be written while this holds: the test's own write transaction (SQLite's
    `BEGIN IMMEDIATE`) or an exclusive lock on the usage table (PostgreSQL)."""
    with store.connection() as connection:
        if not store.db.is_sqlite:
            connection.execute(sa.text("LOCK TABLE access_usage IN EXCLUSIVE MODE"))
        yield


@pytest.mark.parametrize(("fault", "end"), [("hold:2", "stop"), ("holdfail:2", "backend_error")])
def test_a_streams_end_is_written_only_once_it_is_metered(
    store: Store, fault: str, end: str
) -> None:
    """A client that has read a stream's end (its last chunk, or its error event) finds the
    request metered: the end is written after settlement, never before it."""
    seen: list[dict[str, Any]] = []
    with serving(store) as served:
        with httpx.stream(
            "POST",
            f"{served.base}/chat/completions",
            headers={"Authorization": f"Bearer {served.key}"},
            json=served.body(fault, stream=True),
            timeout=30,
        ) as response:
            lines = response.iter_lines()
            seen.extend(e for _, e in zip(range(3), events(lines), strict=False))  # role + 2
            assert served.control.holding.acquire(timeout=5)
            reader = threading.Thread(target=lambda: seen.extend(events(lines)))
            with usage_held(store):
                served.control.go.set()  # the generation ends and waits to be settled
                reader.start()
                time.sleep(1.0)
                assert len(seen) <= 3 + 4, seen  # the rest of the words at most, never the end
                assert not any(_ends(e) for e in seen), seen
            reader.join(10)
        assert len(served.rows()) == 1  # read at once: the end came after the row
    assert [_ends(e) for e in seen if _ends(e)] == [end]


def _ends(event: dict[str, Any]) -> str | None:
    if "error" in event:
        return str(event["error"]["code"])
    choices = event.get("choices") or [{}]
    return choices[0].get("finish_reason")


def test_a_request_too_long_for_the_context_is_the_clients_400_and_costs_nothing(
    store: Store,
) -> None:
    """Not the backend's 502: the client asked for more than the model can hold (OpenAI's
    `context_length_exceeded`); streamed or not, the same 400 (a stream's response waits for
    its first chunk, so a refusal before it is still an HTTP status)."""
    with serving(store) as served:
        plain = served.ask("toolong")
        streamed = served.ask("toolong", stream=True)
        rows = served.settled(2)
        requests = served.metric('emeritus_requests_total{model="kept-model",status="400"}')
    for answer in (plain, streamed):
        assert answer.status_code == 400
        assert answer.json()["error"]["code"] == "context_length_exceeded"
        assert "exceeds" in answer.json()["error"]["message"]
    assert rows == [(400, 0, 0), (400, 0, 0)] and requests == 2


def test_a_disconnect_before_the_first_token_is_metered(store: Store) -> None:
    """The response waits for the first chunk; a client that gives up before it (here: its read
    timeout, while the model holds before its first word) is cut off having been handed
    nothing."""
    with serving(store) as served:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                f"{served.base}/chat/completions",
                headers={"Authorization": f"Bearer {served.key}"},
                json=served.body("hold:0", stream=True),
                timeout=httpx.Timeout(10, read=1.5),
            )
        assert served.control.holding.acquire(timeout=5)  # still before its first word
        time.sleep(1.0)  # the server reads the hang-up on loopback within milliseconds
        served.control.go.set()
        [(status, prompt, completion)] = served.settled(1)
        assert served.control.closed.wait(5)  # the generation was stopped, not left to the GC
        cutoffs = served.metric('emeritus_cutoffs_total{model="kept-model",reason="disconnected"}')
    assert (status, completion) == (499, 0) and prompt > 0 and cutoffs == 1


def test_a_disconnect_mid_stream_is_metered_with_the_tokens_so_far(store: Store) -> None:
    with serving(store) as served:
        with httpx.stream(
            "POST",
            f"{served.base}/chat/completions",
            headers={"Authorization": f"Bearer {served.key}"},
            json=served.body("hold:3", stream=True),
            timeout=10,
        ) as response:
            lines = response.iter_lines()
            received = [e for _, e in zip(range(4), events(lines), strict=False)]  # role + 3 words
            assert served.control.holding.acquire(timeout=5)
        assert len(received) == 4
        wait_until(
            lambda: served.metric('emeritus_streams_open{model="kept-model"}') == 0,
            "the disconnect",
        )
        served.control.go.set()
        [(status, prompt, completion)] = served.settled(1)
        assert served.control.closed.wait(5)
    assert (status, completion) == (499, 3) and prompt > 0


def never_reading(served: Served, content: str) -> socket.socket:
    """A client that sends a streamed request and never reads a byte of the answer."""
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect(("127.0.0.1", served.port))
    body = json.dumps(served.body(content, stream=True, max_tokens=4096)).encode()
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {served.key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    client.sendall(head.encode() + body)
    return client


def test_a_client_that_never_reads_delays_no_one_and_is_metered(store: Store) -> None:
    with serving(store) as served:
        started = time.monotonic()
        assert served.ask("hello").status_code == 200
        own = time.monotonic() - started  # Y's own generation, with nothing in its way
        x = never_reading(served, "long")
        try:
            wait_until(
                lambda: served.metric('emeritus_slots_busy{model="kept-model"}') == 1, "X's slot"
            )
            started = time.monotonic()
            y = served.ask("hello", timeout=10)
            waited = time.monotonic() - started
            rows = served.settled(3)
            stalled = served.metric('emeritus_cutoffs_total{model="kept-model",reason="stalled"}')
        finally:
            x.close()
    assert y.status_code == 200 and waited < own + 2, (waited, own)
    assert sorted(s for s, _, _ in rows) == [200, 200, 499]
    [(_, prompt, completion)] = [row for row in rows if row[0] == 499]
    assert prompt > 0 and 0 < completion < 4000 and stalled == 1
    assert served.control.closed.is_set()


def test_no_slot_within_the_queue_wait_is_a_503_that_costs_nothing(store: Store) -> None:
    with serving(store, queue_wait=0.5) as served:
        first: list[httpx.Response] = []
        holder = threading.Thread(target=lambda: first.append(served.ask("hold")))
        holder.start()
        assert served.control.holding.acquire(timeout=5)
        started = time.monotonic()
        refused = served.ask("hello")
        waited = time.monotonic() - started
        served.control.go.set()
        holder.join(10)
        rows = served.settled(2)
        timeouts = served.metric('emeritus_queue_timeouts_total{model="kept-model"}')
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "model_busy" and waited >= 0.5
    assert first[0].status_code == 200 and timeouts == 1
    assert [s for s, _, _ in rows] == [503, 200] and rows[0][1:] == (0, 0)


def test_queued_requests_hold_no_thread_and_sync_routes_answer(store: Store) -> None:
    queued = 45  # more than the thread pool's 40 threads
    with serving(store) as served:
        results: list[int] = []

        async def crowd() -> None:
            limits = httpx.Limits(max_connections=queued)
            async with httpx.AsyncClient(timeout=60, limits=limits) as client:

                async def one() -> None:
                    response = await client.post(
                        f"{served.base}/chat/completions",
                        headers={"Authorization": f"Bearer {served.key}"},
                        json=served.body("hello"),
                    )
                    results.append(response.status_code)

                await asyncio.gather(*(one() for _ in range(queued)))

        holder = threading.Thread(target=lambda: results.append(served.ask("hold").status_code))
        holder.start()
        assert served.control.holding.acquire(timeout=5)
        others = threading.Thread(target=asyncio.run, args=(crowd(),))
        others.start()
        try:
            wait_until(
                lambda: served.metric('emeritus_queue_length{model="kept-model"}') == queued,
                "the queue",
                timeout=60,
            )
            started = time.monotonic()
            models = httpx.get(
                f"{served.base}/models",
                headers={"Authorization": f"Bearer {served.key}"},
                timeout=5,
            )
            answered_in = time.monotonic() - started
        finally:
            served.control.go.set()
            holder.join(60)
            others.join(60)
        rows = served.settled(queued + 1)
    assert models.status_code == 200 and answered_in < 2
    assert results == [200] * (queued + 1) and {s for s, _, _ in rows} == {200}


def test_slots_per_model_are_configurable(store: Store) -> None:
    with serving(store, slots=2) as served:
        results: list[int] = []
        threads = [
            threading.Thread(target=lambda: results.append(served.ask("hold").status_code))
            for _ in range(3)
        ]
        for thread in threads:
            thread.start()
        try:
            assert served.control.holding.acquire(timeout=5)
            assert served.control.holding.acquire(timeout=5)  # two generations at once
            wait_until(
                lambda: served.metric('emeritus_queue_length{model="kept-model"}') == 1, "the third"
            )
            assert served.metric('emeritus_slots_busy{model="kept-model"}') == 2
        finally:
            served.control.go.set()
            for thread in threads:
                thread.join(10)
        served.settled(3)
    assert results == [200, 200, 200]
