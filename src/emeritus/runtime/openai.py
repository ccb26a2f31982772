"""Any OpenAI-compatible server as a backend: vLLM, Ollama, llama.cpp's server, a hosted API.

Connection failures, timeouts and 5xx answers are retried with exponential backoff before any
output has been received; everything else is one clear `BackendError`. A stream that breaks off
after it started is an error, never a silently short answer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import httpx

from emeritus.runtime.backend import (
    Backend,
    BackendError,
    ChatRequest,
    Chunk,
    Completion,
    Params,
    Usage,
)
from emeritus.runtime.prompts import TRANSCRIPT, render_transcript

T = TypeVar("T")
_RETRYABLE = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.ReadTimeout,
    httpx.RemoteProtocolError,
)


class _Retryable(Exception):
    pass


class OpenAIBackend(Backend):
    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        retries: int = 3,
        backoff: float = 0.5,
        prompt_format: str = "chat",
        **_: Any,
    ) -> None:
        if prompt_format not in ("chat", TRANSCRIPT):
            raise BackendError(f"openai: unknown prompt format {prompt_format!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.retries, self.backoff = retries, backoff
        self.prompt_format = prompt_format
        self.structured = "json_schema"  # how this server takes a JSON schema; learnt on refusal
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        )

    def _where(self) -> str:
        return f"openai: {self.model} at {self.base_url}"

    def _retry(self, action: Callable[[], T]) -> T:
        for attempt in range(self.retries + 1):
            try:
                return action()
            except (_Retryable, *_RETRYABLE) as exc:
                if attempt == self.retries:
                    raise BackendError(
                        f"{self._where()}: {_describe(exc)} (after {self.retries + 1} attempts)"
                    ) from None
                time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    def _check(self, response: httpx.Response) -> None:
        if response.status_code >= 500:
            if "response_format" in response.text[:2000]:
                # llama.cpp's server answers a request it cannot validate with a 500: sending
                # it again would not help.
                raise _Refused(
                    f"{self._where()}: {response.status_code}: response_format refused",
                    response.status_code,
                )
            raise _Retryable(f"server error {response.status_code}")
        if response.status_code >= 400:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:200]
            raise _Refused(
                f"{self._where()}: {response.status_code}: {message}", response.status_code
            )

    def _body(self, request: ChatRequest, stream: bool) -> tuple[str, dict[str, Any], str]:
        p = request.params
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": p.max_tokens,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "seed": p.seed,
            "stream": stream,
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        if self.prompt_format == TRANSCRIPT:
            prompt = render_transcript(request.messages)
            body.update(
                prompt=prompt.text,
                stop=list((*prompt.stop, *p.stop)),
                repeat_penalty=p.repeat_penalty
                if p.repeat_penalty != 1.0
                else prompt.repeat_penalty,
            )
            if p.json_schema is not None:
                body["response_format"] = self._response_format(p.json_schema)
            return "/completions", body, TRANSCRIPT
        if p.json_schema is not None:
            body["response_format"] = self._response_format(p.json_schema)
        body.update(messages=[m.to_dict() for m in request.messages])
        if p.stop:
            body["stop"] = list(p.stop)
        return "/chat/completions", body, "server-chat-template"

    def _response_format(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        if self.structured == "json_schema":  # OpenAI's form, also vLLM's
            return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
        return {"type": "json_object", "schema": schema}  # llama.cpp's server

    def chat(self, request: ChatRequest) -> Completion:
        path, body, fmt = self._body(request, stream=False)
        try:
            return _completion(self._post(path, body), fmt)
        except _Refused:
            # Servers spell structured output two ways; a refusal of the first tries the other.
            if "response_format" not in body or self.structured != "json_schema":
                raise
            self.structured = "json_object"
            path, body, fmt = self._body(request, stream=False)
            return _completion(self._post(path, body), fmt)

    def complete(self, prompt: str, params: Params) -> Completion:
        body = {
            "model": self.model,
            "prompt": prompt,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "seed": params.seed,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        return _completion(self._post("/completions", body), "raw")

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        def send() -> dict[str, Any]:
            response = self.client.post(path, json=body)
            self._check(response)
            try:
                data: dict[str, Any] = response.json()
            except ValueError:
                raise BackendError(f"{self._where()}: the answer is not JSON") from None
            return data

        return self._retry(send)

    def stream_chat(self, request: ChatRequest) -> Iterator[Chunk]:
        path, body, fmt = self._body(request, stream=True)
        context = self._retry(lambda: self._open_stream(path, body))
        return self._read_stream(context, fmt)

    def _open_stream(self, path: str, body: dict[str, Any]) -> Any:
        stream = self.client.stream("POST", path, json=body)
        response = stream.__enter__()
        try:
            self._check(response)
        except BaseException:
            stream.__exit__(None, None, None)
            raise
        return stream, response

    def _read_stream(self, context: Any, fmt: str) -> Iterator[Chunk]:
        stream, response = context
        pieces, usage, finish, done = 0, None, None, False
        try:
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    done = True
                    break
                event = json.loads(payload)
                if event.get("usage"):
                    usage = Usage(
                        event["usage"]["prompt_tokens"], event["usage"]["completion_tokens"]
                    )
                for choice in event.get("choices", []):
                    text = (choice.get("delta") or {}).get("content") or choice.get("text") or ""
                    if text:
                        pieces += 1
                        yield Chunk(text)
                    finish = choice.get("finish_reason") or finish
        except (httpx.HTTPError, ValueError) as exc:
            raise BackendError(
                f"{self._where()}: the stream broke off after {pieces} pieces: {_describe(exc)}"
            ) from None
        finally:
            stream.__exit__(None, None, None)
        if not done:
            raise BackendError(
                f"{self._where()}: the stream ended after {pieces} pieces without finishing"
            )
        yield Chunk("", usage or Usage(0, pieces), finish or "stop", fmt)

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "version": self.model,
            "build_flags": "",
            "threads": 0,
            "server": self.base_url,
        }

    def close(self) -> None:
        self.client.close()


class _Refused(BackendError):
    """A 4xx answer: not retried."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _completion(data: dict[str, Any], fmt: str) -> Completion:
    try:
        choice = data["choices"][0]
        text = choice["message"]["content"] if "message" in choice else choice["text"]
        usage = data.get("usage") or {}
        return Completion(
            text.strip() if fmt == TRANSCRIPT else text,
            Usage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
            choice.get("finish_reason") or "stop",
            fmt,
        )
    except (KeyError, IndexError, TypeError) as exc:
        raise BackendError(f"openai: unexpected answer shape: {exc}") from None


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
