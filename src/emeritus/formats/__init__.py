"""Structural checks of weight files (GGUF, safetensors) before anything is archived, and the
per-tensor digests and inventories that locate damage down to one tensor.

Rules: docs/design/archive-format.md (invariant 5, `emeritus/tensors/`).
"""

from emeritus.formats.inspection import detect_format, inspect_weights
from emeritus.formats.tensors import (
    TensorHasher,
    compare_inventories,
    tensor_digests,
    tensor_inventory,
)
from emeritus.formats.weights import FormatError, TensorInfo, WeightsFile

__all__ = [
    "FormatError",
    "TensorHasher",
    "TensorInfo",
    "WeightsFile",
    "compare_inventories",
    "detect_format",
    "inspect_weights",
    "tensor_digests",
    "tensor_inventory",
]
