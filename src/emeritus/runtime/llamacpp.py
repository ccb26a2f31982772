"""The embedded backend: llama-cpp-python in this process, the GGUF memory-mapped straight from
where it lies (the archive's content file: no copy).

One generation at a time per loaded model (a lock), and our own token loop, so that every call
can report the exact token ids a fingerprint needs.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from emeritus.runtime.backend import (
    Backend,
    BackendError,
    ChatRequest,
    Chunk,
    Completion,
    LoadError,
    Message,
    Params,
    Usage,
)
from emeritus.runtime.prompts import Prompt, render
from emeritus.store import canonical_json

DEFAULT_CTX = 2048
_quiet = threading.Lock()
_log_callback: list[Any] = []  # the ctypes callback must stay referenced while llama.cpp holds it


def _ignore(_level: int, _text: bytes, _user: Any) -> None:
    return None


def _silence_llama_logs(llama_cpp: Any) -> None:
    """llama.cpp logs to stderr even with verbose=False; route its log callback to nowhere."""
    import ctypes

    with _quiet:
        if not _log_callback:
            _log_callback.append(llama_cpp.llama_log_callback(_ignore))
            llama_cpp.llama_log_set(_log_callback[0], ctypes.c_void_p(0))


def default_threads() -> int:
    """EMERITUS_THREADS, else the cores: two processes with two threads each on two cores
    collapse, so tests running in parallel set 1."""
    configured = os.environ.get("EMERITUS_THREADS")
    return int(configured) if configured else max(1, os.cpu_count() or 1)


class LlamaCppBackend(Backend):
    name = "llamacpp"

    def __init__(
        self,
        model_path: str | Path,
        *,
        n_ctx: int = DEFAULT_CTX,
        n_threads: int | None = None,
        chat_template: str | None = None,
        reuse_prefix: bool = False,
        **_: Any,
    ) -> None:
        import llama_cpp  # heavy: loaded only when a model is

        _silence_llama_logs(llama_cpp)

        self.path = Path(model_path)
        self.n_ctx = n_ctx
        self.n_threads = n_threads or default_threads()
        if not self.path.is_file():
            raise LoadError(f"llamacpp: {self.path}: no such model file")
        try:
            self.llm = llama_cpp.Llama(
                model_path=str(self.path),
                n_ctx=n_ctx,
                n_threads=self.n_threads,
                n_threads_batch=self.n_threads,
                use_mmap=True,
                verbose=False,
                seed=0,
            )
        except (ValueError, RuntimeError, OSError) as exc:
            raise LoadError(f"llamacpp: cannot load {self.path.name}: {exc}") from None
        self._lib = llama_cpp
        metadata = self.llm.metadata
        # The model's own template first; else one from its tokenizer_config.json, if given.
        self.template = metadata.get("tokenizer.chat_template") or chat_template or None
        self.bos = self._token_text(self.llm.token_bos())
        self.eos = self._token_text(self.llm.token_eos())
        self.add_bos = metadata.get("tokenizer.ggml.add_bos_token", "true") != "false"
        self.reuse_prefix = reuse_prefix
        self._lock = threading.Lock()
        self._grammars: dict[str, Any] = {}

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self.llm.detokenize([token], special=True).decode("utf-8", errors="replace")

    def prompt(self, messages: tuple[Message, ...]) -> Prompt:
        return render(messages, self.template, bos_token=self.bos, eos_token=self.eos)

    # -- the token loop -----------------------------------------------------------------------

    def _generate(
        self, text: str, fmt: str, params: Params, stop: tuple[str, ...], repeat_penalty: float
    ) -> Iterator[Chunk]:
        with self._lock:
            add_bos = self.add_bos and not (self.bos and text.startswith(self.bos))
            tokens = self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)
            if len(tokens) + params.max_tokens > self.n_ctx:
                raise BackendError(
                    f"llamacpp: prompt of {len(tokens)} tokens plus "
                    f"{params.max_tokens} to generate exceeds the context of "
                    f"{self.n_ctx}"
                )
            # By default every call evaluates from an empty context, so the same request gives
            # the same tokens (reusing a cached prefix changed Gemma-3's answers). A long
            # conversation (an interview) may opt in to reuse, trading that for speed.
            if not self.reuse_prefix:
                self.llm.reset()  # type: ignore[no-untyped-call]
            self.llm.set_seed(params.seed)
            greedy = params.temperature == 0.0
            produced: list[int] = []
            decoded = emitted = ""
            finish = "length"
            hold = max((len(s) for s in stop), default=0)  # a stop string may be arriving
            for token in self.llm.generate(
                tokens,
                top_k=1 if greedy else 40,
                top_p=params.top_p,
                min_p=0.0 if greedy else 0.05,
                temp=params.temperature,
                repeat_penalty=repeat_penalty,
                reset=True,
                grammar=self._grammar(params.json_schema),
            ):
                if self._lib.llama_vocab_is_eog(self.llm._model.vocab, token):
                    finish = "stop"
                    break
                produced.append(token)
                decoded = self.llm.detokenize(produced).decode("utf-8", errors="replace")
                cut = min((decoded.find(s) for s in stop if s in decoded), default=-1)
                if cut >= 0:
                    decoded, finish = decoded[:cut], "stop"
                    break
                if len(produced) >= params.max_tokens:
                    break
                ready = decoded[: len(decoded) - hold]
                if ready.endswith("\ufffd"):  # half a UTF-8 character: wait for the rest
                    continue
                if len(ready) > len(emitted) and ready.startswith(emitted):
                    yield Chunk(ready[len(emitted) :])
                    emitted = ready
            if len(decoded) > len(emitted) and decoded.startswith(emitted):
                yield Chunk(decoded[len(emitted) :])
            yield Chunk("", Usage(len(tokens), len(produced)), finish, fmt, tuple(produced))

    def _grammar(self, schema: Mapping[str, Any] | None) -> Any:
        if schema is None:
            return None
        from llama_cpp.llama_grammar import LlamaGrammar

        key = canonical_json(schema)
        if key not in self._grammars:  # compiling a grammar takes longer than using one
            try:
                # The schema's own property order is the order the model writes them in.
                self._grammars[key] = LlamaGrammar.from_json_schema(
                    json.dumps(schema), verbose=False
                )
            except (ValueError, RuntimeError) as exc:
                raise BackendError(f"llamacpp: cannot use this JSON schema: {exc}") from None
        return self._grammars[key]

    def _collect(self, chunks: Iterator[Chunk]) -> Completion:
        text, last = [], Chunk("")
        for chunk in chunks:
            text.append(chunk.text)
            last = chunk
        assert last.usage is not None and last.finish_reason and last.prompt_format
        joined = "".join(text)
        if last.prompt_format == "transcript":  # "Model: answer" leaves a leading space
            joined = joined.strip()
        return Completion(
            joined, last.usage, last.finish_reason, last.prompt_format, last.token_ids
        )

    # -- the interface ------------------------------------------------------------------------

    def stream_chat(self, request: ChatRequest) -> Iterator[Chunk]:
        prompt = self.prompt(request.messages)
        penalty = request.params.repeat_penalty
        if prompt.repeat_penalty is not None and penalty == 1.0:
            penalty = prompt.repeat_penalty
        stop = tuple(dict.fromkeys((*prompt.stop, *request.params.stop)))
        return self._generate(prompt.text, prompt.format, request.params, stop, penalty)

    def chat(self, request: ChatRequest) -> Completion:
        return self._collect(self.stream_chat(request))

    def complete(self, prompt: str, params: Params) -> Completion:
        return self._collect(
            self._generate(prompt, "raw", params, params.stop, params.repeat_penalty)
        )

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "version": self._lib.__version__,
            "build_flags": self._lib.llama_print_system_info().decode("utf-8").strip(),
            "threads": self.n_threads,
            "n_ctx": self.n_ctx,
            "reuse_prefix": self.reuse_prefix,
        }

    def close(self) -> None:
        self.llm.close()
