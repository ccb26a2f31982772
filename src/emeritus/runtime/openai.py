"""Any OpenAI-compatible server as a backend: vLLM, Ollama, llama.cpp's server, a hosted API.

Connection failures, timeouts and 5xx answers are retried with exponential backoff before any
output has been received; everything else is one clear `BackendError`. A stream that breaks off
after it started is an error, never a silently short answer.

The server applies the chat template and parses special tokens in the whole result, so every
message content is neutralized before it is sent: a word joiner breaks each control-token string
in it (the model's own, when given, and the common spellings), and a user's text cannot close
its turn (docs/design/runtime.md, "Special tokens and the prefix cache").
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from emeritus.errors import InvalidInput
from emeritus.runtime.backend import (
    Backend,
    BackendError,
    ChatRequest,
    Chunk,
    Completion,
    LoadError,
    Message,
    Params,
    TokenUsage,
    check_fits,
)
from emeritus.runtime.prompts import TRANSCRIPT, neutralize, render_transcript

if TYPE_CHECKING:
    import httpx

    from emeritus.runtime.deployment import Deployment
    from emeritus.runtime.preserved import PreservedModel

T = TypeVar("T")
TOKENIZE_TIMEOUT = 10.0  # counting a prompt must not hold a request up for long


class _Retryable(Exception):
    pass


class OpenAIBackend(Backend):
    name = "openai"
    in_process = False

    @classmethod
    def check_deployment(cls, deployment: Deployment) -> None:
        if not deployment.url:
            raise InvalidInput("the openai backend needs --url, the server's /v1 address")
        if not deployment.url.startswith(("http://", "https://")):
            raise InvalidInput(f"--url must be an http(s) address, not {deployment.url!r}")

    @classmethod
    def from_preserved(
        cls, preserved: PreservedModel, deployment: Deployment, **options: Any
    ) -> OpenAIBackend:
        """The server the deployment names, serving the model under its server name (the
        model's own by default); the preserved tokenizer's control tokens are kept out of
        message contents. A key is read from the environment variable `api_key_env` names."""
        cls.check_deployment(deployment)
        assert deployment.url is not None
        variable = options.pop("api_key_env", None)
        if variable is not None and "api_key" not in options:
            if not os.environ.get(str(variable)):
                raise LoadError(f"openai: the API key variable {variable} is not set")
            options["api_key"] = os.environ[str(variable)]
        options.setdefault("special_tokens", preserved.special_tokens())
        return cls(deployment.url, deployment.server_model or preserved.name, **options)

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
        special_tokens: Sequence[str] = (),
        **_: Any,
    ) -> None:
        import httpx  # on use: importing emeritus.runtime loads no HTTP client

        if prompt_format not in ("chat", TRANSCRIPT):
            raise BackendError(f"openai: unknown prompt format {prompt_format!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.retries, self.backoff = retries, backoff
        self.prompt_format = prompt_format
        self.structured = "json_schema"  # how this server takes a JSON schema; learnt on refusal
        self.logprobs = True  # whether it gives the tokens' ids (`logprobs`); learnt on refusal
        self._context: int | None = None  # its context per request, once asked (0: untold)
        # The model's own control-token strings, beside the common spellings, that a message
        # content must not carry to the server intact.
        self.special_tokens = tuple(special_tokens)
        # How this server counts tokens (`vllm`, `llama-server`, `llama-cpp-python`, or `none`);
        # learnt on the first count.
        self.tokenizer: str | None = None
        root = self.base_url
        self.root = root[: -len("/v1")] if root.endswith("/v1") else root
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(
            base_url=self.base_url,
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        )

    def _where(self) -> str:
        return f"openai: {self.model} at {self.base_url}"

    def _retry(self, action: Callable[[], T]) -> T:
        import httpx

        retryable = (
            httpx.ConnectError,
            httpx.ConnectTimeout,
            httpx.ReadTimeout,
            httpx.RemoteProtocolError,
        )
        for attempt in range(self.retries + 1):
            try:
                return action()
            except (_Retryable, *retryable) as exc:
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

    def forwarded(self, messages: Sequence[Message]) -> tuple[Message, ...]:
        """The messages as they are sent: each content neutralized."""
        return tuple(Message(m.role, neutralize(m.content, self.special_tokens)) for m in messages)

    def _body(
        self, request: ChatRequest, stream: bool, extra: Mapping[str, Any] | None = None
    ) -> tuple[str, dict[str, Any], str]:
        p = request.params
        messages = self.forwarded(request.messages)
        body: dict[str, Any] = {
            "model": self.model,
            "max_tokens": p.max_tokens,
            "temperature": p.temperature,
            "top_p": p.top_p,
            "seed": p.seed,
            "stream": stream,
            **(extra or {}),
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        elif self.logprobs and p.token_ids:
            # The chosen tokens' ids, for fingerprints (llama.cpp's server gives `id`, vLLM
            # with --return-tokens-as-token-ids `token_id:N`); one alternative is the least
            # a server returns them with.
            body.update(logprobs=True, top_logprobs=1)
        if self.prompt_format == TRANSCRIPT:
            prompt = render_transcript(messages)
            body.update(
                prompt=prompt.text,
                stop=list((*prompt.stop, *p.stop)),
                repeat_penalty=p.repeat_penalty
                if p.repeat_penalty != 1.0
                else prompt.repeat_penalty,
            )
            if p.json_schema is not None:
                body["response_format"] = self._response_format(p.json_schema)
            if "logprobs" in body:
                body.update(logprobs=1)  # the completions API's form: how many alternatives
                del body["top_logprobs"]
            return "/completions", body, TRANSCRIPT
        if p.json_schema is not None:
            body["response_format"] = self._response_format(p.json_schema)
        body.update(messages=[m.to_dict() for m in messages])
        if p.stop:
            body["stop"] = list(p.stop)
        return "/chat/completions", body, "server-chat-template"

    def _response_format(self, schema: Mapping[str, Any]) -> dict[str, Any]:
        if self.structured == "json_schema":  # OpenAI's form, also vLLM's
            return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
        return {"type": "json_object", "schema": schema}  # llama.cpp's server

    def chat(self, request: ChatRequest, extra: Mapping[str, Any] | None = None) -> Completion:
        """`extra`: fields added to the request body (a managed engine's slot)."""
        while True:
            path, body, fmt = self._body(request, stream=False, extra=extra)
            try:
                return _completion(self._post(path, body), fmt)
            except _Refused as refused:
                # What a server may refuse and do without: asking for the tokens' ids; and
                # structured output, which servers spell two ways.
                if "logprobs" in body and "logprobs" in str(refused):
                    self.logprobs = False
                elif "response_format" in body and self.structured == "json_schema":
                    self.structured = "json_object"
                else:
                    self._too_long(request, refused)
                    raise

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

    def count_prompt_tokens(self, request: ChatRequest) -> int | None:
        """The prompt's tokens as the server counts them, by its tokenize endpoint: vLLM's
        `POST /tokenize` (messages, or a prompt), llama.cpp's server's `POST /apply-template`
        then `POST /tokenize`, llama-cpp-python's `POST /extras/tokenize` (a transcript prompt
        only: it cannot apply a template). One attempt each; None where none answers."""
        import httpx

        messages = self.forwarded(request.messages)
        try:
            if self.prompt_format == TRANSCRIPT:
                return self._count_text(render_transcript(messages).text)
            return self._count_chat(messages)
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None

    def _tokenize(self, path: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The server's answer to one tokenize call; None where it has no such route."""
        response = self.client.post(self.root + path, json=body, timeout=TOKENIZE_TIMEOUT)
        if response.status_code in (404, 405):
            return None
        answer: dict[str, Any] = response.raise_for_status().json()
        return answer

    def _count_chat(self, messages: tuple[Message, ...]) -> int | None:
        listed = [m.to_dict() for m in messages]
        if self.tokenizer in (None, "vllm"):
            answer = self._tokenize(
                "/tokenize",
                {"model": self.model, "messages": listed, "add_generation_prompt": True},
            )
            if answer is None:
                self.tokenizer = "none"
                return None
            if "count" in answer:
                self.tokenizer = "vllm"
                return int(answer["count"])
            self.tokenizer = "llama-server"  # it answered, ignoring what it does not know
        if self.tokenizer != "llama-server":
            return None
        applied = self._tokenize("/apply-template", {"messages": listed})
        if applied is None:
            return None
        return self._llama_server_count(str(applied["prompt"]))

    def _count_text(self, text: str) -> int | None:
        if self.tokenizer in (None, "vllm"):
            answer = self._tokenize("/tokenize", {"model": self.model, "prompt": text})
            if answer is not None and "count" in answer:
                self.tokenizer = "vllm"
                return int(answer["count"])
            self.tokenizer = "llama-server" if answer is not None else "llama-cpp-python"
        if self.tokenizer == "llama-server":
            return self._llama_server_count(text)
        if self.tokenizer == "llama-cpp-python":
            found = self._tokenize("/extras/tokenize", {"model": self.model, "input": text})
            if found is not None:
                return len(found["tokens"])
            self.tokenizer = "none"
        return None

    def _llama_server_count(self, text: str) -> int | None:
        # As its completion endpoints tokenize a prompt: BOS added, special tokens parsed.
        body = {"content": text, "add_special": True, "parse_special": True}
        answer = self._tokenize("/tokenize", body)
        return None if answer is None else len(answer["tokens"])

    def context_length(self) -> int | None:
        """The context the server gives one request, where it tells: vLLM's `max_model_len` in
        `GET /models`, llama.cpp's server's per-slot `n_ctx` in `GET /props`. One attempt
        each; None where neither answers (llama-cpp-python's server, hosted APIs)."""
        import httpx

        if self._context is not None:
            return self._context or None
        self._context = 0
        try:
            for entry in self.client.get("/models").json().get("data", []):
                if entry.get("id") == self.model and isinstance(entry.get("max_model_len"), int):
                    self._context = int(entry["max_model_len"])
                    return self._context
        except (httpx.HTTPError, ValueError, AttributeError, TypeError):
            pass
        try:
            props = self.client.get(self.root + "/props").json()
            self._context = int(props["default_generation_settings"]["n_ctx"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            pass
        return self._context or None

    def served_models(self) -> list[str] | None:
        """The model ids `GET /models` lists, or None when the server gives no such list (no
        route, a refusal, another shape). One attempt, no retries: a preflight check fails fast;
        a server that does not answer is a `BackendError`."""
        import httpx

        try:
            response = self.client.get("/models")
        except httpx.HTTPError as exc:
            raise BackendError(f"{self._where()}: {_describe(exc)}") from None
        try:
            return [str(m["id"]) for m in response.raise_for_status().json()["data"]]
        except (httpx.HTTPStatusError, ValueError, KeyError, TypeError):
            return None

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

    def stream_chat(
        self, request: ChatRequest, extra: Mapping[str, Any] | None = None
    ) -> Iterator[Chunk]:
        path, body, fmt = self._body(request, stream=True, extra=extra)
        try:
            context = self._retry(lambda: self._open_stream(path, body))
        except _Refused as refused:
            self._too_long(request, refused)
            raise
        return self._read_stream(context, fmt)

    def _too_long(self, request: ChatRequest, refused: _Refused) -> None:
        """Raise ContextExceeded when the server refused a request that does not fit its
        context. Servers word this their own way (and llama.cpp's refuses only a prompt longer
        than the context), so the fit is checked here, by the server's own count, and only on
        the refusal's path: an answer costs no extra round trip."""
        if refused.status != 400:
            return
        counted = self.count_prompt_tokens(request)
        if counted is not None:
            check_fits(self._where(), counted, request.params.max_tokens, self.context_length())

    def _open_stream(self, path: str, body: dict[str, Any]) -> Any:
        stream = self.client.stream("POST", path, json=body)
        response = stream.__enter__()
        try:
            if response.status_code >= 400:
                response.read()  # a refusal's body is small, and its message is in it
            self._check(response)
        except BaseException:
            stream.__exit__(None, None, None)
            raise
        return stream, response

    def _read_stream(self, context: Any, fmt: str) -> Iterator[Chunk]:
        import httpx

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
                    usage = TokenUsage(
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
        yield Chunk("", usage or TokenUsage(0, pieces), finish or "stop", fmt)

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
            TokenUsage(usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)),
            choice.get("finish_reason") or "stop",
            fmt,
            token_ids_of(choice.get("logprobs"), choice.get("finish_reason") == "stop"),
        )
    except (KeyError, IndexError, TypeError) as exc:
        raise BackendError(f"openai: unexpected answer shape: {exc}") from None


def token_ids_of(logprobs: object, stopped: bool = False) -> tuple[int, ...] | None:
    """The chosen tokens' ids in an answer's `logprobs`, where the server gives them: llama.cpp's
    server an `id` per entry (chat) or `tokens` ids; vLLM with --return-tokens-as-token-ids a
    token spelled `token_id:N`. None where it gives text only (a fingerprint then compares
    text, and says so). The token that ended a `stopped` answer (llama.cpp's server lists it,
    with no text) is not part of the answer, as for the embedded backend."""
    if not isinstance(logprobs, dict):
        return None
    entries = logprobs.get("content")
    if isinstance(entries, list) and stopped:
        while entries and isinstance(entries[-1], dict) and not entries[-1].get("bytes", [0]):
            entries = entries[:-1]
    if isinstance(entries, list):  # the chat API
        ids = []
        for entry in entries:
            if not isinstance(entry, dict):
                return None
            found = entry.get("id")
            if not isinstance(found, int):
                found = _spelled_id(entry.get("token"))
            if found is None:
                return None
            ids.append(found)
        return tuple(ids)
    tokens = logprobs.get("tokens")  # the completions API
    if isinstance(tokens, list) and tokens:
        spelled = [_spelled_id(t) for t in tokens]
        if all(i is not None for i in spelled):
            return tuple(i for i in spelled if i is not None)
    return None


def _spelled_id(token: object) -> int | None:
    if isinstance(token, str) and token.startswith("token_id:") and token[9:].isdigit():
        return int(token[9:])
    return None


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
