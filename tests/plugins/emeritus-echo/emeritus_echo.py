"""An emeritus backend from outside the package: answers a chat by echoing the last user message
back with its words reversed. Deterministic, so that fingerprints taken through it replay."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from emeritus.runtime import Backend, ChatRequest, Chunk, Completion, Params, TokenUsage

VERSION = "1.0.0"


class EchoBackend(Backend):
    name = "echo"
    in_process = False

    @classmethod
    def from_preserved(cls, preserved: Any, deployment: Any, **options: Any) -> EchoBackend:
        return cls(preserved.name, prefix=str(deployment.options.get("prefix", "echo")))

    def __init__(self, model: str, *, prefix: str = "echo") -> None:
        self.model = model
        self.prefix = prefix

    def _answer(self, prompt: str, params: Params) -> Completion:
        words = [self.prefix, *reversed(prompt.split())][: params.max_tokens]
        text = " ".join(words)
        return Completion(
            text=text,
            usage=TokenUsage(len(prompt.split()), len(words)),
            finish_reason="length" if len(words) == params.max_tokens else "stop",
            prompt_format="echo",
            token_ids=tuple(len(w) for w in words),
        )

    def chat(self, request: ChatRequest) -> Completion:
        user = [m.content for m in request.messages if m.role == "user"]
        return self._answer(user[-1] if user else "", request.params)

    def stream_chat(self, request: ChatRequest) -> Iterator[Chunk]:
        done = self.chat(request)
        pieces = done.text.split(" ")
        for i, piece in enumerate(pieces):
            yield Chunk(piece if i == 0 else " " + piece)
        yield Chunk(
            "",
            usage=done.usage,
            finish_reason=done.finish_reason,
            prompt_format=done.prompt_format,
            token_ids=done.token_ids,
        )

    def complete(self, prompt: str, params: Params) -> Completion:
        return self._answer(prompt, params)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "version": VERSION, "build_flags": "", "threads": 0}
