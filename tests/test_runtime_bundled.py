"""The bundled models as shipped: Gemma-3-270m is assembled from its part packages (checksum
verified) and, having no chat template, is prompted as a transcript."""

from __future__ import annotations

from pathlib import Path

from emeritus.formats import inspect_weights
from emeritus.lifecycle import Registry
from emeritus.runtime import ChatRequest, Message, Params
from emeritus.runtime.bundled import BUNDLED
from emeritus.runtime.llamacpp import LlamaCppBackend
from emeritus.runtime.prompts import TRANSCRIPT, render_transcript


def test_bundled_models_are_installed(tmp_path: Path) -> None:
    names = [spec.name for spec in BUNDLED]
    assert names == ["smollm2-135m-instruct", "gemma-3-270m"]
    smollm2 = BUNDLED[0].locate(tmp_path)
    assert inspect_weights(smollm2).metadata["tokenizer.chat_template"]


def test_gemma_is_assembled_and_prompted_as_a_transcript(tmp_path: Path) -> None:
    gemma = BUNDLED[1].locate(tmp_path)
    assert gemma.parent == tmp_path and gemma.stat().st_size > 200_000_000
    metadata = inspect_weights(gemma).metadata
    assert metadata["general.architecture"] == "gemma3"
    assert not metadata["tokenizer.chat_template"]
    backend = LlamaCppBackend(gemma, n_threads=1, n_ctx=256)
    try:
        request = ChatRequest(
            (Message("system", "A conversation."), Message("user", "What is your name?")),
            Params(max_tokens=24),
        )
        answer = backend.chat(request)
        assert answer.prompt_format == TRANSCRIPT
        assert "Interviewer:" not in answer.text and answer.text == answer.text.strip()
        assert backend.chat(request).token_ids == answer.token_ids
    finally:
        backend.close()


def test_transcript_format() -> None:
    prompt = render_transcript(
        (
            Message("system", "Context."),
            Message("user", "Hello?"),
            Message("assistant", "Hi."),
            Message("user", "Bye?"),
        )
    )
    assert prompt.text == "Context.\nInterviewer: Hello?\nModel: Hi.\nInterviewer: Bye?\nModel:"
    assert prompt.stop == ("\nInterviewer:",) and prompt.repeat_penalty == 1.3


def test_a_template_from_tokenizer_config(tmp_path: Path, hermetic_home: Path) -> None:
    """A GGUF without a template runs with the one in its preserved tokenizer_config.json."""
    import json

    from emeritus.archive import Archive
    from emeritus.runtime.preserved import open_preserved
    from emeritus.store import Settings, Store

    folder = tmp_path / "model"
    folder.mkdir()
    BUNDLED[1].locate(folder)
    template = (
        "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<assistant>{% endif %}"
    )
    (folder / "tokenizer_config.json").write_text(
        json.dumps({"chat_template": [{"name": "default", "template": template}]})
    )
    with Store.open(Settings.from_env()) as store:
        archive = Archive(store)
        Registry(store).add("gemma")
        archive.preserve("gemma", [folder])
        backend, _ = open_preserved(archive, "gemma", n_ctx=256)
        try:
            answer = backend.chat(ChatRequest((Message("user", "Hi"),), Params(max_tokens=4)))
        finally:
            backend.close()
    assert answer.prompt_format.startswith("chat-template:sha256:")
