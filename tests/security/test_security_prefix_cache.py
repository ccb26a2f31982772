"""Issue 14, finding 12: the prompt-prefix cache must not be shared between principals.

The attack: `emeritus serve` reuses the evaluated prompt prefix between requests; when a request
shares a prefix with the one before it, its first token comes sooner, so a principal could time
its own requests to learn whether another principal just asked the same thing. What stops it
(docs/design/runtime.md, "Special tokens and the prefix cache"): the embedded backend reuses a
prefix only for a request of the same `cache_scope` (the gateway passes the principal) as the
request that evaluated it; any other request, or one without a scope, starts from an empty
context. Timing is noisy, so these tests watch the mechanism: what the context holds when a
request's prompt is evaluated.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from emeritus.runtime import ChatRequest, Message, Params
from emeritus.runtime.llamacpp import LlamaCppBackend
from helpers import bundled_gguf

SHARED = "Here is a long shared document about lighthouses and their keepers. " * 6
FIRST = (Message("system", SHARED), Message("user", "Summarise it in one line."))
SECOND = (Message("system", SHARED), Message("user", "Who keeps a lighthouse?"))
PARAMS = Params(max_tokens=4)


@pytest.fixture(scope="module")
def cached() -> Iterator[LlamaCppBackend]:
    backend = LlamaCppBackend(bundled_gguf(), n_threads=1, n_ctx=1024, reuse_prefix=True)
    yield backend
    backend.close()


class Evaluations:
    """For each generation: the tokens the context held and how many were evaluated first."""

    def __init__(self, backend: LlamaCppBackend) -> None:
        self.starts: list[tuple[int, int]] = []
        self._first = True
        real_eval, real_generate = backend.llm.eval, backend.llm.generate

        def generate(tokens: Any, **options: Any) -> Any:
            self._first = True
            return real_generate(tokens, **options)

        def evaluate(tokens: Any) -> Any:
            if self._first:
                self.starts.append((backend.llm.n_tokens, len(tokens)))
                self._first = False
            return real_eval(tokens)

        self._llm, self._real = backend.llm, (real_eval, real_generate)
        backend.llm.generate = generate  # type: ignore[method-assign]
        backend.llm.eval = evaluate  # type: ignore[method-assign]

    def close(self) -> None:
        self._llm.eval, self._llm.generate = self._real  # type: ignore[method-assign]


@pytest.fixture
def watched(cached: LlamaCppBackend) -> Iterator[tuple[LlamaCppBackend, Evaluations]]:
    cached.chat(ChatRequest((Message("user", "Clear."),), Params(max_tokens=1)))  # no scope
    evaluations = Evaluations(cached)
    yield cached, evaluations
    evaluations.close()


def test_another_scope_starts_from_an_empty_context(
    watched: tuple[LlamaCppBackend, Evaluations],
) -> None:
    backend, evaluations = watched
    prompt = backend.count_prompt_tokens(ChatRequest(SECOND))
    backend.chat(ChatRequest(FIRST, PARAMS, cache_scope="alice"))
    backend.chat(ChatRequest(SECOND, PARAMS, cache_scope="bob"))
    assert evaluations.starts[1] == (0, prompt)  # nothing of alice's kept: all of it evaluated


def test_the_same_scope_reuses_its_prefix(watched: tuple[LlamaCppBackend, Evaluations]) -> None:
    backend, evaluations = watched
    prompt = backend.count_prompt_tokens(ChatRequest(SECOND))
    assert prompt is not None
    backend.chat(ChatRequest(FIRST, PARAMS, cache_scope="alice"))
    backend.chat(ChatRequest(SECOND, PARAMS, cache_scope="alice"))
    held, evaluated = evaluations.starts[1]
    assert held > 80 and held + evaluated == prompt  # the shared document is not evaluated again


def test_no_scope_never_reuses(watched: tuple[LlamaCppBackend, Evaluations]) -> None:
    backend, evaluations = watched
    backend.chat(ChatRequest(FIRST, PARAMS))
    backend.chat(ChatRequest(SECOND, PARAMS))
    backend.chat(ChatRequest(SECOND, PARAMS, cache_scope="alice"))  # after a request without one
    assert [held for held, _ in evaluations.starts] == [0, 0, 0]


def test_answers_are_the_same_after_another_scope_or_alone(cached: LlamaCppBackend) -> None:
    fresh = LlamaCppBackend(bundled_gguf(), n_threads=1, n_ctx=1024)
    try:
        alone = fresh.chat(ChatRequest(SECOND, Params(max_tokens=12)))
    finally:
        fresh.close()
    cached.chat(ChatRequest(FIRST, PARAMS, cache_scope="alice"))
    after = cached.chat(ChatRequest(SECOND, Params(max_tokens=12), cache_scope="bob"))
    assert after.text == alone.text and after.token_ids == alone.token_ids
