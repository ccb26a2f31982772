"""safetensors structural checks: valid files written by the safetensors package, broken ones
built byte by byte, and a property over random files and their truncations."""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import struct
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file

from emeritus.errors import InvalidInput
from emeritus.formats import (
    FormatError,
    TensorInfo,
    detect_format,
    inspect_weights,
    tensor_digests,
)


def build(
    path: Path, header: dict[str, Any] | bytes, data: bytes = b"", *, length: int | None = None
) -> Path:
    """A safetensors file from its parts, however wrong they are."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
    return path


def entry(dtype: str, shape: Any, begin: int, end: int) -> dict[str, Any]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def refused(path: Path, pattern: str) -> FormatError:
    """Assert inspect_weights refuses `path` with a one-line message naming it and the defect."""
    with pytest.raises(FormatError) as caught:
        inspect_weights(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path.name}: "), message
    assert re.search(pattern, message), message
    return caught.value


@pytest.fixture
def arrays() -> dict[str, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(7)
    return {
        "embed.weight": rng.standard_normal((16, 8)).astype(np.float32),
        "norm.weight": rng.standard_normal(8).astype(np.float16),
        "positions": np.arange(5, dtype=np.int64),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "mask": np.array([True, False, True]),
    }


@pytest.fixture
def model(tmp_path: Path, arrays: dict[str, np.ndarray[Any, Any]]) -> Path:
    path = tmp_path / "model.safetensors"
    save_file(arrays, str(path), metadata={"format": "pt"})
    return path


def test_valid_file_is_described(model: Path, arrays: dict[str, np.ndarray[Any, Any]]) -> None:
    weights = inspect_weights(model)
    data = model.read_bytes()
    (header_length,) = struct.unpack_from("<Q", data)
    assert weights.format == "safetensors"
    assert weights.size == len(data)
    assert weights.metadata == {
        "header_length": header_length,
        "tensor_count": 5,
        "__metadata__": {"format": "pt"},
    }
    assert [t.offset for t in weights.tensors] == sorted(t.offset for t in weights.tensors)
    dtypes = {"float32": "F32", "float16": "F16", "int64": "I64", "bool": "BOOL"}
    for tensor in weights.tensors:
        array = arrays[tensor.name]
        assert tensor.dtype == dtypes[array.dtype.name]
        assert tensor.shape == array.shape
        assert tensor.offset >= 8 + header_length
        assert data[tensor.offset : tensor.end] == array.tobytes()
    summary = weights.to_dict()
    assert summary["tensor_count"] == 5 and "tensors" not in summary
    assert summary["file"] == "model.safetensors"
    json.dumps(summary, allow_nan=False)


def test_tensor_info_round_trips_through_dict(model: Path) -> None:
    for tensor in inspect_weights(model).tensors:
        assert TensorInfo.from_dict(json.loads(json.dumps(tensor.to_dict()))) == tensor


@pytest.mark.parametrize(
    ("dtype", "size"),
    [
        ("BOOL", 1),
        ("U8", 1),
        ("I8", 1),
        ("F8_E4M3", 1),
        ("F8_E5M2", 1),
        ("I16", 2),
        ("U16", 2),
        ("F16", 2),
        ("BF16", 2),
        ("I32", 4),
        ("U32", 4),
        ("F32", 4),
        ("F64", 8),
        ("I64", 8),
        ("U64", 8),
    ],
)
def test_every_dtype_is_known_with_its_size(tmp_path: Path, dtype: str, size: int) -> None:
    path = build(
        tmp_path / "x.safetensors", {"t": entry(dtype, [2, 3], 0, 6 * size)}, b"\0" * (6 * size)
    )
    (tensor,) = inspect_weights(path).tensors
    assert (tensor.dtype, tensor.shape, tensor.length) == (dtype, (2, 3), 6 * size)


def test_file_without_tensors_is_valid(tmp_path: Path) -> None:
    weights = inspect_weights(build(tmp_path / "x.safetensors", {}))
    assert weights.tensors == () and weights.metadata["tensor_count"] == 0


def test_detect_format(tmp_path: Path, model: Path) -> None:
    assert detect_format(model) == "safetensors"
    renamed = tmp_path / "weights.bin"
    renamed.write_bytes(model.read_bytes())  # recognised by its header alone
    assert detect_format(renamed) == "safetensors"
    assert inspect_weights(renamed).format == "safetensors"
    config = tmp_path / "config.json"
    config.write_text('{"model_type": "llama"}')
    assert detect_format(config) is None
    gguf = tmp_path / "model.bin"
    gguf.write_bytes(b"GGUF" + b"\0" * 20)
    assert detect_format(gguf) == "gguf"
    named = tmp_path / "broken.safetensors"
    named.write_bytes(b"junk")  # the name alone makes it a weight file, to be checked
    assert detect_format(named) == "safetensors"


def test_unrecognised_missing_and_directory(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text("{}")
    refused(config, "not a GGUF or safetensors file")
    refused(tmp_path / "gone.safetensors", "no such file$")
    with pytest.raises(FormatError, match="no such file"):
        detect_format(tmp_path / "gone.safetensors")
    folder = tmp_path / "folder.safetensors"
    folder.mkdir()
    refused(folder, "is a directory")


def test_format_error_is_invalid_input(tmp_path: Path) -> None:
    error = refused(tmp_path / "gone.safetensors", "no such file")
    assert isinstance(error, InvalidInput) and error.exit_code == 2
    assert error.path == tmp_path / "gone.safetensors" and error.defect == "no such file"
    # Workers in other processes send it back pickled.
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.path) == (FormatError, str(error), error.path)


def test_truncation_points(model: Path) -> None:
    data = model.read_bytes()
    (header_length,) = struct.unpack_from("<Q", data)
    data_start = 8 + header_length
    cuts = {
        0: "truncated: 0 bytes, too short for the 8-byte header length",
        3: "truncated: 3 bytes, too short",
        8: rf"truncated: header length is {header_length:,} bytes but only 0 bytes follow",
        8 + header_length // 2: "truncated: header length is .* but only .* bytes follow",
        data_start - 1: "truncated: header length",
        data_start: rf"truncated: header says {len(data) - data_start:,} bytes of data, file has 0",
        (data_start + len(data)) // 2: "truncated: header says .* bytes of data",
        len(data) - 1: rf"truncated: .* file has {len(data) - data_start - 1:,} \(tensor '\w+",
    }
    for cut, pattern in cuts.items():
        model.write_bytes(data[:cut])
        refused(model, pattern)


def test_truncated_data_names_the_tensor(tmp_path: Path) -> None:
    header = {"a": entry("F32", [4], 0, 16), "w": entry("F32", [1024], 16, 4112)}
    path = build(tmp_path / "x.safetensors", header, b"\0" * 4000)
    refused(
        path,
        r"truncated: header says 4,112 bytes of data, file has 4,000 "
        r"\(tensor 'w' ends at byte 4,112 of the data section\)",
    )


@pytest.mark.parametrize(
    ("header", "data", "length", "pattern"),
    [
        (b"{}", b"", 1, "header length 1 is too small"),
        (
            b"{}",
            b"",
            200_000_000,
            "header length 200,000,000 bytes exceeds the limit of 100,000,000",
        ),
        (b"{}", b"", 50, "truncated: header length is 50 bytes but only 2 bytes follow"),
        (b'{"a": \xff}', b"", None, r"header is not valid UTF-8 \(byte 14\)"),
        (b'{"a": ', b"", None, r"header is not valid JSON \(Expecting value at header byte 6\)"),
        (b"[1, 2]", b"", None, "header is a JSON list, not an object"),
        (b'"weights"', b"", None, "header is a JSON str, not an object"),
        (b"[" * 100_000 + b"]" * 100_000, b"", None, "nested too deeply"),
        (
            b'{"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}, "a": {}}',
            b"\0",
            None,
            "header names 'a' twice",
        ),
        ({"__metadata__": {"n": 1}}, b"", None, "__metadata__ is not a map of strings to strings"),
        ({"__metadata__": ["x"]}, b"", None, "__metadata__ is not a map"),
        ({"w": [0, 4]}, b"", None, "tensor 'w' is described by a list"),
        ({"w": {"shape": [1], "data_offsets": [0, 4]}}, b"", None, "tensor 'w' has no dtype"),
        ({"w": entry("F128", [1], 0, 16)}, b"", None, "tensor 'w' has unknown dtype 'F128'"),
        ({"w": entry("F32", [-1], 0, 4)}, b"", None, r"tensor 'w' shape \[-1\] is not a list"),
        ({"w": entry("F32", [2.0], 0, 8)}, b"", None, "shape .* not a list of non-negative"),
        ({"w": entry("F32", [True], 0, 4)}, b"", None, "shape .* not a list of non-negative"),
        ({"w": entry("F32", "2", 0, 8)}, b"", None, "shape '2' is not a list"),
        (
            {"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 8]}},
            b"",
            None,
            r"tensor 'w' data_offsets \[0, 4, 8\] is not \[begin, end\]",
        ),
        ({"w": entry("F32", [1], -4, 0)}, b"", None, "data_offsets .* is not"),
        ({"w": entry("F32", [0], 8, 4)}, b"", None, r"tensor 'w' ends \(byte 4\) before it begins"),
        (
            {"w": entry("F32", [3, 2], 0, 12)},
            b"\0" * 12,
            None,
            r"tensor 'w' has 12 bytes but shape \[3, 2\] of F32 needs 24",
        ),
        (
            {"a": entry("F32", [4], 0, 16), "b": entry("F32", [4], 8, 24)},
            b"\0" * 24,
            None,
            r"tensors 'a' and 'b' overlap \(bytes 8-16 of the data section\)",
        ),
        (
            {"a": entry("F32", [4], 0, 16), "b": entry("F32", [4], 32, 48)},
            b"\0" * 48,
            None,
            r"gap between tensors 'a' and 'b' \(bytes 16-32 unaccounted for\)",
        ),
        (
            {"a": entry("F32", [4], 8, 24)},
            b"\0" * 24,
            None,
            r"gap before tensor 'a' \(bytes 0-8 unaccounted for\)",
        ),
        (
            {"a": entry("F32", [4], 0, 16)},
            b"\0" * 20,
            None,
            r"trailing bytes: header says 16 bytes of data, file has 20 \(4 extra\)",
        ),
        ({"a\nb": entry("F64", [1], 0, 4)}, b"\0" * 4, None, r"tensor 'a\\nb' has 4 bytes"),
    ],
)
def test_broken_header_is_refused(
    tmp_path: Path, header: dict[str, Any] | bytes, data: bytes, length: int | None, pattern: str
) -> None:
    refused(build(tmp_path / "x.safetensors", header, data, length=length), pattern)


def test_short_file_named_otherwise_is_refused(tmp_path: Path) -> None:
    # Not recognised by its header, so refused as unknown rather than as a bad safetensors file.
    path = build(tmp_path / "x.bin", {"a": entry("F32", [4], 0, 16)}, b"\0" * 8)
    assert detect_format(path) == "safetensors"  # the header itself is plausible
    refused(path, "truncated: header says 16 bytes of data, file has 8")


SAFETENSORS_DTYPES = [
    np.bool_,
    np.uint8,
    np.int8,
    np.int16,
    np.uint16,
    np.float16,
    np.int32,
    np.uint32,
    np.float32,
    np.float64,
    np.int64,
    np.uint64,
]

random_tensors = st.dictionaries(
    keys=st.text("abcxyz._0123", min_size=1, max_size=12),
    values=st.tuples(
        st.sampled_from(SAFETENSORS_DTYPES),
        st.lists(st.integers(0, 5), max_size=3),
        st.integers(0, 2**32 - 1),
    ),
    min_size=1,
    max_size=6,
)


def _random_arrays(spec: dict[str, Any]) -> dict[str, np.ndarray[Any, Any]]:
    arrays = {}
    for name, (dtype, shape, seed) in spec.items():
        count = int(np.prod(shape)) * np.dtype(dtype).itemsize
        raw = np.random.default_rng(seed).integers(0, 256, count, dtype=np.uint8)
        if dtype is np.bool_:
            raw %= 2
        arrays[name] = raw.view(dtype).reshape(shape)
    return arrays


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=random_tensors, cut_fraction=st.floats(0, 1, exclude_max=True))
def test_random_files_digest_and_any_truncation_is_refused(
    spec: dict[str, Any], cut_fraction: float
) -> None:
    arrays = _random_arrays(spec)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "random.safetensors"
        save_file(arrays, str(path))
        weights = inspect_weights(path)
        assert {t.name: (t.shape, t.length) for t in weights.tensors} == {
            name: (array.shape, array.nbytes) for name, array in arrays.items()
        }
        expected = {
            name: "sha256:" + hashlib.sha256(array.tobytes()).hexdigest()
            for name, array in arrays.items()
        }
        assert tensor_digests(weights) == expected
        assert tensor_digests(weights, chunk_size=3) == expected

        data = path.read_bytes()
        path.write_bytes(data[: int(cut_fraction * len(data))])
        refused(path, "truncated")


@settings(max_examples=150, deadline=None)
@given(position=st.integers(0, 10_000), value=st.integers(0, 255))
def test_any_changed_header_byte_is_checked_not_crashed(position: int, value: int) -> None:
    """A damaged header either still describes a valid file or is refused with FormatError."""
    arrays: dict[str, np.ndarray[Any, Any]] = {
        "a": np.arange(6, dtype=np.float32),
        "b": np.ones((2, 2), dtype=np.float16),
    }
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "x.safetensors"
        save_file(arrays, str(path), metadata={"k": "v"})
        data = bytearray(path.read_bytes())
        (header_length,) = struct.unpack_from("<Q", data)
        data[position % (8 + header_length)] = value
        path.write_bytes(bytes(data))
        try:
            weights = inspect_weights(path)
        except FormatError as exc:
            assert str(exc).startswith("x.safetensors: ") and "\n" not in str(exc)
        else:
            assert sum(t.length for t in weights.tensors) == weights.size - 8 - header_length
