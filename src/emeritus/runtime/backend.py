"""The backend interface every inference engine implements. Contract: docs/design/runtime.md."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, Literal

from emeritus.errors import EmeritusError, InvalidInput

if TYPE_CHECKING:
    from emeritus.runtime.deployment import Deployment
    from emeritus.runtime.preserved import PreservedModel

Role = Literal["system", "user", "assistant"]


class BackendError(EmeritusError):
    """A backend failed to answer: one line naming the backend, the model and the failure."""

    exit_code = 6


class LoadError(BackendError):
    """A model could not be loaded."""


class ContextExceeded(BackendError):
    """The request does not fit the model's context: its prompt plus the tokens it asks for are
    more than the model can hold. The caller's input is at fault, not the backend (a 400 through
    the gateway, the exit status of bad input on the command line)."""

    exit_code = 2


def check_fits(where: str, prompt_tokens: int, max_tokens: int, context: int | None) -> None:
    """Raise ContextExceeded when a prompt of `prompt_tokens` asking for `max_tokens` more does
    not fit `context` (nothing is known to be too long where the context is unknown)."""
    if context is not None and prompt_tokens + max_tokens > context:
        raise ContextExceeded(
            f"{where}: prompt of {prompt_tokens} tokens plus {max_tokens} to generate exceeds "
            f"the context of {context}"
        )


@dataclass(frozen=True)
class Message:
    role: Role
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Params:
    """Sampling parameters; the defaults are greedy and reproducible."""

    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    repeat_penalty: float = 1.0
    # Structured output: the answer must be JSON matching this schema (a grammar on llama.cpp,
    # `response_format` on a server). The caller still validates what comes back.
    json_schema: Mapping[str, Any] | None = None
    # Ask for the answer's token ids where that costs a server extra work (`logprobs`): the
    # fingerprints do; in-process backends report them anyway.
    token_ids: bool = False

    def __post_init__(self) -> None:
        if self.max_tokens < 1:
            raise InvalidInput(f"max_tokens must be at least 1, not {self.max_tokens}")
        if not 0.0 <= self.temperature <= 2.0:
            raise InvalidInput(f"temperature must be between 0 and 2, not {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise InvalidInput(f"top_p must be in (0, 1], not {self.top_p}")


@dataclass(frozen=True)
class ChatRequest:
    messages: tuple[Message, ...]
    params: Params = field(default_factory=Params)
    # Who an evaluated prompt prefix may be shared with: a backend that reuses a cached prefix
    # reuses it only between requests of the same scope (the gateway passes the principal), so
    # that timing cannot tell one principal what another asked. None: no reuse across requests.
    cache_scope: str | None = None

    def __post_init__(self) -> None:
        if not self.messages:
            raise InvalidInput("a chat request needs at least one message")
        for message in self.messages:
            if message.role not in ("system", "user", "assistant"):
                raise InvalidInput(f"unknown message role {message.role!r}")


@dataclass(frozen=True)
class TokenUsage:
    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Completion:
    text: str
    usage: TokenUsage
    finish_reason: str  # "stop" | "length"
    prompt_format: str
    token_ids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Chunk:
    """A piece of a streamed answer; the last one has `usage` and `finish_reason`."""

    text: str
    usage: TokenUsage | None = None
    finish_reason: str | None = None
    prompt_format: str | None = None
    token_ids: tuple[int, ...] | None = None


class Backend(ABC):
    """One loaded model behind one engine."""

    name: str
    # Whether the model's weights live in this process (their bytes count against the pool's
    # memory budget) or behind a server (they count nothing here).
    in_process: bool = True
    # Generations it runs at once, where it says (an engine's parallelism): the admission
    # layer's slots for the model; None: the gateway's setting (1 unless configured).
    slots: int | None = None
    # Seconds it stays loaded when idle, where its deployment says (else the pool's default).
    keep_alive: float | None = None

    @classmethod  # noqa: B027 - optional: most backends accept any deployment
    def check_deployment(cls, deployment: Deployment) -> None:
        """Refuse, with InvalidInput, a deployment this backend could never open (a server
        backend without a URL); called by `emeritus deploy` before anything is recorded."""

    @classmethod
    def from_preserved(
        cls, preserved: PreservedModel, deployment: Deployment, **options: Any
    ) -> Backend:
        """Open a preserved model as its deployment says: the way every stage opens one. A
        backend that cannot run preserved models keeps this refusal."""
        raise BackendError(f"the {cls.name} backend cannot run preserved models")

    @abstractmethod
    def chat(self, request: ChatRequest) -> Completion: ...

    @abstractmethod
    def stream_chat(self, request: ChatRequest) -> Iterator[Chunk]: ...

    @abstractmethod
    def complete(self, prompt: str, params: Params) -> Completion: ...

    def count_prompt_tokens(self, request: ChatRequest) -> int | None:
        """The prompt's size in tokens as this backend will evaluate it, known before generation
        so that a request cut off early is still metered; None when the engine cannot tell."""
        return None

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """The runtime a fingerprint records: backend, version, build flags, threads."""

    def context_length(self) -> int | None:
        """Tokens of context one request may use (prompt and answer), where the backend can
        tell; None where it cannot (a server that does not say)."""
        return None

    def is_ready(self) -> bool:
        """Whether it can answer now, without waiting (a managed engine: it is up)."""
        return True

    def wait_ready(self, timeout: float | None = None) -> None:  # noqa: B027 - loaded is ready
        """Return once the backend can answer; a managed engine starts here and raises
        `EngineUnavailable` when it is not ready within `timeout` seconds (its own start
        bound when None)."""

    def occupies(self) -> int | None:
        """The bytes it holds on this machine, where it knows better than its weights' size
        (a managed engine: weights and KV cache); None: the pool's default rule."""
        return None

    def close(self) -> None:  # noqa: B027 - optional: most backends hold nothing to release
        """Release the model (memory, connections)."""

    def release(self, reason: str) -> None:
        """Release it, saying why (`idle`, `budget`, `shutdown`): the pool's way of closing."""
        self.close()


