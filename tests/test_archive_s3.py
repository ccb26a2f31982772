"""An S3 replica (a real S3 server, moto): replication, full checks, and repair both ways."""

from __future__ import annotations

from pathlib import Path

from emeritus.archive import Archive, object_root, open_storage, repair_copies, replicate, verify
from emeritus.lifecycle import Registry
from emeritus.store import Store
from helpers import make_model, ocfl_errors

MODEL = "m"


def test_s3_replica_round_trip(store: Store, tmp_path: Path, s3_url: str) -> None:
    archive = Archive(store)
    Registry(store).add(MODEL)
    archive.preserve(MODEL, [make_model(tmp_path / "model")])
    archive.add_replica(s3_url, name="bucket", location="region-b")
    [copied] = replicate(archive)
    assert copied.copy == "bucket" and copied.bytes > 0
    report = verify(archive, MODEL, full=True)
    assert report.ok, report.problems
    obj = object_root(f"urn:emeritus:model:{MODEL}")
    s3 = open_storage(s3_url)
    assert ocfl_errors(f"{s3_url}/{obj}") == []  # ocfl-py reads the bucket itself
    assert s3.exists("0=ocfl_1.1")

    # Damage in the bucket is repaired from the primary ...
    shard = f"{obj}/v1/content/weights/model-00002-of-00002.safetensors"
    data = bytearray(s3.read_bytes(shard))
    data[100] ^= 0x01
    s3.write_bytes(shard, bytes(data))
    assert any("E092" in e for e in ocfl_errors(f"{s3_url}/{obj}"))  # it sees the damage too
    s3.delete(f"{obj}/inventory.json.sha512")
    problems = {(p.copy, p.path) for p in verify(archive, MODEL, full=True).problems}
    assert problems == {
        ("bucket", shard.removeprefix(obj + "/")),
        ("bucket", "inventory.json.sha512"),
    }
    repair_copies(archive, MODEL)
    assert verify(archive, MODEL, full=True).ok

    # ... and damage on the primary from the bucket.
    local = archive.settings.archive_dir / obj / "v1/content/weights/config.json"
    local.write_text("{}")
    fixed = repair_copies(archive, MODEL)
    assert [(p.copy, p.kind) for p in fixed.fixed] == [("primary", "damaged")]
    assert verify(archive, MODEL, full=True).ok
    assert ocfl_errors(archive.settings.archive_dir / obj) == []

    # Already level: nothing to copy.
    assert replicate(archive)[0].files == []
