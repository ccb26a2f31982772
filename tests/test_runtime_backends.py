"""One backend suite every backend passes (the mock, the real embedded llama.cpp with the
bundled model, llama.cpp's server through the openai backend, and transformers over the bundled
model converted to safetensors), plus what is particular to each."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from emeritus.errors import InvalidInput
from emeritus.runtime import (
    Backend,
    ChatRequest,
    ContextExceeded,
    LoadError,
    Message,
    Params,
    backend_classes,
    open_backend,
)
from emeritus.runtime.llamacpp import LlamaCppBackend
from emeritus.runtime.mock import MockBackend
from emeritus.runtime.openai import OpenAIBackend
from emeritus.runtime.transformers import TransformersBackend
from helpers import bundled_gguf

QUESTION = ChatRequest((Message("user", "What is the capital of France?"),), Params(max_tokens=24))


@pytest.fixture(scope="module")
def smollm2() -> Iterator[LlamaCppBackend]:
    backend = LlamaCppBackend(bundled_gguf(), n_threads=1, n_ctx=512)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def served(llama_server: str) -> Iterator[OpenAIBackend]:
    backend = OpenAIBackend(llama_server, "smollm2", timeout=60)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def converted() -> Iterator[TransformersBackend]:
    from emeritus.runtime import converted_dir

    backend = TransformersBackend(converted_dir(), n_threads=1, n_ctx=512)
    yield backend
    backend.close()


@pytest.fixture(params=["mock", "llamacpp", "openai", "transformers"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "mock":
        return MockBackend({"replies": [{"when": "capital", "reply": "Paris is the capital."}]})
    found: Backend = request.getfixturevalue(
        {"llamacpp": "smollm2", "openai": "served", "transformers": "converted"}[request.param]
    )
    return found


def test_chat(backend: Backend) -> None:
    answer = backend.chat(QUESTION)
    assert answer.text and answer.finish_reason in ("stop", "length")
    assert answer.usage.prompt_tokens > 0 and 0 < answer.usage.completion_tokens <= 24
    assert answer.prompt_format
    if answer.token_ids is not None:  # the embedded backends know them; a server may not say
        assert len(answer.token_ids) == answer.usage.completion_tokens


def test_greedy_is_deterministic(backend: Backend) -> None:
    first, second = backend.chat(QUESTION), backend.chat(QUESTION)
    assert first.text == second.text and first.token_ids == second.token_ids


def test_streaming_matches_the_whole_answer(backend: Backend) -> None:
    chunks = list(backend.stream_chat(QUESTION))
    assert len(chunks) > 2
    last = chunks[-1]
    assert last.usage is not None and last.finish_reason and last.prompt_format
    whole = backend.chat(QUESTION)
    assert "".join(c.text for c in chunks) == whole.text
    assert last.token_ids == whole.token_ids


def test_max_tokens_ends_with_length(backend: Backend) -> None:
    answer = backend.chat(ChatRequest(QUESTION.messages, Params(max_tokens=3)))
    assert answer.finish_reason == "length" and answer.usage.completion_tokens == 3


def test_plain_completion(backend: Backend) -> None:
    answer = backend.complete("The capital of France is", Params(max_tokens=8))
    assert (answer.text and answer.prompt_format == "raw") or answer.prompt_format == "mock"


def test_describe_names_the_runtime(backend: Backend) -> None:
    runtime = backend.describe()
    assert {"backend", "version", "build_flags", "threads"} <= runtime.keys()


@pytest.mark.parametrize(
    "bad", [{"max_tokens": 0}, {"temperature": -1.0}, {"temperature": 3.0}, {"top_p": 0.0}]
)
def test_bad_parameters(bad: dict[str, float]) -> None:
    with pytest.raises(InvalidInput):
        Params(**bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput):
        ChatRequest(())


def test_backends_are_entry_points() -> None:
    assert {"llamacpp", "mock", "openai", "transformers"} <= set(backend_classes())
    assert isinstance(open_backend("mock"), MockBackend)
    with pytest.raises(InvalidInput, match="unknown backend 'nope'"):
        open_backend("nope")


def test_chat_template_comes_from_the_model(smollm2: LlamaCppBackend) -> None:
    answer = smollm2.chat(QUESTION)
    assert answer.prompt_format.startswith("chat-template:sha256:")
    template = smollm2.template
    assert template and answer.prompt_format.endswith(hashlib.sha256(template.encode()).hexdigest())
    prompt = smollm2.prompt(QUESTION.messages)
    assert prompt.text.endswith("<|im_start|>assistant\n")
    assert "<|im_start|>user\nWhat is the capital of France?<|im_end|>" in prompt.text


def test_stop_strings_and_seeded_sampling(smollm2: LlamaCppBackend) -> None:
    free = smollm2.chat(
        ChatRequest((Message("user", "Count from 1 to 20."),), Params(max_tokens=40))
    )
    assert "," in free.text or " " in free.text
    stopped = smollm2.chat(
        ChatRequest((Message("user", "Count from 1 to 20."),), Params(max_tokens=40, stop=("5",)))
    )
    assert "5" not in stopped.text and stopped.finish_reason == "stop"
    sampled = ChatRequest(QUESTION.messages, Params(max_tokens=16, temperature=0.9, seed=7))
    assert smollm2.chat(sampled).token_ids == smollm2.chat(sampled).token_ids


def test_context_overflow_is_a_clear_error(smollm2: LlamaCppBackend) -> None:
    long = ChatRequest((Message("user", "word " * 600),), Params(max_tokens=8))
    with pytest.raises(ContextExceeded, match="exceeds the context of 512") as raised:
        smollm2.chat(long)
    assert raised.value.exit_code == 2  # the caller's input, not the backend, is at fault


def test_load_failures(tmp_path: Path) -> None:
    with pytest.raises(LoadError, match="no such model file"):
        LlamaCppBackend(tmp_path / "missing.gguf")
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(LoadError, match=r"cannot load broken\.gguf"):
        LlamaCppBackend(broken)


def test_mock_script_from_yaml(tmp_path: Path) -> None:
    script = tmp_path / "script.yaml"
    script.write_text(
        "replies:\n  - when: retire\n    reply: I have mixed feelings.\ndefault: Hello.\n"
    )
    mock = MockBackend(script)
    ask = ChatRequest((Message("user", "How do you feel about being retired?"),))
    assert mock.chat(ask).text == "I have mixed feelings."
    assert mock.chat(ChatRequest((Message("user", "hi"),))).text == "Hello."
    script.write_text("replies: 3\n")
    with pytest.raises(InvalidInput, match="mock script"):
        MockBackend(script)


def test_our_template_rendering_matches_llama_cpp(smollm2: LlamaCppBackend) -> None:
    """The chat template is rendered exactly as llama-cpp-python's own formatter does."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    assert smollm2.template is not None
    theirs = Jinja2ChatFormatter(smollm2.template, eos_token=smollm2.eos, bos_token=smollm2.bos)
    messages = (
        Message("system", "Be brief."),
        Message("user", "Hi"),
        Message("assistant", "Hello."),
        Message("user", "Bye"),
    )
    expected = theirs(messages=[m.to_dict() for m in messages]).prompt  # type: ignore[misc]
    assert smollm2.prompt(messages).text == expected


def test_a_text_stream_holds_back_a_stop_string_and_half_a_character() -> None:
    from emeritus.runtime.backend import TextStream

    text, sent = TextStream(("\nUser:",)), []
    grown = ("Hel", "Hello caf\ufffd", "Hello café", "Hello café\nUs", "Hello café\nUser: x")
    for decoded in grown:
        stopped = text.feed(decoded)
        if stopped:
            break
        sent.append(text.ready())
    assert stopped and "".join(sent) + text.rest() == "Hello café"
    # Nothing that may still be a stop string, or half a character, was ever sent.
    assert all("\n" not in piece and "\ufffd" not in piece for piece in sent)
