"""Structured output: a JSON schema constrains the answer, on the embedded model by a grammar and
on a server through `response_format` (OpenAI's form first, llama.cpp's form when refused)."""

from __future__ import annotations

import json

import httpx
import pytest

from emeritus.runtime import ChatRequest, Message, Params
from emeritus.runtime.llamacpp import LlamaCppBackend
from emeritus.runtime.openai import OpenAIBackend
from helpers import bundled_gguf

SCHEMA = {
    "type": "object",
    "properties": {
        "quote": {"type": "string", "maxLength": 80},
        "stance": {"enum": ["agree", "neutral", "disagree"]},
        "sure": {"type": "boolean"},
    },
    "required": ["quote", "stance", "sure"],
}
REQUEST = ChatRequest(
    (
        Message("system", "Reply with JSON."),
        Message("user", "Do you agree that the sky is green? Quote the question."),
    ),
    Params(max_tokens=96, json_schema=SCHEMA),
)


def _valid(text: str) -> dict[str, object]:
    data = json.loads(text)
    assert list(data) == ["quote", "stance", "sure"]  # the schema's order is the writing order
    assert data["stance"] in ("agree", "neutral", "disagree")
    assert isinstance(data["sure"], bool) and isinstance(data["quote"], str)
    assert len(data["quote"]) <= 80
    return data


def test_embedded_model_answers_in_the_schema() -> None:
    backend = LlamaCppBackend(bundled_gguf(), n_threads=1)
    try:
        first = backend.chat(REQUEST).text
        _valid(first)
        assert backend.chat(REQUEST).text == first  # greedy and grammar-bound: reproducible
        free = backend.chat(ChatRequest(REQUEST.messages, Params(max_tokens=24))).text
        with pytest.raises(ValueError):
            json.loads(free)  # without the schema the same model writes prose
    finally:
        backend.close()


def test_server_answers_in_the_schema(llama_server: str) -> None:
    backend = OpenAIBackend(llama_server, "smollm2")
    try:
        _valid(backend.chat(REQUEST).text)
        # llama.cpp's server refuses OpenAI's json_schema form; the backend learnt the other.
        assert backend.structured == "json_object"
        refused = httpx.post(
            f"{llama_server}/chat/completions",
            json={
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 4,
                "response_format": {"type": "json_schema", "json_schema": {"schema": SCHEMA}},
            },
            timeout=60,
        )
        assert refused.status_code in (400, 422, 500)
        assert "response_format" in refused.text
    finally:
        backend.close()
