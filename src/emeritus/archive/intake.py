"""What `preserve` takes in: files and model directories, sorted into roles and validated
structurally before a single byte is written."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from emeritus.archive.ocfl import check_logical_path
from emeritus.archive.writer import Incoming
from emeritus.errors import InvalidInput
from emeritus.formats import detect_format, inspect_weights

_TOKENIZER = {
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "added_tokens.json",
}
_CONFIG = {"config.json", "generation_config.json", "chat_template.jinja", "chat_template.json"}
_WEIGHT_SUFFIXES = {".gguf", ".safetensors", ".bin", ".pt", ".pth", ".ckpt"}


def role_of(name: str) -> str:
    lower = name.lower()
    if Path(lower).suffix in _WEIGHT_SUFFIXES:
        return "weights"
    if lower in _TOKENIZER:
        return "tokenizer"
    if lower in _CONFIG or lower.endswith(".index.json"):
        return "config"
    if lower in ("readme.md", "model_card.md", "modelcard.md") or lower.startswith("license"):
        return "card"
    return "other"


def collect(paths: Sequence[Path]) -> list[Incoming]:
    """Files to preserve, as `weights/<relative path>`; weight files inspected and validated."""
    found: dict[str, Path] = {}
    for given in paths:
        if not given.exists():
            raise InvalidInput(f"{given}: no such file or directory")
        if given.is_dir():
            for directory, dirs, files in os.walk(given):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))  # .git, .cache
                for name in sorted(files):
                    path = Path(directory) / name
                    if name.startswith(".") or not path.is_file():
                        continue
                    _add(found, path.relative_to(given).as_posix(), path)
        elif given.is_file():
            _add(found, given.name, given)
        else:
            raise InvalidInput(f"{given}: not a regular file or directory")
    if not found:
        raise InvalidInput("nothing to preserve: no files found in " + ", ".join(map(str, paths)))
    _check_shard_index(found)
    incoming = []
    for relative, path in sorted(found.items()):
        logical = check_logical_path(f"weights/{relative}")
        weights = inspect_weights(path) if detect_format(path) else None
        incoming.append(Incoming(logical, path.resolve(), role_of(path.name), weights))
    return incoming


def _add(found: dict[str, Path], relative: str, path: Path) -> None:
    if relative in found:
        raise InvalidInput(
            f"two files would be preserved as {relative!r}: {found[relative]}, {path}"
        )
    found[relative] = path


def _check_shard_index(found: dict[str, Path]) -> None:
    """A sharded model's index must name only shards that are being preserved with it."""
    for relative, path in found.items():
        if not relative.endswith(".safetensors.index.json"):
            continue
        try:
            weight_map = json.loads(path.read_text(encoding="utf-8"))["weight_map"]
            shards = set(weight_map.values())
        except (ValueError, KeyError, TypeError, AttributeError):
            raise InvalidInput(
                f"{path.name}: not a valid safetensors index (no weight_map)"
            ) from None
        folder = relative.rpartition("/")[0]
        missing = sorted(s for s in shards if (f"{folder}/{s}" if folder else s) not in found)
        if missing:
            raise InvalidInput(
                f"{path.name}: names shards that are not given: {', '.join(missing)}"
            )
