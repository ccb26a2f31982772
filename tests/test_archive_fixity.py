"""Deliberately broken archives: every mutation of every file of an object, on the primary and
on a replica, is caught by a full verify naming the file, and repaired from the other copy."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from emeritus.archive import Archive, audit, object_root, repair_copies, replicate, status, verify
from emeritus.errors import IntegrityError
from emeritus.lifecycle import Registry
from emeritus.store import Store, list_events
from helpers import make_model, ocfl_errors

MODEL = "m"


@pytest.fixture
def archive(store: Store, tmp_path: Path) -> Archive:
    archive = Archive(store)
    Registry(store).add(MODEL)
    archive.preserve(MODEL, [make_model(tmp_path / "model")])
    archive.add_files(
        MODEL, {"fingerprints/canaries.json": b'{"canaries": 12}\n'}, message="fingerprint"
    )
    archive.add_replica(str(tmp_path / "replica"), name="replica", location="site-b")
    replicate(archive)
    return archive


def _object(archive: Archive, copy: str) -> Path:
    root = (
        archive.settings.archive_dir
        if copy == "primary"
        else archive.settings.home.parent / "replica"
    )
    return root / object_root(f"urn:emeritus:model:{MODEL}")


def _files(obj: Path) -> list[str]:
    return sorted(p.relative_to(obj).as_posix() for p in obj.rglob("*") if p.is_file())


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _edit_inventory(path: Path) -> None:
    path.write_text(
        path.read_text().replace('"fingerprint"', '"edited"').replace('"preserve m"', '"edited"')
    )


MUTATIONS: dict[str, tuple[Callable[[Path], None], Callable[[str], bool]]] = {
    "bit flip": (_flip, lambda name: True),
    "truncation": (_truncate, lambda name: True),
    "deletion": (lambda p: p.unlink(), lambda name: True),
    "edited inventory": (_edit_inventory, lambda name: name.endswith("inventory.json")),
    "deleted sidecar": (lambda p: p.unlink(), lambda name: name.endswith(".sha512")),
}


@pytest.mark.parametrize("copy", ["primary", "replica"])
@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_every_mutation_is_caught_and_repaired(archive: Archive, copy: str, mutation: str) -> None:
    mutate, applies = MUTATIONS[mutation]
    obj = _object(archive, copy)
    targets = [f for f in _files(obj) if applies(f)]
    assert len(targets) >= 2
    for name in targets:
        mutate(obj / name)
        report = verify(archive, MODEL, full=True)
        assert not report.ok, f"{mutation} of {name} on {copy} went unnoticed"
        assert {(p.copy, p.path) for p in report.problems} >= {(copy, name)}, report.problems
        fixed = repair_copies(archive, MODEL)
        assert (copy, name) in {(p.copy, p.path) for p in fixed.fixed}
        assert verify(archive, MODEL, full=True).ok, f"{mutation} of {name} not repaired"
        assert ocfl_errors(obj) == []


@pytest.mark.parametrize("copy", ["primary", "replica"])
def test_stray_files_are_found_and_removed(archive: Archive, copy: str) -> None:
    obj = _object(archive, copy)
    for folder in ("", "v1/", "v2/content/"):
        (obj / f"{folder}stray.bin").write_bytes(b"not mine")
        report = verify(archive, MODEL)  # structure alone finds it
        assert [(p.path, p.kind) for p in report.problems] == [(f"{folder}stray.bin", "stray")]
        repair_copies(archive, MODEL)
        assert not (obj / f"{folder}stray.bin").exists()
        assert ocfl_errors(obj) == []


def test_damage_is_located_to_the_tensor(archive: Archive) -> None:
    obj = _object(archive, "primary")
    shard = obj / "v1/content/weights/model-00001-of-00002.safetensors"
    data = bytearray(shard.read_bytes())
    data[-10] ^= 0xFF  # inside the last tensor of the shard
    shard.write_bytes(bytes(data))
    [problem] = verify(archive, MODEL, full=True).problems
    assert problem.kind == "damaged"
    assert "damaged tensors: layers.1.2.weight" in problem.detail


def test_damage_on_every_copy_cannot_be_repaired(archive: Archive) -> None:
    name = "v1/content/weights/config.json"
    for copy in ("primary", "replica"):
        _flip(_object(archive, copy) / name)
    with pytest.raises(IntegrityError, match="could not repair"):
        repair_copies(archive, MODEL)
    primary = _object(archive, "primary") / name
    assert primary.exists()  # nothing was made worse


def test_a_lost_replica_is_rebuilt(archive: Archive, tmp_path: Path) -> None:
    import shutil

    shutil.rmtree(_object(archive, "replica"))
    report = verify(archive, MODEL)
    assert [p.detail for p in report.problems] == [
        "object not on this copy (run emeritus replicate)"
    ]
    [again] = replicate(archive)
    assert again.files and verify(archive, MODEL, full=True).ok
    assert ocfl_errors(_object(archive, "replica")) == []


def test_a_replica_behind_is_reported_as_behind(archive: Archive) -> None:
    archive.add_files(MODEL, {"reports/report.md": b"# report\n"}, message="report")
    [problem] = verify(archive, MODEL).problems
    assert (problem.copy, problem.kind) == ("replica", "behind")
    assert "holds v2, the archive is at v3" in problem.detail
    replicate(archive)
    assert verify(archive, MODEL, full=True).ok


def test_events_record_checks_replication_and_repair(archive: Archive, store: Store) -> None:
    _flip(_object(archive, "replica") / "v2/content/fingerprints/canaries.json")
    repair_copies(archive, MODEL)
    with store.transaction() as session:
        kinds = [e.kind for e in list_events(session, subject=f"model:{MODEL}")]
    assert kinds.count("archive.ingested") == 2
    assert "archive.replicated" in kinds and "archive.repaired" in kinds
    assert "archive.fixity_checked" in kinds


def test_ndsa_levels(store: Store, tmp_path: Path) -> None:
    archive = Archive(store)
    Registry(store).add(MODEL)
    archive.preserve(MODEL, [make_model(tmp_path / "model")])
    [alone] = status(archive)
    assert alone.ndsa_level == 0 and alone.complete_copies == 1
    archive.add_replica(str(tmp_path / "r1"), location="local")
    replicate(archive)
    assert status(archive)[0].ndsa_level == 1
    archive.add_replica(str(tmp_path / "r2"), location="site-b")
    replicate(archive)
    assert status(archive)[0].ndsa_level == 2
    verify(archive, MODEL, full=True)
    assert status(archive)[0].ndsa_level == 3
    archive.add_replica(str(tmp_path / "r3"), location="site-c")
    replicate(archive)
    verify(archive, MODEL, full=True)
    [best] = status(archive)
    assert best.ndsa_level == 4 and best.complete_copies == 4 and best.last_full_check_at
    _flip(
        tmp_path
        / "r3"
        / object_root(f"urn:emeritus:model:{MODEL}")
        / "v1/content/weights/config.json"
    )
    verify(archive, MODEL, full=True)
    [damaged] = status(archive)  # the damaged copy no longer counts: three left, two locations
    assert damaged.complete_copies == 3 and damaged.ndsa_level == 3


def test_audit_slices_cover_everything_once(archive: Archive, tmp_path: Path) -> None:
    Registry(archive.store).add("other")
    archive.preserve("other", [make_model(tmp_path / "other", seed=5)])
    replicate(archive)
    seen: list[tuple[str, str]] = []
    for n in (1, 2, 3):
        seen += [(r.model, r.copies[0].copy) for r in audit(archive, subset=(n, 3))]
    assert sorted(seen) == sorted((m, c) for m in (MODEL, "other") for c in ("primary", "replica"))
    _flip(_object(archive, "replica") / "v1/content/weights/README.md")
    bad = [r for r in audit(archive) if not r.ok]
    assert [(r.model, r.copies[0].copy) for r in bad] == [(MODEL, "replica")]
