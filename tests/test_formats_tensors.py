"""Per-tensor digests, tensor inventories and their comparison."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

from emeritus.errors import InvalidInput
from emeritus.formats import (
    FormatError,
    TensorHasher,
    TensorInfo,
    compare_inventories,
    inspect_weights,
    tensor_digests,
    tensor_inventory,
)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def arrays(seed: int = 0) -> dict[str, np.ndarray[Any, Any]]:
    rng = np.random.default_rng(seed)
    return {
        "embed": rng.standard_normal((64, 32)).astype(np.float32),
        "norm": rng.standard_normal(32).astype(np.float16),
        "head": rng.standard_normal((10, 32)).astype(np.float32),
        "empty": np.zeros(0, dtype=np.int8),
    }


def save(path: Path, tensors: dict[str, np.ndarray[Any, Any]]) -> Path:
    save_file(tensors, str(path))
    return path


@pytest.fixture
def blob() -> bytes:
    return np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes()


@pytest.fixture
def layout() -> list[TensorInfo]:
    """Tensors with gaps before, between and after them, one empty, two overlapping: the hasher
    does not rely on the format checks."""
    return [
        TensorInfo("a", "U8", (100,), 10, 100),
        TensorInfo("b", "U8", (1000,), 200, 1000),
        TensorInfo("empty", "U8", (0,), 1200, 0),
        TensorInfo("inner", "U8", (50,), 300, 50),
        TensorInfo("last", "U8", (1500,), 1400, 1500),
    ]


def feed(hasher: TensorHasher, data: bytes, chunk: int) -> None:
    for start in range(0, len(data), chunk):
        hasher.update(start, memoryview(data)[start : start + chunk])


@pytest.mark.parametrize("chunk", [1, 7, 100, 1 << 20])
def test_hasher_is_independent_of_chunk_size(
    blob: bytes, layout: list[TensorInfo], chunk: int
) -> None:
    hasher = TensorHasher(layout)
    feed(hasher, blob, chunk)
    assert hasher.digests() == {t.name: sha256(blob[t.offset : t.end]) for t in layout}


def test_hasher_accepts_bytes_and_memoryviews_of_any_format(layout: list[TensorInfo]) -> None:
    words = np.arange(750, dtype=np.uint32)  # 3000 bytes
    hasher = TensorHasher(layout)
    hasher.update(0, words[:300].data)  # a memoryview of 4-byte items
    hasher.update(1200, words[300:].tobytes())
    assert hasher.digests()["b"] == sha256(words.tobytes()[200:1200])


def test_hasher_refuses_chunks_out_of_order(blob: bytes, layout: list[TensorInfo]) -> None:
    hasher = TensorHasher(layout)
    hasher.update(0, blob[:100])
    with pytest.raises(ValueError, match="expected offset 100, got 50"):
        hasher.update(50, blob[50:150])
    with pytest.raises(ValueError, match="expected offset 100, got 200"):
        hasher.update(200, blob[200:300])  # skipping bytes is out of order too


def test_hasher_refuses_incomplete_input(blob: bytes, layout: list[TensorInfo]) -> None:
    hasher = TensorHasher(layout)
    feed(hasher, blob[:2000], 512)
    with pytest.raises(ValueError, match="tensor 'last' is incomplete: 900 bytes not seen"):
        hasher.digests()
    late = TensorHasher(layout)
    late.update(50, blob[50:])  # started inside tensor 'a'
    with pytest.raises(ValueError, match="tensor 'a' is incomplete: 40 bytes"):
        late.digests()


def test_hasher_refuses_duplicate_names() -> None:
    with pytest.raises(ValueError, match="unique"):
        TensorHasher([TensorInfo("a", "U8", (1,), 0, 1), TensorInfo("a", "U8", (1,), 1, 1)])


@pytest.mark.parametrize("chunk_size", [1, 7, 1 << 20, 8 << 20])
def test_tensor_digests_of_a_file(tmp_path: Path, chunk_size: int) -> None:
    tensors = arrays()
    weights = inspect_weights(save(tmp_path / "m.safetensors", tensors))
    assert tensor_digests(weights, chunk_size) == {
        name: sha256(array.tobytes()) for name, array in tensors.items()
    }


def test_tensor_digests_notice_a_changed_file(tmp_path: Path) -> None:
    path = save(tmp_path / "m.safetensors", arrays())
    weights = inspect_weights(path)
    with path.open("ab") as handle:
        handle.write(b"\0")
    with pytest.raises(FormatError, match=r"^m\.safetensors: changed since it was inspected"):
        tensor_digests(weights)
    path.unlink()
    with pytest.raises(FormatError, match="no such file"):
        tensor_digests(weights)


def test_tensor_inventory(tmp_path: Path) -> None:
    weights = inspect_weights(save(tmp_path / "m.safetensors", arrays()))
    digests = tensor_digests(weights)
    inventory = tensor_inventory(weights, digests)
    assert inventory["format"] == 1
    assert inventory["file"] == "m.safetensors" and inventory["file_format"] == "safetensors"
    assert inventory["size"] == weights.size and inventory["metadata"] == weights.metadata
    entries = inventory["tensors"]
    assert [entry["offset"] for entry in entries] == sorted(entry["offset"] for entry in entries)
    assert entries[0].keys() == {"name", "dtype", "shape", "offset", "length", "sha256"}
    assert {entry["name"]: entry["sha256"] for entry in entries} == digests
    # Stored as canonical JSON, and the table read back from it is the file's table.
    stored = json.loads(json.dumps(inventory, sort_keys=True, allow_nan=False))
    assert tuple(TensorInfo.from_dict(entry) for entry in stored["tensors"]) == weights.tensors


def test_tensor_inventory_needs_every_digest(tmp_path: Path) -> None:
    weights = inspect_weights(save(tmp_path / "m.safetensors", arrays()))
    digests = tensor_digests(weights)
    del digests["norm"]
    with pytest.raises(ValueError, match=r"missing \['norm'\]"):
        tensor_inventory(weights, digests)
    with pytest.raises(ValueError, match=r"extra \['ghost'\]"):
        tensor_inventory(weights, {**tensor_digests(weights), "ghost": sha256(b"")})


def _inventory(path: Path) -> dict[str, Any]:
    weights = inspect_weights(path)
    return tensor_inventory(weights, tensor_digests(weights))


def test_compare_files_differing_in_one_tensor(tmp_path: Path) -> None:
    first = arrays()
    second = dict(first, head=first["head"] + 1)
    a = _inventory(save(tmp_path / "a.safetensors", first))
    b = _inventory(save(tmp_path / "b.safetensors", second))
    assert compare_inventories(a, b) == {
        "same": ["embed", "empty", "norm"],
        "changed": ["head"],
        "only_a": [],
        "only_b": [],
    }


def test_compare_added_removed_and_retyped_tensors(tmp_path: Path) -> None:
    first = arrays()
    second = {
        "embed": first["embed"],
        "norm": first["norm"].view(np.int16),  # the same bytes, another dtype: not the same
        "extra": np.ones(3, dtype=np.float32),
    }
    a = _inventory(save(tmp_path / "a.safetensors", first))
    b = _inventory(save(tmp_path / "b.safetensors", second))
    assert compare_inventories(a, b) == {
        "same": ["embed"],
        "changed": ["norm"],
        "only_a": ["empty", "head"],
        "only_b": ["extra"],
    }


def test_damaged_tensor_is_located_from_the_stored_inventory(tmp_path: Path) -> None:
    """What `verify --full` does: re-hash the stored file by its recorded table (its own header
    may be damaged too) and compare with the recorded digests."""
    path = save(tmp_path / "m.safetensors", arrays())
    recorded = _inventory(path)
    table = [TensorInfo.from_dict(entry) for entry in recorded["tensors"]]
    damaged = next(t for t in table if t.name == "embed")
    data = bytearray(path.read_bytes())
    data[damaged.offset + 1000] ^= 0x10
    path.write_bytes(bytes(data))
    hasher = TensorHasher(table)
    hasher.update(0, path.read_bytes())
    digests = hasher.digests()
    found = dict(recorded, tensors=[{**t.to_dict(), "sha256": digests[t.name]} for t in table])
    assert compare_inventories(recorded, found)["changed"] == ["embed"]


def test_compare_refuses_an_unknown_inventory_format() -> None:
    known = {"format": 1, "tensors": []}
    with pytest.raises(InvalidInput, match="tensor inventory format 2 is not supported"):
        compare_inventories(known, {"format": 2, "tensors": []})
