"""A scripted, deterministic backend for testing the layers above the runtime. Never a stand-in
for a real model: the real bundled models cover the real path.

Script (YAML): `replies` matched in order by a substring of the last user message, then
`default`:

    replies:
      - when: "retire"
        reply: "I have mixed feelings."
    default: "I am a mock model."
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from emeritus import __version__
from emeritus.errors import InvalidInput
from emeritus.runtime.backend import (
    Backend,
    ChatRequest,
    Chunk,
    Completion,
    Params,
    TokenUsage,
)

if TYPE_CHECKING:
    from emeritus.runtime.deployment import Deployment
    from emeritus.runtime.preserved import PreservedModel


class MockBackend(Backend):
    name = "mock"
    in_process = False  # it holds no weights

    @classmethod
    def from_preserved(
        cls, preserved: PreservedModel, deployment: Deployment, **options: Any
    ) -> MockBackend:
        """Scripted replies (the `script` option, a YAML file) in place of the preserved
        weights: for testing the layers above the runtime on a registered model."""
        return cls(options.get("script"))

    def __init__(self, script: str | Path | dict[str, Any] | None = None, **_: Any) -> None:
        if script is None:
            data: dict[str, Any] = {}
        elif isinstance(script, dict):
            data = script
        else:
            try:
                loaded = yaml.safe_load(Path(script).read_text(encoding="utf-8"))
            except (OSError, yaml.YAMLError) as exc:
                raise InvalidInput(f"mock script {script}: {exc}") from None
            data = loaded or {}
        if not isinstance(data, dict) or not isinstance(data.get("replies", []), list):
            raise InvalidInput("mock script must be a mapping with a list of replies")
        self.replies = [(str(r["when"]), str(r["reply"])) for r in data.get("replies", [])]
        self.default = str(data.get("default", "I am a mock model."))

    def _answer(self, prompt: str) -> str:
        for needle, reply in self.replies:
            if needle.lower() in prompt.lower():
                return reply
        return self.default

    def _finish(self, prompt: str, text: str, params: Params, fmt: str) -> Completion:
        words = text.split(" ")
        finish = "stop"
        if len(words) > params.max_tokens:
            text, finish = " ".join(words[: params.max_tokens]), "length"
        ids = tuple(int(hashlib.sha256(w.encode()).hexdigest()[:6], 16) for w in text.split(" "))
        usage = TokenUsage(len(prompt.split()), len(ids))
        return Completion(text, usage, finish, fmt, ids)

    def chat(self, request: ChatRequest) -> Completion:
        last = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        return self._finish(_prompt(request), self._answer(last), request.params, "mock")

    def count_prompt_tokens(self, request: ChatRequest) -> int | None:
        """What `chat` reports as the prompt's tokens: its words."""
        return len(_prompt(request).split())

    def stream_chat(self, request: ChatRequest) -> Iterator[Chunk]:
        done = self.chat(request)
        words = done.text.split(" ")
        for index, word in enumerate(words):
            yield Chunk(word if index == 0 else " " + word)
        yield Chunk("", done.usage, done.finish_reason, done.prompt_format, done.token_ids)

    def complete(self, prompt: str, params: Params) -> Completion:
        return self._finish(prompt, self._answer(prompt), params, "raw")

    def describe(self) -> dict[str, Any]:
        return {"backend": "mock", "version": __version__, "build_flags": "", "threads": 0}


def _prompt(request: ChatRequest) -> str:
    return " ".join(m.content for m in request.messages)
