"""The embedded backend: llama-cpp-python in this process, the GGUF memory-mapped straight from
where it lies (the archive's content file: no copy).

One generation at a time per loaded model (a lock), and our own token loop, so that every call
can report the exact token ids a fingerprint needs.

A chat prompt is tokenized as llama.cpp would tokenize its whole text with special tokens parsed,
except that they are parsed in the template's text only: a message's content is always plain text
(docs/design/runtime.md, "Special tokens and the prefix cache").
"""

from __future__ import annotations

import functools
import json
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emeritus.runtime.backend import (
    Backend,
    BackendError,
    ChatRequest,
    Chunk,
    Completion,
    LoadError,
    Message,
    Params,
    TextStream,
    TokenUsage,
    check_fits,
    collect,
    stops_and_penalty,
)
from emeritus.runtime.prompts import Prompt, render
from emeritus.store import canonical_json

if TYPE_CHECKING:
    from emeritus.runtime.deployment import Deployment
    from emeritus.runtime.preserved import PreservedModel

DEFAULT_CTX = 2048
_SPACE = " \t\n\v\f\r"  # C's isspace: the whitespace a token's lstrip/rstrip attribute eats
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


@dataclass(frozen=True)
class _Special:
    """A token llama.cpp finds in text before anything else is tokenized (its special-token
    cache: control, user-defined and unknown tokens)."""

    text: str
    id: int
    control: bool  # control or unknown: parsed only where special tokens are
    lstrip: bool  # eats the whitespace before it
    rstrip: bool  # eats the whitespace after it


def _vocabulary_specials(llama_cpp: Any, vocab: Any) -> tuple[_Special, ...]:
    """The vocabulary's special tokens, longest first, as llama.cpp partitions text with them."""
    wanted = (
        llama_cpp.LLAMA_TOKEN_ATTR_CONTROL
        | llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED
        | llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN
    )
    control = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN
    found = []
    for token in range(llama_cpp.llama_vocab_n_tokens(vocab)):
        attr = llama_cpp.llama_vocab_get_attr(vocab, token)
        if not attr & wanted:
            continue
        try:
            text = llama_cpp.llama_vocab_get_text(vocab, token).decode("utf-8")
        except UnicodeDecodeError:
            continue  # no valid UTF-8 text can contain it
        if text:
            found.append(
                _Special(
                    text,
                    token,
                    bool(attr & control),
                    bool(attr & llama_cpp.LLAMA_TOKEN_ATTR_LSTRIP),
                    bool(attr & llama_cpp.LLAMA_TOKEN_ATTR_RSTRIP),
                )
            )
    found.sort(key=lambda special: len(special.text.encode("utf-8")), reverse=True)
    return tuple(found)


def special_tokens_of(path: str | Path) -> tuple[str, ...]:
    """The control-token strings of a GGUF file's vocabulary (its vocabulary only is loaded),
    for an engine that serves the file and parses them in what it is sent."""
    import llama_cpp

    _silence_llama_logs(llama_cpp)
    try:
        llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    except (ValueError, RuntimeError, OSError) as exc:
        raise LoadError(
            f"llamacpp: cannot read the vocabulary of {Path(path).name}: {exc}"
        ) from None
    try:
        specials = _vocabulary_specials(llama_cpp, llm._model.vocab)
    finally:
        llm.close()
    return tuple(s.text for s in specials if s.control)


def _partition(text: str, specials: tuple[_Special, ...]) -> list[str | _Special]:
    """`text` split at the specials' occurrences as llama.cpp's `tokenizer_st_partition` does:
    each special, longest first, splits every piece of text not yet split off."""
    pieces: list[str | _Special] = [text]
    for special in specials:
        if special.text not in text:
            continue
        split: list[str | _Special] = []
        for piece in pieces:
            if not isinstance(piece, str) or special.text not in piece:
                split.append(piece)
                continue
            at = 0
            while (hit := piece.find(special.text, at)) >= 0:
                if hit > at:
                    split.append(piece[at:hit])
                split.append(special)
                at = hit + len(special.text)
            if at < len(piece):
                split.append(piece[at:])
        pieces = split
    return pieces


