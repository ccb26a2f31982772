"""The `transformers` backend: a safetensors checkpoint run by Hugging Face transformers on torch
(the CPU here, CUDA where there is one), read in place from the archive. Contract:
docs/design/runtime.md, "Backends"."""

from __future__ import annotations

import functools
import inspect
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emeritus.runtime.backend import (
    Backend,
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
from emeritus.runtime.llamacpp import default_threads
from emeritus.runtime.prompts import Prompt, neutralize, render

if TYPE_CHECKING:
    from emeritus.runtime.deployment import Deployment
    from emeritus.runtime.preserved import PreservedModel

DEFAULT_CTX = 4096


class TransformersBackend(Backend):
    name = "transformers"

    @classmethod
    def from_preserved(
        cls, preserved: PreservedModel, deployment: Deployment, **options: Any
    ) -> TransformersBackend:
        """The preserved Hugging Face directory (config, safetensors shards, tokenizer files),
        linked file by file from the archive's content files into a folder of links: nothing
        is copied, and the archive's bytes are what torch maps."""
        if not preserved.weights_of("safetensors"):
            raise LoadError(f"transformers: {preserved.name} has no safetensors weights")
        folder = Path(tempfile.mkdtemp(prefix="emeritus-hf-"))
        try:
            preserved.link_into(folder)
            backend = cls(folder, chat_template=preserved.chat_template(), **options)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        backend._links = folder
        return backend

    def __init__(
        self,
        model_dir: str | Path,
        *,
        n_ctx: int = DEFAULT_CTX,
        n_threads: int | None = None,
        device: str | None = None,
        dtype: str | None = None,
        chat_template: str | None = None,
        **_: Any,
    ) -> None:
        # One tokenizer thread: the cores are the model's (and tokenizers warns after a fork).
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        # Offline by construction: the hub is never asked, even for a config file.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:  # heavy: loaded only when a model is
            import torch
            import transformers
        except ImportError as exc:
            raise LoadError(f"transformers: not installed here ({exc})") from None
        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        self._torch = torch
        self._links: Path | None = None
        self.path = Path(model_dir)
        self.n_ctx = n_ctx
        self.n_threads = n_threads or default_threads()
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        if self.device == "cpu":
            torch.set_num_threads(self.n_threads)
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.path)
            config = transformers.AutoConfig.from_pretrained(self.path)
            chosen = dtype or str(getattr(config, "dtype", None) or "float32")
            self.dtype = getattr(torch, chosen.removeprefix("torch."))
            self.model = transformers.AutoModelForCausalLM.from_pretrained(
                self.path, dtype=self.dtype
            ).to(self.device)
        except (OSError, ValueError, KeyError, AttributeError, RuntimeError) as exc:
            raise LoadError(f"transformers: cannot load {self.path.name}: {exc}") from None
        self.model.eval()
        # transformers 5.x names the key-value cache `cache`; 4.x named it `past_key_values`.
        forward = inspect.signature(self.model.forward).parameters
        self._cache = "cache" if "cache" in forward else "past_key_values"
        self._versions = f"transformers {transformers.__version__}, torch {torch.__version__}"
        # The preserved tokenizer config's template first (chat_template.jinja or the config's
        # field, as the tokenizer read them); else one the caller found beside it.
        own = self.tokenizer.chat_template
        self.template = own if isinstance(own, str) and own else chat_template
        self.bos = self.tokenizer.bos_token or ""
        self.eos = self.tokenizer.eos_token or ""
        generation = getattr(self.model, "generation_config", None)
        ends = getattr(generation, "eos_token_id", None) or self.tokenizer.eos_token_id
        self.eos_ids = frozenset(ends if isinstance(ends, list) else [ends]) - {None}
        self._lock = threading.Lock()

    @functools.cached_property
    def _specials(self) -> tuple[str, ...]:
        return tuple(str(t) for t in self.tokenizer.all_special_tokens)

    def special_tokens(self) -> tuple[str, ...]:
        return self._specials

    def prompt(self, messages: tuple[Message, ...]) -> Prompt:
        return render(
            messages,
            self.template,
            bos_token=self.bos,
            eos_token=self.eos,
            specials=self.special_tokens(),
        )

    def tokenize_prompt(self, prompt: Prompt) -> list[int]:
        """The template's text parsed for special tokens, the messages' contents with any
        special-token string broken (they are the user's words, never control tokens)."""
        text = "".join(
            neutralize(p.text, self.special_tokens()) if p.content else p.text
            for p in prompt.pieces()
        )
        ids: list[int] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids

    # -- the token loop -----------------------------------------------------------------------

    def _next_token(self, logits: Any, params: Params, generator: Any) -> int:
        torch = self._torch
        if params.temperature == 0.0:
            return int(torch.argmax(logits))
        probs = torch.softmax(logits / params.temperature, dim=-1)
        if params.top_p < 1.0:
            ordered, index = torch.sort(probs, descending=True)
            keep = torch.cumsum(ordered, dim=-1) - ordered < params.top_p
            probs = torch.zeros_like(probs).scatter(0, index[keep], ordered[keep])
        return int(torch.multinomial(probs, 1, generator=generator))

    def _generate(
        self, tokens: list[int], fmt: str, params: Params, stop: tuple[str, ...], penalty: float
    ) -> Iterator[Chunk]:
        torch = self._torch
        check_fits("transformers", len(tokens), params.max_tokens, self.n_ctx)
        with self._lock, torch.inference_mode():
            generator = torch.Generator(device=self.device).manual_seed(params.seed)
            step = torch.tensor([tokens], device=self.device)
            past: Any = None
            produced: list[int] = []
            text = TextStream(stop)
            finish = "length"
            while len(produced) < params.max_tokens:
                out = self.model(input_ids=step, use_cache=True, **{self._cache: past})
                past = getattr(out, self._cache)
                logits = out.logits[0, -1].float()
                if penalty != 1.0:  # as llama.cpp: shrink the scores of tokens already seen
                    seen = torch.tensor(sorted({*tokens, *produced}), device=self.device)
                    scores = logits[seen]
                    logits[seen] = torch.where(scores > 0, scores / penalty, scores * penalty)
                token = self._next_token(logits, params, generator)
                if token in self.eos_ids:
                    finish = "stop"
                    break
                produced.append(token)
                if text.feed(str(self.tokenizer.decode(produced, skip_special_tokens=False))):
                    finish = "stop"
                    break
                step = torch.tensor([[token]], device=self.device)
                if piece := text.ready():
                    yield Chunk(piece)
            if piece := text.rest():
                yield Chunk(piece)
            yield Chunk("", TokenUsage(len(tokens), len(produced)), finish, fmt, tuple(produced))

    # -- the interface ------------------------------------------------------------------------

    def stream_chat(self, request: ChatRequest) -> Iterator[Chunk]:
        prompt = self.prompt(request.messages)
        stop, penalty = stops_and_penalty(prompt.stop, prompt.repeat_penalty, request.params)
        return self._generate(
            self.tokenize_prompt(prompt), prompt.format, request.params, stop, penalty
        )

    def chat(self, request: ChatRequest) -> Completion:
        return collect(self.stream_chat(request))

    def context_length(self) -> int:
        return self.n_ctx

    def count_prompt_tokens(self, request: ChatRequest) -> int | None:
        return len(self.tokenize_prompt(self.prompt(request.messages)))

    def complete(self, prompt: str, params: Params) -> Completion:
        tokens: list[int] = self.tokenizer(prompt, add_special_tokens=True)["input_ids"]
        return collect(self._generate(tokens, "raw", params, params.stop, params.repeat_penalty))

    def describe(self) -> dict[str, Any]:
        return {
            "backend": self.name,
            "version": self._versions,
            "build_flags": f"device={self.device} dtype={str(self.dtype).removeprefix('torch.')}",
            "threads": self.n_threads if self.device == "cpu" else 0,
            "n_ctx": self.n_ctx,
        }

    def close(self) -> None:
        self.model = None
        if self._links is not None:
            shutil.rmtree(self._links, ignore_errors=True)
            self._links = None