class TextStream:
    """An answer's text as a token loop decodes it, let out in pieces: cut at the first stop
    string, holding back what may be the start of one, or half a UTF-8 character."""

    def __init__(self, stop: tuple[str, ...]) -> None:
        self.stop = stop
        self.hold = max((len(s) for s in stop), default=0)
        self.text = self.sent = ""

    def feed(self, decoded: str) -> bool:
        """Take the whole text decoded so far; True when a stop string ended it (cut there)."""
        cut = min((decoded.find(s) for s in self.stop if s in decoded), default=-1)
        self.text = decoded[:cut] if cut >= 0 else decoded
        return cut >= 0

    def ready(self) -> str:
        """The piece that can be sent now ('' while the rest may still change)."""
        ready = self.text[: len(self.text) - self.hold]
        if ready.endswith("\ufffd"):  # half a UTF-8 character: wait for the rest
            return ""
        return self._advance(ready)

    def rest(self) -> str:
        """What is left to send once generation has ended."""
        return self._advance(self.text)

    def _advance(self, upto: str) -> str:
        if len(upto) > len(self.sent) and upto.startswith(self.sent):
            piece, self.sent = upto[len(self.sent) :], upto
            return piece
        return ""


def collect(chunks: Iterator[Chunk]) -> Completion:
    """A streamed answer as one completion (for a backend whose `chat` is its stream read
    whole); the last chunk carries usage, finish reason, format and token ids."""
    text, last = [], Chunk("")
    for chunk in chunks:
        text.append(chunk.text)
        last = chunk
    assert last.usage is not None and last.finish_reason and last.prompt_format
    joined = "".join(text)
    if last.prompt_format == "transcript":  # "Model: answer" leaves a leading space
        joined = joined.strip()
    return Completion(joined, last.usage, last.finish_reason, last.prompt_format, last.token_ids)


def stops_and_penalty(
    prompt_stop: tuple[str, ...], prompt_penalty: float | None, params: Params
) -> tuple[tuple[str, ...], float]:
    """The stop strings of a prompt's format and of the request, and the repeat penalty: the
    request's, else the one the format asks for (a transcript's)."""
    penalty = params.repeat_penalty
    if prompt_penalty is not None and penalty == 1.0:
        penalty = prompt_penalty
    return tuple(dict.fromkeys((*prompt_stop, *params.stop))), penalty


def backend_classes() -> dict[str, Any]:
    """Backends registered under the `emeritus.backends` entry points, by name."""
    return {entry.name: entry for entry in entry_points(group="emeritus.backends")}


def backend_class(name: str) -> type[Backend]:
    """The backend class registered as NAME, loaded from its entry point."""
    found = backend_classes()
    if name not in found:
        raise InvalidInput(f"unknown backend {name!r}: known are {', '.join(sorted(found))}")
    loaded = found[name].load()
    if not (isinstance(loaded, type) and issubclass(loaded, Backend)):
        raise InvalidInput(f"backend {name!r} ({found[name].value}) is not an emeritus Backend")
    return loaded


def open_backend(name: str, **options: Any) -> Backend:
    return backend_class(name)(**options)