class LlamaCppBackend(Backend):
    name = "llamacpp"

    @classmethod
    def from_preserved(
        cls, preserved: PreservedModel, deployment: Deployment, **options: Any
    ) -> LlamaCppBackend:
        """The GGUF memory-mapped from the archive's content file; the chat template from a
        preserved tokenizer_config.json where the GGUF carries none."""
        ggufs = preserved.weights_of("gguf")
        if not ggufs:
            raise LoadError(
                f"llamacpp: {preserved.name} has no GGUF weights (deploy it elsewhere: "
                f"emeritus deploy {preserved.name} --backend NAME)"
            )
        path = preserved.content_file(ggufs[0]["path"])
        return cls(path, chat_template=preserved.chat_template(), **options)

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
        self._scope: str | None = None  # whose prompt the context holds, when reused
        self._lock = threading.Lock()
        self._grammars: dict[str, Any] = {}

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self.llm.detokenize([token], special=True).decode("utf-8", errors="replace")

    @functools.cached_property
    def _controls(self) -> tuple[_Special, ...]:
        """The control (and unknown) tokens: the ones parsed only where special tokens are.
        User-defined tokens (Gemma's runs of newlines, say) are split off in any text, content
        too, by llama.cpp itself: left to it, they match across the parts as in a whole text."""
        specials = _vocabulary_specials(self._lib, self.llm._model.vocab)
        return tuple(s for s in specials if s.control)

    def special_tokens(self) -> tuple[str, ...]:
        """The model's control-token strings (what a message's content must not become)."""
        return tuple(s.text for s in self._controls)

    def prompt(self, messages: tuple[Message, ...]) -> Prompt:
        return render(
            messages,
            self.template,
            bos_token=self.bos,
            eos_token=self.eos,
            specials=self.special_tokens(),
        )

    def tokenize_prompt(self, prompt: Prompt) -> list[int]:
        """The tokens of `prompt`: llama.cpp's own tokenization of its text with special tokens
        parsed, but in the template's parts only. The text between two special tokens of the
        template is tokenized as one piece, wherever the parts meet within it, so that a prompt
        whose contents hold no special-token string gets exactly the tokens of the whole text."""
        stream: list[str | _Special] = []
        for part in prompt.pieces():
            stream.extend([part.text] if part.content else _partition(part.text, self._controls))
        fragments: list[str | int] = []
        raw: list[str] = []
        eat_space = False  # after a token that eats the whitespace following it
        for piece in stream:
            if isinstance(piece, str):
                kept = piece.lstrip(_SPACE) if eat_space else piece
                if kept:
                    raw.append(kept)
                    eat_space = False
                continue
            text = "".join(raw)
            raw = []
            if piece.lstrip:
                text = text.rstrip(_SPACE)
            if text:
                fragments.append(text)
            fragments.append(piece.id)
            eat_space = piece.rstrip
        if raw:
            fragments.append("".join(raw))
        tokens: list[int] = []
        for fragment in fragments:
            if isinstance(fragment, int):
                tokens.append(fragment)
            else:
                tokens.extend(
                    self.llm.tokenize(fragment.encode("utf-8"), add_bos=False, special=False)
                )
        # As llama.cpp adds them to a whole text, unless the template wrote the BOS itself.
        bos = self.llm.token_bos()
        if self.add_bos and not (fragments and fragments[0] == bos):
            vocab = self.llm._model.vocab
            if self._lib.llama_vocab_get_add_bos(vocab):
                tokens.insert(0, bos)
            if self._lib.llama_vocab_get_add_eos(vocab):
                tokens.append(self.llm.token_eos())
        return tokens

    def _text_tokens(self, text: str) -> list[int]:
        """A raw prompt (`complete`): text emeritus's caller wrote whole, special tokens and all."""
        add_bos = self.add_bos and not (self.bos and text.startswith(self.bos))
        return self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    # -- the token loop -----------------------------------------------------------------------

    def _generate(
        self,
        tokens: list[int],
        fmt: str,
        params: Params,
        stop: tuple[str, ...],
        repeat_penalty: float,
        scope: str | None = None,
    ) -> Iterator[Chunk]:
        with self._lock:
            check_fits("llamacpp", len(tokens), params.max_tokens, self.n_ctx)
            # By default every call evaluates from an empty context, so the same request gives
            # the same tokens (reusing a cached prefix changed Gemma-3's answers). A long
            # conversation (an interview) may opt in to reuse, trading that for speed; a prefix
            # is reused only by the scope (the principal) whose request evaluated it, so that
            # how fast an answer starts tells no one what another asked.
            if not (self.reuse_prefix and scope is not None and scope == self._scope):
                self.llm.reset()  # type: ignore[no-untyped-call]
            self._scope = scope
            self.llm.set_seed(params.seed)
            greedy = params.temperature == 0.0
            produced: list[int] = []
            text = TextStream(stop)
            finish = "length"
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
                if text.feed(self.llm.detokenize(produced).decode("utf-8", errors="replace")):
                    finish = "stop"
                    break
                if len(produced) >= params.max_tokens:
                    break
                if piece := text.ready():
                    yield Chunk(piece)
            if piece := text.rest():
                yield Chunk(piece)
            yield Chunk("", TokenUsage(len(tokens), len(produced)), finish, fmt, tuple(produced))

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

    # -- the interface ------------------------------------------------------------------------

    def stream_chat(self, request: ChatRequest) -> Iterator[Chunk]:
        prompt = self.prompt(request.messages)
        stop, penalty = stops_and_penalty(prompt.stop, prompt.repeat_penalty, request.params)
        tokens = self.tokenize_prompt(prompt)
        return self._generate(
            tokens, prompt.format, request.params, stop, penalty, request.cache_scope
        )

    def chat(self, request: ChatRequest) -> Completion:
        return collect(self.stream_chat(request))

    def context_length(self) -> int:
        return self.n_ctx

    def count_prompt_tokens(self, request: ChatRequest) -> int | None:
        return len(self.tokenize_prompt(self.prompt(request.messages)))

    def complete(self, prompt: str, params: Params) -> Completion:
        tokens = self._text_tokens(prompt)
        return collect(self._generate(tokens, "raw", params, params.stop, params.repeat_penalty))

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
