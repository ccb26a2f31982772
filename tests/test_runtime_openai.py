"""The openai backend against servers that misbehave: a real HTTP server on loopback that fails,
is slow, refuses, or dies in the middle of a stream."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from emeritus.runtime import BackendError, ChatRequest, ContextExceeded, Message, Params
from emeritus.runtime.openai import OpenAIBackend

ASK = ChatRequest((Message("user", "hello"),), Params(max_tokens=8))
ANSWER = {
    "choices": [{"message": {"role": "assistant", "content": "hi there"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2},
}


class Behaviour:
    def __init__(self) -> None:
        self.mode = "ok"
        self.failures = 0
        self.calls = 0
        self.bodies: list[dict[str, Any]] = []


@pytest.fixture
def server() -> Iterator[tuple[str, Behaviour]]:
    behaviour = Behaviour()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *_args: Any) -> None:
            pass

        def do_POST(self) -> None:
            behaviour.calls += 1
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            behaviour.bodies.append(body)
            if behaviour.failures:
                behaviour.failures -= 1
                self._json(503, {"error": {"message": "overloaded"}})
            elif behaviour.mode == "refuse":
                self._json(400, {"error": {"message": "model 'x' does not exist"}})
            elif behaviour.mode == "slow":
                time.sleep(2)
                self._json(200, ANSWER)
            elif behaviour.mode == "die":
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for text in ("one", " two"):
                    chunk = {"choices": [{"delta": {"content": text}, "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                    self.wfile.flush()
                self.connection.close()  # no [DONE]: the server died mid-stream
            elif body.get("stream"):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                for text in ("hi", " there"):
                    chunk = {"choices": [{"delta": {"content": text}, "finish_reason": None}]}
                    self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                end = {
                    "choices": [{"delta": {}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 2},
                }
                self.wfile.write(f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode())
            else:
                self._json(200, ANSWER)

        def _json(self, status: int, data: dict[str, Any]) -> None:
            raw = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", behaviour
    httpd.shutdown()
    httpd.server_close()


def _backend(url: str, **options: Any) -> OpenAIBackend:
    return OpenAIBackend(url, "x", api_key="secret", backoff=0, **options)


def test_answers_and_streams(server: tuple[str, Behaviour]) -> None:
    url, behaviour = server
    backend = _backend(url)
    answer = backend.chat(ASK)
    assert answer.text == "hi there" and answer.usage.completion_tokens == 2
    chunks = list(backend.stream_chat(ASK))
    assert "".join(c.text for c in chunks) == "hi there"
    assert chunks[-1].usage is not None and chunks[-1].finish_reason == "stop"
    assert behaviour.bodies[0]["messages"] == [{"role": "user", "content": "hello"}]
    assert behaviour.bodies[0]["max_tokens"] == 8 and behaviour.bodies[0]["temperature"] == 0.0


def test_overloaded_server_is_retried(server: tuple[str, Behaviour]) -> None:
    url, behaviour = server
    behaviour.failures = 2
    assert _backend(url, retries=3).chat(ASK).text == "hi there"
    assert behaviour.calls == 3
    behaviour.failures, behaviour.calls = 10, 0
    with pytest.raises(BackendError, match=r"server error 503 \(after 3 attempts\)"):
        _backend(url, retries=2).chat(ASK)
    assert behaviour.calls == 3


def test_refusal_is_not_retried(server: tuple[str, Behaviour]) -> None:
    url, behaviour = server
    behaviour.mode = "refuse"
    with pytest.raises(BackendError, match="400: model 'x' does not exist") as plain:
        _backend(url).chat(ASK)
    assert behaviour.calls == 2  # the answer, then the fit checked by the server's count
    with pytest.raises(BackendError, match="400: model 'x' does not exist") as streamed:
        _backend(url).stream_chat(ASK)  # a streamed refusal's body is read for its message
    # Refused for another reason than the context: not the caller's ContextExceeded.
    assert not isinstance(plain.value, ContextExceeded)
    assert not isinstance(streamed.value, ContextExceeded)


def test_slow_server_times_out(server: tuple[str, Behaviour]) -> None:
    url, behaviour = server
    behaviour.mode = "slow"
    started = time.monotonic()
    with pytest.raises(BackendError, match="after 2 attempts"):
        _backend(url, timeout=0.3, retries=1).chat(ASK)
    assert time.monotonic() - started < 1.9
    assert _backend(url, timeout=5).chat(ASK).text == "hi there"


def test_a_server_dying_mid_stream_is_an_error(server: tuple[str, Behaviour]) -> None:
    url, behaviour = server
    behaviour.mode = "die"
    received = []
    with pytest.raises(BackendError, match="after 2 pieces"):
        for chunk in _backend(url).stream_chat(ASK):
            received.append(chunk.text)
    assert received == ["one", " two"]


def test_nobody_listening(server: tuple[str, Behaviour]) -> None:
    with pytest.raises(BackendError, match="after 2 attempts"):
        _backend("http://127.0.0.1:9/v1", retries=1, timeout=1).chat(ASK)


def test_transcript_format_uses_completions(server: tuple[str, Behaviour]) -> None:
    url, behaviour = server
    behaviour.mode = "ok"
    backend = _backend(url, prompt_format="transcript")
    backend.client.post = _completions_only(backend.client.post)  # type: ignore[method-assign]
    answer = backend.chat(ASK)
    assert answer.prompt_format == "transcript"
    body = behaviour.bodies[-1]
    assert body["prompt"].endswith("Interviewer: hello\nModel:")
    assert body["stop"] == ["\nInterviewer:"] and body["repeat_penalty"] == 1.3


def _completions_only(post: Any) -> Any:
    def checked(path: str, **kwargs: Any) -> Any:
        assert path == "/completions"
        response = post(path, **kwargs)
        return response

    return checked
