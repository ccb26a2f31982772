"""Per-tensor digests and the tensor inventory: a damaged weight file is located down to the
tensor, and two files can be compared tensor by tensor."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from emeritus.errors import InvalidInput
from emeritus.formats.weights import FormatError, TensorInfo, WeightsFile, file_size, open_weights

INVENTORY_FORMAT = 1


class TensorHasher:
    """Per-tensor sha256 computed while a file streams by once, in order, in arbitrary chunks:
    the archive reads each file once and feeds the same buffer to sha512, sha256 and this.

    Tensors may lie anywhere (gaps and overlaps are allowed here; the format checks refuse them);
    bytes outside every tensor are ignored.
    """

    def __init__(self, tensors: Sequence[TensorInfo]) -> None:
        names = [tensor.name for tensor in tensors]
        if len(set(names)) != len(names):
            raise ValueError("tensor names must be unique")
        self._tensors = sorted(tensors, key=lambda tensor: (tensor.offset, tensor.end))
        self._hashes = {tensor.name: hashlib.sha256() for tensor in tensors}
        self._remaining = {tensor.name: tensor.length for tensor in tensors}
        self._position: int | None = None  # where the next chunk must start
        self._next = 0  # index of the first tensor not yet started
        self._active: list[TensorInfo] = []  # started, not yet finished

    def update(self, offset: int, chunk: bytes | bytearray | memoryview) -> None:
        """Feed the bytes at absolute file offset `offset`; chunks must be contiguous."""
        if self._position is not None and offset != self._position:
            raise ValueError(
                f"chunks out of order: expected offset {self._position:,}, got {offset:,}"
            )
        view = memoryview(chunk).cast("B")
        end = offset + len(view)
        self._position = end
        while self._next < len(self._tensors) and self._tensors[self._next].offset < end:
            self._active.append(self._tensors[self._next])
            self._next += 1
        still_active = []
        for tensor in self._active:
            low, high = max(tensor.offset, offset), min(tensor.end, end)
            if high > low:
                self._hashes[tensor.name].update(view[low - offset : high - offset])
                self._remaining[tensor.name] -= high - low
            if tensor.end > end:
                still_active.append(tensor)
        self._active = still_active

    def digests(self) -> dict[str, str]:
        """name -> "sha256:<hex>"; raises ValueError unless every tensor byte was seen."""
        for name, remaining in self._remaining.items():
            if remaining:
                raise ValueError(f"tensor {name!r} is incomplete: {remaining:,} bytes not seen")
        return {name: "sha256:" + digest.hexdigest() for name, digest in self._hashes.items()}


def tensor_digests(weights: WeightsFile, chunk_size: int = 8 << 20) -> dict[str, str]:
    """Read the file once and return each tensor's tagged sha256."""
    hasher = TensorHasher(weights.tensors)
    buffer = bytearray(chunk_size)
    view = memoryview(buffer)
    position = 0
    with open_weights(weights.path) as handle:
        if file_size(handle) != weights.size:
            raise FormatError(
                weights.path,
                f"changed since it was inspected: {file_size(handle):,} bytes, was "
                f"{weights.size:,}",
            )
        while read := handle.readinto(view):
            hasher.update(position, view[:read])
            position += read
    if position != weights.size:
        raise FormatError(
            weights.path, f"changed while being read: {position:,} bytes, was {weights.size:,}"
        )
    return hasher.digests()


def tensor_inventory(weights: WeightsFile, digests: Mapping[str, str]) -> dict[str, Any]:
    """The JSON document stored as `emeritus/tensors/<weights path>.json`."""
    names = {tensor.name for tensor in weights.tensors}
    if names != set(digests):
        missing = sorted(names - set(digests))
        extra = sorted(set(digests) - names)
        raise ValueError(f"digests do not match the tensors (missing {missing}, extra {extra})")
    return {
        "format": INVENTORY_FORMAT,
        "file": weights.path.name,
        "file_format": weights.format,
        "size": weights.size,
        "metadata": weights.metadata,
        "tensors": [
            {**tensor.to_dict(), "sha256": digests[tensor.name]} for tensor in weights.tensors
        ],
    }


def compare_inventories(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, list[str]]:
    """Tensor names, sorted, by whether they are in both inventories with the same sha256, dtype
    and shape ("same"), in both but different ("changed"), or in one only."""
    first, second = _tensors_by_name(a), _tensors_by_name(b)
    both = first.keys() & second.keys()
    same = sorted(name for name in both if first[name] == second[name])
    return {
        "same": same,
        "changed": sorted(both - set(same)),
        "only_a": sorted(first.keys() - second.keys()),
        "only_b": sorted(second.keys() - first.keys()),
    }


def _tensors_by_name(inventory: Mapping[str, Any]) -> dict[str, tuple[str, str, tuple[int, ...]]]:
    version = inventory.get("format")
    if version != INVENTORY_FORMAT:
        raise InvalidInput(
            f"tensor inventory format {version!r} is not supported (this emeritus reads "
            f"{INVENTORY_FORMAT})"
        )
    return {
        entry["name"]: (entry["sha256"], entry["dtype"], tuple(entry["shape"]))
        for entry in inventory["tensors"]
    }
