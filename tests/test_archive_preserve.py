"""Preserving models as OCFL objects: layout, digests, versions, deduplication, refusals,
restore; every object checked by ocfl-py."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from emeritus.archive import (
    ARCHIVE_OWN_OBJECTS,
    CHECKPOINTS_OBJECT,
    Anchor,
    Archive,
    Inventory,
    object_root,
)
from emeritus.errors import Conflict, IntegrityError, InvalidInput, NotFound
from emeritus.lifecycle import Registry
from emeritus.store import Store, list_events
from helpers import bundled_gguf, make_model, ocfl_errors


@pytest.fixture
def archive(store: Store) -> Archive:
    """An archive whose registry knows the models the tests preserve."""
    registry = Registry(store)
    for name in ("m", "n", "smollm2"):
        registry.add(name)
    return Archive(store)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _object_dir(archive: Archive, model: str) -> Path:
    return archive.settings.archive_dir / object_root(f"urn:emeritus:model:{model}")


def _inventory(archive: Archive, model: str) -> Inventory:
    return Inventory.from_bytes((_object_dir(archive, model) / "inventory.json").read_bytes())


def test_preserve_the_bundled_gguf(archive: Archive, store: Store, tmp_path: Path) -> None:
    gguf = bundled_gguf()
    result = archive.preserve("smollm2", [gguf])
    assert result.changed and result.version == 1 and result.formats == {"gguf": 1}
    assert result.tensors > 100 and result.bytes_read == gguf.stat().st_size
    obj = _object_dir(archive, "smollm2")
    assert ocfl_errors(obj) == []
    content = obj / "v1" / "content" / "weights" / gguf.name
    assert _sha256(content) == _sha256(gguf)
    inventory = _inventory(archive, "smollm2")
    assert inventory.id == "urn:emeritus:model:smollm2"
    assert inventory.sha256_of()[f"v1/content/weights/{gguf.name}"] == _sha256(gguf)
    described = json.loads((obj / "v1/content/emeritus/object.json").read_text())
    [weights] = [f for f in described["files"] if f["role"] == "weights"]
    assert weights["format"] == "gguf" and weights["metadata"]["general.architecture"] == "llama"
    assert weights["sha256"] == f"sha256:{_sha256(gguf)}"
    tensors = json.loads((obj / f"v1/content/emeritus/tensors/{gguf.name}.json").read_text())
    assert len(tensors["tensors"]) == result.tensors
    with store.transaction() as session:
        [event] = list_events(session, kind="archive.ingested")
    assert event.payload["version"] == 1 and event.subject == "model:smollm2"
    restored = archive.restore("smollm2", tmp_path / "restored")
    assert _sha256(tmp_path / "restored" / "weights" / gguf.name) == _sha256(gguf)
    assert len(restored) == 3


def test_storage_root_is_declared(archive: Archive, tmp_path: Path) -> None:
    archive.preserve("m", [make_model(tmp_path / "m")])
    root = archive.settings.archive_dir
    assert (root / "0=ocfl_1.1").read_text() == "ocfl_1.1\n"
    layout = json.loads((root / "ocfl_layout.json").read_text())
    assert layout["extension"] == "0004-hashed-n-tuple-storage-layout"
    digest = hashlib.sha256(b"urn:emeritus:model:m").hexdigest()
    assert _object_dir(archive, "m") == root / digest[:3] / digest[3:6] / digest[6:9] / digest
    assert not list((root / "extensions" / "emeritus-staging").iterdir())


def test_model_directory_roles_and_deduplication(archive: Archive, tmp_path: Path) -> None:
    model = make_model(tmp_path / "model")
    (model / "LICENSE").write_text("# test model\n")  # same bytes as README.md
    archive.preserve("m", [model])
    inventory = _inventory(archive, "m")
    state = inventory.head_state()
    assert state["weights/LICENSE"] == state["weights/README.md"]
    assert len(inventory.manifest[state["weights/README.md"]]) == 1  # stored once
    described = json.loads(archive.read_logical("m", "emeritus/object.json"))
    roles = {f["path"]: f["role"] for f in described["files"]}
    assert (
        roles["weights/config.json"] == "config" and roles["weights/tokenizer.json"] == "tokenizer"
    )
    assert roles["weights/model-00001-of-00002.safetensors"] == "weights"
    assert ocfl_errors(_object_dir(archive, "m")) == []


def test_rerun_changes_nothing_and_additions_make_a_version(
    archive: Archive, tmp_path: Path
) -> None:
    model = make_model(tmp_path / "model")
    archive.preserve("m", [model])
    obj = _object_dir(archive, "m")
    v1 = {p: p.read_bytes() for p in (obj / "v1").rglob("*") if p.is_file()}
    again = archive.preserve("m", [model])
    assert not again.changed and again.version == 1
    card = tmp_path / "MODEL_CARD.md"
    card.write_text("A card written later.\n")
    added = archive.preserve("m", [card])
    assert added.changed and added.version == 2
    assert {p: p.read_bytes() for p in (obj / "v1").rglob("*") if p.is_file()} == v1
    new_content = sorted(
        p.relative_to(obj / "v2").as_posix()
        for p in (obj / "v2" / "content").rglob("*")
        if p.is_file()
    )
    assert new_content == ["content/emeritus/object.json", "content/weights/MODEL_CARD.md"]
    state = _inventory(archive, "m").head_state()
    assert "weights/model-00001-of-00002.safetensors" in state and "weights/MODEL_CARD.md" in state
    assert ocfl_errors(obj) == []
    assert archive.object("m").head == 2


def test_other_weights_under_the_same_name_are_refused(archive: Archive, tmp_path: Path) -> None:
    archive.preserve("m", [make_model(tmp_path / "a", seed=1)])
    with pytest.raises(Conflict, match="already preserved with other weights"):
        archive.preserve("m", [make_model(tmp_path / "b", seed=2)])
    assert _inventory(archive, "m").head == 1
    assert not list((archive.settings.archive_dir / "extensions/emeritus-staging").iterdir())


@pytest.mark.parametrize("cut", [4, 40, -1])
def test_a_malformed_file_is_refused_and_nothing_written(
    archive: Archive, tmp_path: Path, cut: int
) -> None:
    model = make_model(tmp_path / "model")
    shard = model / "model-00002-of-00002.safetensors"
    shard.write_bytes(shard.read_bytes()[:cut])
    with pytest.raises(InvalidInput, match=r"model-00002-of-00002\.safetensors"):
        archive.preserve("m", [model])
    assert not _object_dir(archive, "m").exists()
    with pytest.raises(NotFound):
        archive.object("m")


def test_only_registered_models_are_preserved(store: Store, tmp_path: Path) -> None:
    """The archive asks the registry: an unregistered name is refused before any file is read,
    and nothing is written. Its own objects (event-log checkpoints) are not models."""
    archive = Archive(store)
    with store.transaction() as session:
        before = len(list_events(session))
    with pytest.raises(NotFound, match="unknown model 'ghost'"):
        archive.preserve("ghost", [make_model(tmp_path / "model")])
    assert not _object_dir(archive, "ghost").exists()
    assert archive.objects() == []
    with store.transaction() as session:
        assert len(list_events(session)) == before
    Anchor(archive).take()
    assert [o.model for o in archive.objects()] == [CHECKPOINTS_OBJECT]
    assert CHECKPOINTS_OBJECT in ARCHIVE_OWN_OBJECTS


def test_bad_inputs(archive: Archive, tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such file"):
        archive.preserve("m", [tmp_path / "missing.gguf"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match="nothing to preserve"):
        archive.preserve("m", [tmp_path / "empty"])
    model = make_model(tmp_path / "model")
    (model / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(InvalidInput, match="names shards that are not given"):
        archive.preserve("m", [model])
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        folder.mkdir()
        (folder / "config.json").write_text("{}")
    with pytest.raises(InvalidInput, match=r"two files would be preserved as 'config\.json'"):
        archive.preserve("m", [a / "config.json", b / "config.json"])


def test_add_files_and_restore_older_versions(archive: Archive, tmp_path: Path) -> None:
    archive.preserve("m", [make_model(tmp_path / "model")])
    version = archive.add_files(
        "m", {"fingerprints/canaries.json": b'{"digest": "x"}'}, message="behavioural fingerprint"
    )
    assert version == 2
    assert archive.read_logical("m", "fingerprints/canaries.json") == b'{"digest": "x"}'
    archive.restore("m", tmp_path / "v1", version=1)
    assert not (tmp_path / "v1" / "fingerprints").exists()
    with pytest.raises(NotFound, match="no version v9"):
        archive.restore("m", tmp_path / "v9", version=9)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(Conflict, match="not empty"):
        archive.restore("m", tmp_path / "busy")
    with pytest.raises(InvalidInput):
        archive.add_files("m", {"../escape": b"x"}, message="bad")
    assert ocfl_errors(_object_dir(archive, "m")) == []


def test_a_newer_archive_format_is_refused(archive: Archive, tmp_path: Path) -> None:
    archive.preserve("m", [make_model(tmp_path / "model")])
    config = archive.settings.archive_dir / "extensions" / "emeritus-archive" / "config.json"
    config.write_text(json.dumps({"extensionName": "emeritus-archive", "format": 2}))
    with pytest.raises(IntegrityError, match="archive format 2"):
        archive.preserve("n", [make_model(tmp_path / "other", seed=3)])
