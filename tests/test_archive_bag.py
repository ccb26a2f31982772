"""BagIt export: a preserved version as a bag any BagIt tool validates."""

from __future__ import annotations

import hashlib
from pathlib import Path

import bagit
import pytest

from emeritus.archive import Archive, export_bag
from emeritus.errors import Conflict
from emeritus.lifecycle import Registry
from emeritus.store import Store
from helpers import make_model


def test_export_a_valid_bag(store: Store, tmp_path: Path) -> None:
    archive = Archive(store)
    model = make_model(tmp_path / "model")
    Registry(store).add("m")
    archive.preserve("m", [model])
    dest = export_bag(archive, "m", tmp_path / "bag")
    bag = bagit.Bag(str(dest))
    bag.validate(fast=False)
    assert set(bag.algorithms) == {"sha256", "sha512"}
    assert bag.info["External-Identifier"] == "urn:emeritus:model:m"
    shard = "model-00001-of-00002.safetensors"
    payload = dest / "data" / "weights" / shard
    assert (
        hashlib.sha256(payload.read_bytes()).digest()
        == hashlib.sha256((model / shard).read_bytes()).digest()
    )
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bag")]
    payload.write_bytes(b"tampered")
    with pytest.raises(bagit.BagValidationError):
        bagit.Bag(str(dest)).validate(fast=False)
    with pytest.raises(Conflict, match="not empty"):
        export_bag(archive, "m", dest)
