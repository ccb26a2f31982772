"""Recognising a weight file and checking its structure, without loading a model."""

from __future__ import annotations

from pathlib import Path

from emeritus.formats.safetensors import inspect_safetensors, plausible_header
from emeritus.formats.weights import (
    GGUF_MAGIC as MAGIC,
)
from emeritus.formats.weights import (
    FormatError,
    WeightsFile,
    file_size,
    open_weights,
)


def detect_format(path: Path | str) -> str | None:
    """Which weight format a file is in: "gguf" for the GGUF magic or a `.gguf` name,
    "safetensors" for a `.safetensors` name or a plausible safetensors header, None for anything
    else (tokenizers, configs, cards). A name alone is enough, so that a damaged weight file is
    checked and refused rather than archived unchecked as an ordinary file."""
    path = Path(path)
    with open_weights(path) as handle:
        size = file_size(handle)
        start = handle.read(9)
    if start.startswith(MAGIC) or path.name.endswith(".gguf"):
        return "gguf"
    if path.name.endswith(".safetensors") or plausible_header(start, size):
        return "safetensors"
    return None


def inspect_weights(path: Path | str) -> WeightsFile:
    """Check a weight file's structure (docs/design/archive-format.md, invariant 5) and describe
    it; raises FormatError naming the file and the defect."""
    path = Path(path)
    found = detect_format(path)
    if found == "safetensors":
        return inspect_safetensors(path)
    if found == "gguf":
        from emeritus.formats.gguf import inspect_gguf  # gguf and numpy load on first use

        return inspect_gguf(path)
    raise FormatError(path, "not a GGUF or safetensors file")
