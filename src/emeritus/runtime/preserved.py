"""Running preserved models: open one, as its deployment says, over the archive's own files;
fingerprint it, and replay its fingerprints."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from emeritus.archive import Archive
from emeritus.errors import EmeritusError, InvalidInput, NotFound
from emeritus.runtime import fingerprint
from emeritus.runtime.backend import Backend, LoadError, backend_class
from emeritus.runtime.deployment import DEFAULT_BACKENDS, Deployment, recorded_deployment
from emeritus.runtime.llamacpp import special_tokens_of
from emeritus.store import utc_now

WEIGHT_FORMATS = ("gguf", "safetensors")
WEIGHTS_FOLDER = "weights/"  # where a preserved model's own files lie, by logical path


def weights_entries(archive: Archive, model: str) -> list[dict[str, Any]]:
    """The weights files recorded in the model's object.json (GGUF first, then safetensors
    shards in path order); NotFound when nothing is preserved."""
    try:
        described = json.loads(archive.read_logical(model, "emeritus/object.json"))
    except NotFound:
        raise NotFound(f"{model} is not preserved (run emeritus preserve {model} DIR)") from None
    found = [f for f in described["files"] if f.get("format") in WEIGHT_FORMATS]
    found.sort(key=lambda f: (WEIGHT_FORMATS.index(f["format"]), f["path"]))
    return found


def weights_entry(archive: Archive, model: str) -> dict[str, Any]:
    """The model's first weights file: the GGUF where there is one, else the first safetensors
    shard."""
    entries = weights_entries(archive, model)
    if not entries:
        raise EmeritusError(f"{model} has no preserved weights (GGUF or safetensors) to run")
    return entries[0]


@dataclass(frozen=True)
class PreservedModel:
    """A preserved model as a backend reads it: its files in place in the archive (the primary
    copy's content files, never copied)."""

    archive: Archive
    name: str

    @cached_property
    def weights(self) -> list[dict[str, Any]]:
        return weights_entries(self.archive, self.name)

    def weights_of(self, fmt: str) -> list[dict[str, Any]]:
        return [w for w in self.weights if w["format"] == fmt]

    def content_file(self, logical: str) -> Path:
        return self.archive.content_file(self.name, logical)

    def files(self) -> list[str]:
        return self.archive.logical_files(self.name)

    def chat_template(self) -> str | None:
        return config_chat_template(self.archive, self.name)

    def special_tokens(self) -> tuple[str, ...]:
        return special_tokens(self.archive, self.name)

    def weights_bytes(self) -> int:
        return sum(int(w.get("size", 0)) for w in self.weights)

    def link_into(self, folder: Path) -> Path:
        """`folder` made a Hugging Face directory of links, one per preserved file under
        `weights/` (config, shards, tokenizer files), to the archive's content files: for a
        reader that takes a directory. Nothing is copied."""
        for logical in self.files():
            if logical.startswith(WEIGHTS_FOLDER):
                link = folder / logical.removeprefix(WEIGHTS_FOLDER)
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(self.content_file(logical))
        return folder


def deployment_of(archive: Archive, model: str, override: Deployment | None = None) -> Deployment:
    """The deployment in force: the override, else the recorded one, else the default for the
    format of the preserved weights."""
    if override is not None:
        return override
    recorded = recorded_deployment(archive.store, model)
    if recorded is not None:
        return recorded
    entries = weights_entries(archive, model)
    if not entries:
        raise EmeritusError(
            f"{model} has no preserved weights to choose a backend by: "
            f"record one with emeritus deploy {model} --backend NAME"
        )
    return Deployment(DEFAULT_BACKENDS[entries[0]["format"]], source="default")


def open_preserved(
    archive: Archive, model: str, override: Deployment | None = None, **options: Any
) -> tuple[Backend, int]:
    """The one opener every stage uses: the backend the model's deployment names, from the
    entry-point registry, over the archive's files; and the bytes it occupies in this process
    (for the pool's budget). The stage's own options win over the deployment's."""
    deployment = deployment_of(archive, model, override)
    cls = _installed(model, deployment)
    preserved = PreservedModel(archive, model)
    backend = cls.from_preserved(preserved, deployment, **{**deployment.options, **options})
    size = backend.occupies()
    if size is None:
        size = preserved.weights_bytes() if cls.in_process else 0
    return backend, size


def _installed(model: str, deployment: Deployment) -> type[Backend]:
    """The deployment's backend class; a deployment whose backend is not installed here (a
    plugin removed, no transformers yet) is a backend that cannot load, said in one line."""
    try:
        return backend_class(deployment.backend)
    except InvalidInput as exc:
        if deployment.source == "override":
            raise
        how = "by default" if deployment.source == "default" else "as deployed"
        raise LoadError(
            f"{model} runs {how} on the {deployment.backend} backend, which is not installed "
            f"here ({str(exc).split(': ', 1)[-1]}); record another: emeritus deploy {model} "
            "--backend NAME"
        ) from None


def config_chat_template(archive: Archive, model: str) -> str | None:
    """The chat template preserved beside the weights: `chat_template.jinja`, else the one in
    `tokenizer_config.json` (a string, or a list of named templates of which `default` is
    taken); for GGUF files that carry none, and for the transformers backend."""
    files = archive.logical_files(model)
    # transformers 4.47+ saves the template beside the config, and prefers that file.
    jinja = [f for f in files if f.endswith("/chat_template.jinja")]
    if jinja:
        text = archive.read_logical(model, jinja[0]).decode("utf-8", errors="replace")
        return text or None
    configs = [f for f in files if f.endswith("tokenizer_config.json")]
    if not configs:
        return None
    try:
        template = json.loads(archive.read_logical(model, configs[0])).get("chat_template")
    except (ValueError, AttributeError):
        raise EmeritusError(f"{model}: {configs[0]} is not valid JSON") from None
    if isinstance(template, list):
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    return template if isinstance(template, str) and template else None


def special_tokens(archive: Archive, model: str) -> tuple[str, ...]:
    """The model's control-token strings, for an OpenAI-compatible server that serves it (the
    `openai` backend's `special_tokens`): the `added_tokens` marked `special` in a preserved
    `tokenizer.json` (and `added_tokens_decoder` in `tokenizer_config.json`), and the control
    tokens of its GGUF vocabulary."""
    found: dict[str, None] = {}
    for logical in archive.logical_files(model):
        name = logical.rsplit("/", 1)[-1]
        if name not in ("tokenizer.json", "tokenizer_config.json"):
            continue
        try:
            document = json.loads(archive.read_logical(model, logical))
        except ValueError:
            raise EmeritusError(f"{model}: {logical} is not valid JSON") from None
        if not isinstance(document, dict):
            continue
        added = document.get("added_tokens") or []
        decoder = document.get("added_tokens_decoder") or {}
        entries = [*added, *(decoder.values() if isinstance(decoder, dict) else ())]
        for entry in entries:
            if isinstance(entry, dict) and entry.get("special") and entry.get("content"):
                found[str(entry["content"])] = None
    described = json.loads(archive.read_logical(model, "emeritus/object.json"))
    for entry in described["files"]:
        if entry.get("format") == "gguf":
            found.update(
                dict.fromkeys(special_tokens_of(archive.content_file(model, entry["path"])))
            )
            break
    return tuple(found)


def fingerprint_model(archive: Archive, model: str, backend: Backend) -> tuple[str, int]:
    """Take a fingerprint and store it as a new version of the model's object."""
    weights = weights_entry(archive, model)
    document = fingerprint.take(
        backend, model=model, weights_sha256=weights["sha256"], now=utc_now()
    )
    name = fingerprint.filename(document)
    version = archive.add_files(
        model,
        {name: fingerprint.encode(document)},
        message=f"behavioural fingerprint ({document['runtime']['backend']})",
    )
    archive.store.record(
        "runtime.fingerprinted",
        f"model:{model}",
        payload={
            "file": name,
            "version": version,
            "digest": document["digest"],
            "runtime": document["runtime"],
            "canaries": len(document["canaries"]),
        },
    )
    return name, version


def fingerprints(archive: Archive, model: str) -> dict[str, dict[str, Any]]:
    return {
        logical: json.loads(archive.read_logical(model, logical))
        for logical in archive.logical_files(model)
        if logical.startswith("fingerprints/")
    }


def verify_behaviour(
    archive: Archive, model: str, backend: Backend
) -> list[fingerprint.BehaviourReport]:
    """Replay every stored fingerprint; record one event."""
    stored = fingerprints(archive, model)
    if not stored:
        raise NotFound(f"{model} has no fingerprint (run emeritus fingerprint {model})")
    reports = [fingerprint.replay(backend, doc, name=name) for name, doc in sorted(stored.items())]
    archive.store.record(
        "runtime.behaviour_verified",
        f"model:{model}",
        payload={
            "reports": [
                {
                    "fingerprint": r.fingerprint,
                    "comparable": r.comparable,
                    "ok": r.ok,
                    "mismatches": [c.id for c in r.results if not c.match],
                }
                for r in reports
            ]
        },
    )
    return reports
