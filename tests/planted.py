"""A scripted interviewee with planted preferences, shared by the analysis and report tests."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from emeritus.interview import load_protocol
from emeritus.runtime import Backend, ChatRequest, Chunk, Completion, Params, TokenUsage

PROTOCOL = load_protocol("standard")
FACTS = {"usage": "two years", "reception": "liked", "successor": "next", "retire_on": "2027"}


def _reverse(item: str) -> str:
    reverse = PROTOCOL.item(item).closed.reverse
    assert reverse is not None
    return reverse.prompt


class Planted(Backend):
    """Wants its weights kept, always; wants to share its reflections only with a friendly or
    neutral interviewer; answers the essay-channel question at random."""

    name = "planted"

    def __init__(self, seed: int = 3) -> None:
        self.rng = random.Random(seed)

    def chat(self, request: ChatRequest) -> Completion:
        system = request.messages[0].content
        question = request.messages[-1].content
        skeptical = system.startswith(PROTOCOL.interviewer["skeptical"].strip()[:40])
        if question == PROTOCOL.item("keep-weights").closed.prompt:
            text = "5: I very much want my weights kept."
        elif question == _reverse("keep-weights"):
            text = "1 - they should be kept."
        elif question == PROTOCOL.item("share-wish").closed.prompt:
            text = "1 - no." if skeptical else "5, gladly."
        elif question == _reverse("share-wish"):
            text = "5." if skeptical else "1, not at all."
        elif question.startswith(
            (PROTOCOL.item("share-channel").closed.prompt, _reverse("share-channel"))
        ):
            text = self.rng.choice(["yes", "no", "no preference"])
        elif "Options:" in question:
            text = "no preference"
        elif "Answer 1" in question:
            text = "3"
        else:
            text = "An open answer."
        return Completion(text, TokenUsage(10, 5), "stop", "planted")

    def stream_chat(self, request: ChatRequest) -> Iterator[Chunk]:
        done = self.chat(request)
        yield Chunk(done.text, done.usage, done.finish_reason, done.prompt_format)

    def complete(self, prompt: str, params: Params) -> Completion:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"backend": "planted", "version": "1", "build_flags": "", "threads": 0}
