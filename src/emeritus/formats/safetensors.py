"""Structural check of safetensors files, parsed with the standard library.

Layout: an 8-byte little-endian header length N, N bytes of UTF-8 JSON, then the data section.
The JSON maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (relative to
the data section), plus an optional "__metadata__" map of strings. The ranges must tile the data
section exactly, as the reference implementation requires.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any, NamedTuple

from emeritus.formats.weights import FormatError, TensorInfo, WeightsFile, file_size, open_weights

# The reference implementation's limit: a larger header is refused before it is read.
MAX_HEADER_LENGTH = 100_000_000

DTYPE_SIZES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "F64": 8,
    "I64": 8,
    "U64": 8,
}


def plausible_header(start: bytes, size: int) -> bool:
    """Whether the first 9 bytes of a file of `size` bytes look like a safetensors header."""
    if len(start) < 9:
        return False
    (length,) = struct.unpack_from("<Q", start)
    return 1 < length <= MAX_HEADER_LENGTH and 8 + length <= size and start[8:9] == b"{"


def inspect_safetensors(path: Path) -> WeightsFile:
    with open_weights(path) as handle:
        size = file_size(handle)
        if size < 8:
            raise FormatError(
                path, f"truncated: {size} bytes, too short for the 8-byte header length"
            )
        (header_length,) = struct.unpack("<Q", handle.read(8))
        if header_length < 2:
            raise FormatError(path, f"header length {header_length} is too small for a JSON object")
        if header_length > MAX_HEADER_LENGTH:
            raise FormatError(
                path,
                f"header length {header_length:,} bytes exceeds the limit of {MAX_HEADER_LENGTH:,}",
            )
        if 8 + header_length > size:
            raise FormatError(
                path,
                f"truncated: header length is {header_length:,} bytes but only {size - 8:,} "
                "bytes follow it",
            )
        header = handle.read(header_length)
    data_start = 8 + header_length
    entries, user_metadata = _parse_header(path, header)
    tensors = _check_ranges(path, entries, data_start, size - data_start)
    metadata: dict[str, Any] = {"header_length": header_length, "tensor_count": len(tensors)}
    if user_metadata is not None:
        metadata["__metadata__"] = user_metadata
    return WeightsFile(
        path=path, format="safetensors", size=size, metadata=metadata, tensors=tensors
    )


class _Entry(NamedTuple):
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int  # relative to the data section
    end: int

    @property
    def length(self) -> int:
        return self.end - self.begin


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _parse_header(path: Path, header: bytes) -> tuple[list[_Entry], dict[str, str] | None]:
    """The header's tensor entries, and its __metadata__."""
    try:
        text = header.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FormatError(path, f"header is not valid UTF-8 (byte {8 + exc.start:,})") from None
    try:
        document = json.loads(text, object_pairs_hook=_reject_duplicates)
    except _DuplicateKey as exc:
        raise FormatError(path, f"header names {exc.key!r} twice") from None
    except json.JSONDecodeError as exc:
        raise FormatError(
            path, f"header is not valid JSON ({exc.msg} at header byte {exc.pos:,})"
        ) from None
    except RecursionError:
        raise FormatError(path, "header JSON is nested too deeply") from None
    if not isinstance(document, dict):
        raise FormatError(path, f"header is a JSON {type(document).__name__}, not an object")
    user_metadata = document.pop("__metadata__", None)
    if user_metadata is not None and not (
        isinstance(user_metadata, dict)
        and all(isinstance(value, str) for value in user_metadata.values())
    ):
        raise FormatError(path, "__metadata__ is not a map of strings to strings")
    entries = [_parse_entry(path, name, entry) for name, entry in document.items()]
    return entries, user_metadata


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _parse_entry(path: Path, name: str, entry: Any) -> _Entry:
    if not isinstance(entry, dict):
        raise FormatError(path, f"tensor {name!r} is described by a {type(entry).__name__}")
    dtype = entry.get("dtype")
    shape = entry.get("shape")
    offsets = entry.get("data_offsets")
    if not isinstance(dtype, str):
        raise FormatError(path, f"tensor {name!r} has no dtype string")
    if dtype not in DTYPE_SIZES:
        raise FormatError(path, f"tensor {name!r} has unknown dtype {dtype!r}")
    if not (isinstance(shape, list) and all(_is_count(n) for n in shape)):
        raise FormatError(
            path, f"tensor {name!r} shape {shape!r} is not a list of non-negative integers"
        )
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(map(_is_count, offsets))):
        raise FormatError(
            path, f"tensor {name!r} data_offsets {offsets!r} is not [begin, end] in bytes"
        )
    begin, end = offsets
    if end < begin:
        raise FormatError(path, f"tensor {name!r} ends (byte {end:,}) before it begins ({begin:,})")
    needed = math.prod(shape) * DTYPE_SIZES[dtype]
    if end - begin != needed:
        raise FormatError(
            path,
            f"tensor {name!r} has {end - begin:,} bytes but shape {shape} of {dtype} "
            f"needs {needed:,}",
        )
    return _Entry(name, dtype, tuple(shape), begin, end)


def _check_ranges(
    path: Path,
    entries: list[_Entry],
    data_start: int,
    data_length: int,
) -> tuple[TensorInfo, ...]:
    """The data ranges must tile the data section: from 0, no gap, no overlap, nothing after."""
    entries = sorted(entries, key=lambda entry: (entry.begin, entry.end, entry.name))
    position, previous = 0, None
    for entry in entries:
        if entry.begin > position:
            where = f"before tensor {entry.name!r}"
            if previous is not None:
                where = f"between tensors {previous!r} and {entry.name!r}"
            raise FormatError(
                path, f"gap {where} (bytes {position:,}-{entry.begin:,} unaccounted for)"
            )
        if entry.begin < position:
            raise FormatError(
                path,
                f"tensors {previous!r} and {entry.name!r} overlap (bytes {entry.begin:,}-"
                f"{min(position, entry.end):,} of the data section)",
            )
        position, previous = entry.end, entry.name
    if position > data_length:
        overrun = next(entry for entry in entries if entry.end > data_length)
        raise FormatError(
            path,
            f"truncated: header says {position:,} bytes of data, file has {data_length:,} "
            f"(tensor {overrun.name!r} ends at byte {overrun.end:,} of the data section)",
        )
    if position < data_length:
        raise FormatError(
            path,
            f"trailing bytes: header says {position:,} bytes of data, file has "
            f"{data_length:,} ({data_length - position:,} extra)",
        )
    return tuple(
        TensorInfo(entry.name, entry.dtype, entry.shape, data_start + entry.begin, entry.length)
        for entry in entries
    )
