"""Structural check of GGUF files.

The `gguf` package's GGUFReader parses the metadata and the tensor table; this module wraps it so
that every defect becomes a FormatError naming the file and what is wrong: the header is checked
before the reader runs (it reports a bad magic or truncation as bare ValueError or IndexError),
and the tensor ranges and alignment after, by us, rather than failing inside numpy.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader, GGUFValueType, ReaderField

from emeritus.formats.weights import GGUF_MAGIC as MAGIC
from emeritus.formats.weights import FormatError, TensorInfo, WeightsFile, file_size, open_weights

SUPPORTED_VERSIONS = (2, 3)
HEADER_LENGTH = 24  # magic, version (u32), tensor count and metadata count (u64 each)
# The smallest possible entries: a tensor with an empty name and no dimensions; a metadata entry
# with an empty key and a one-byte value. Counts that could not fit in the file are refused early.
MIN_TENSOR_INFO_LENGTH = 8 + 4 + 4 + 8
MIN_METADATA_ENTRY_LENGTH = 8 + 4 + 1
# GGUFReader's own entries in `fields` before the file's metadata.
_PSEUDO_FIELDS = ("GGUF.version", "GGUF.tensor_count", "GGUF.kv_count")
_STRING_KEYS = ("general.architecture", "general.name", "tokenizer.chat_template")


class _Defect(Exception):
    """A defect found while the reader's memory map is alive: carries only text, so that the
    FormatError raised from it can outlive the map (see `_read_tables`)."""

    def __init__(self, defect: str) -> None:
        super().__init__(defect)
        self.defect = defect


class _Reader(GGUFReader):
    """GGUFReader with a bounds check on every read, and no views of the tensor data.

    Reads past the end of the file otherwise come back short and fail later with an unrelated
    IndexError; the tensor data views would fail inside numpy's reshape for a tensor past the end,
    before its range can be named. The overridden methods are the reader's internal helpers (as
    of gguf 0.19); `tensor_fields` still None afterwards means that hook was not called.
    """

    def __init__(self, path: Path, kv_count: int) -> None:
        self._kv_count = kv_count
        self._table_read = False
        self.tensor_fields: list[ReaderField] | None = None
        try:
            super().__init__(path)
        except (ValueError, IndexError, KeyError, OverflowError) as exc:
            detail = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
            # Values reach the reader's messages as numpy scalars: "np.uint32(99)" -> "99".
            detail = re.sub(r"np\.\w+\(([^()]*)\)", r"\1", detail)
            raise _Defect(f"malformed GGUF {self._section()}: {detail}") from None

    def _section(self) -> str:
        if self._table_read:
            return "metadata"  # the reader checks general.alignment after the tensor table
        parsed = len(getattr(self, "fields", {})) - len(_PSEUDO_FIELDS)
        if parsed < 0:
            return "header"
        if parsed < self._kv_count:
            return f"metadata entry {parsed + 1} of {self._kv_count}"
        return "tensor table"

    def _build_tensor_info(self, offs: int, count: int) -> tuple[int, list[ReaderField]]:
        result = super()._build_tensor_info(offs, count)
        self._table_read = True
        return result

    def _get(
        self,
        offset: int,
        dtype: npt.DTypeLike,
        count: int = 1,
        override_order: Literal["I", "S", "<"] | None = None,
    ) -> npt.NDArray[Any]:
        end = int(offset) + np.dtype(dtype).itemsize * int(count)
        if end > self.data.size:
            raise _Defect(
                f"truncated in the {self._section()}: needs {end:,} bytes, "
                f"file has {self.data.size:,}"
            )
        return super()._get(offset, dtype, count, override_order)

    def _build_tensors(self, start_offs: int, fields: list[ReaderField]) -> None:
        self.tensor_fields = fields


def inspect_gguf(path: Path) -> WeightsFile:
    with open_weights(path) as handle:
        size = file_size(handle)
        head = handle.read(HEADER_LENGTH)
    version, tensor_count, kv_count, byte_order = _check_header(path, head, size)
    fields, alignment, data_offset = _read_tables(path, kv_count)
    tensors = _check_tensors(path, fields, alignment, data_offset, size)
    metadata: dict[str, Any] = {
        "version": version,
        "byte_order": byte_order,
        "alignment": alignment,
        "tensor_count": tensor_count,
        "kv_count": kv_count,
    }
    metadata.update(fields.summary)
    return WeightsFile(path=path, format="gguf", size=size, metadata=metadata, tensors=tensors)


def _check_header(path: Path, head: bytes, size: int) -> tuple[int, int, int, str]:
    if head[:4] != MAGIC:
        if len(head) < 4 and MAGIC.startswith(head):
            raise FormatError(path, f"truncated: {size} bytes, a GGUF header needs {HEADER_LENGTH}")
        raise FormatError(path, f"not a GGUF file (magic {head[:4]!r})")
    if len(head) < 8:
        raise FormatError(path, f"truncated: {size} bytes, a GGUF header needs {HEADER_LENGTH}")
    # As GGUFReader decides: a version whose low half is zero was written big-endian.
    (version,) = struct.unpack_from("<I", head, 4)
    byte_order = "little"
    if version & 0xFFFF == 0:
        (version,) = struct.unpack_from(">I", head, 4)
        byte_order = "big"
    if version not in SUPPORTED_VERSIONS:
        raise FormatError(path, f"unsupported GGUF version {version} (emeritus reads 2 and 3)")
    if len(head) < HEADER_LENGTH:
        raise FormatError(path, f"truncated: {size} bytes, a GGUF header needs {HEADER_LENGTH}")
    tensor_count, kv_count = struct.unpack_from("<QQ" if byte_order == "little" else ">QQ", head, 8)
    needed = tensor_count * MIN_TENSOR_INFO_LENGTH + kv_count * MIN_METADATA_ENTRY_LENGTH
    if HEADER_LENGTH + needed > size:
        raise FormatError(
            path,
            f"truncated or corrupt: header claims {tensor_count:,} tensors and {kv_count:,} "
            f"metadata entries, more than a file of {size:,} bytes can hold",
        )
    return version, tensor_count, kv_count, byte_order


class _Tables:
    """What the reader found, copied out of its memory map as plain Python values."""

    def __init__(self) -> None:
        self.summary: dict[str, Any] = {}
        # name, raw GGML type, dims, offset relative to the data section
        self.tensors: list[tuple[str, int, tuple[int, ...], int]] = []


def _read_tables(path: Path, kv_count: int) -> tuple[_Tables, int, int]:
    """Parse metadata and tensor table. Nothing referring to the reader's memory map may outlive
    this call, not even a traceback (its frames hold the reader): the map holds the file open."""
    try:
        return _copy_tables(path, kv_count)
    except _Defect as exc:
        defect = exc.defect
    # Raised here, outside the handler, so that it carries no reference to the reader.
    raise FormatError(path, defect)


def _copy_tables(path: Path, kv_count: int) -> tuple[_Tables, int, int]:
    reader = _Reader(path, kv_count)
    try:
        tables = _Tables()
        for key, field in reader.fields.items():
            if key not in _PSEUDO_FIELDS:
                _summarise(tables.summary, key, field)
        fields = reader.tensor_fields
        if fields is None:  # a gguf release without the _build_tensors hook: its tensors work
            fields = [tensor.field for tensor in reader.tensors]
        for field in fields:
            _name_length, _name, _n_dims, dims, raw_type, offset = field.parts
            tables.tensors.append(
                (field.name, int(raw_type[0]), tuple(int(n) for n in dims), int(offset[0]))
            )
        for key in _STRING_KEYS:
            tables.summary.setdefault(key, None)
        return tables, int(reader.alignment), int(reader.data_offset)
    finally:
        del reader


def _summarise(summary: dict[str, Any], key: str, field: ReaderField) -> None:
    """Keep the keys named by the spec and other scalar `general.*` keys; never the large arrays
    (vocabulary, merges)."""
    scalar = len(field.types) == 1 and field.types[0] != GGUFValueType.ARRAY
    if key in _STRING_KEYS:
        if field.types != [GGUFValueType.STRING]:
            kind = "/".join(value_type.name for value_type in field.types)
            raise _Defect(f"metadata {key!r} is {kind}, not a string")
    elif not (key.startswith("general.") and scalar):
        return
    try:
        value = field.contents()
    except UnicodeDecodeError:
        raise _Defect(f"metadata {key!r} is not valid UTF-8") from None
    if isinstance(value, float) and not math.isfinite(value):
        return  # JSON, and so the archive's canonical form, has no NaN or infinity
    summary[key] = value


def _check_tensors(
    path: Path, tables: _Tables, alignment: int, data_offset: int, size: int
) -> tuple[TensorInfo, ...]:
    infos: list[TensorInfo] = []
    seen: set[str] = set()
    for name, raw_type, dims, relative in tables.tensors:
        if name in seen:
            raise FormatError(path, f"tensor {name!r} appears twice in the tensor table")
        seen.add(name)
        ggml_type = _ggml_type(path, name, raw_type)
        block_size, type_size = GGML_QUANT_SIZES[ggml_type]
        row = dims[0] if dims else 1
        if row % block_size:
            raise FormatError(
                path,
                f"tensor {name!r} rows of {row:,} {ggml_type.name} values are not a multiple "
                f"of its block size {block_size}",
            )
        length = math.prod(dims) // block_size * type_size
        if relative % alignment:
            raise FormatError(
                path,
                f"tensor {name!r} offset {relative:,} is not a multiple of the alignment "
                f"({alignment})",
            )
        start = data_offset + relative
        if start + length > size:
            raise FormatError(
                path,
                f"tensor {name!r} data (bytes {start:,}-{start + length:,}) runs past the end "
                f"of the file ({size:,} bytes)",
            )
        infos.append(TensorInfo(name, ggml_type.name, dims, start, length))
    infos.sort(key=lambda info: (info.offset, info.length, info.name))
    _check_overlaps(path, infos)
    return tuple(infos)


def _ggml_type(path: Path, name: str, raw_type: int) -> GGMLQuantizationType:
    try:
        ggml_type = GGMLQuantizationType(raw_type)
    except ValueError:
        raise FormatError(path, f"tensor {name!r} has unknown GGML type {raw_type}") from None
    if ggml_type not in GGML_QUANT_SIZES:
        raise FormatError(path, f"tensor {name!r} has GGML type {ggml_type.name} of unknown size")
    return ggml_type


def _check_overlaps(path: Path, infos: Sequence[TensorInfo]) -> None:
    for before, after in pairwise(infos):
        if after.offset < before.end:
            raise FormatError(
                path,
                f"tensors {before.name!r} and {after.name!r} overlap (bytes {after.offset:,}-"
                f"{min(before.end, after.end):,})",
            )
