"""Running preserved models: open one from the archive's own content file, fingerprint it, and
replay its fingerprints."""

from __future__ import annotations

import json
from typing import Any

from emeritus.archive import Archive
from emeritus.errors import EmeritusError, NotFound
from emeritus.runtime import fingerprint
from emeritus.runtime.backend import Backend
from emeritus.runtime.llamacpp import LlamaCppBackend, special_tokens_of
from emeritus.store import utc_now


def weights_entry(archive: Archive, model: str) -> dict[str, Any]:
    """The GGUF weights file recorded in the model's object.json."""
    described = json.loads(archive.read_logical(model, "emeritus/object.json"))
    ggufs = [f for f in described["files"] if f.get("format") == "gguf"]
    if not ggufs:
        raise EmeritusError(
            f"{model} has no GGUF weights to run (safetensors models need an "
            "OpenAI-compatible server: use the openai backend)"
        )
    entry: dict[str, Any] = ggufs[0]
    return entry


def open_preserved(archive: Archive, model: str, **options: Any) -> tuple[Backend, int]:
    """The embedded backend over the archive's content file (memory-mapped, no copy), and the
    bytes it occupies (for the pool's budget)."""
    path = archive.content_file(model, weights_entry(archive, model)["path"])
    template = config_chat_template(archive, model)
    return LlamaCppBackend(path, chat_template=template, **options), path.stat().st_size


def config_chat_template(archive: Archive, model: str) -> str | None:
    """The chat template from a preserved `tokenizer_config.json` (a string, or a list of named
    templates of which `default` is taken), for GGUF files that carry none."""
    configs = [f for f in archive.logical_files(model) if f.endswith("tokenizer_config.json")]
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
