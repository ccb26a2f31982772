"""Behavioural fingerprints with the real bundled model, run from the archive: a restored model's
canaries match; a perturbed tensor is caught by behaviour and by digests; another runtime is not
comparable."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from emeritus.archive import Archive, verify
from emeritus.cli import app
from emeritus.formats import inspect_weights
from emeritus.lifecycle import Registry
from emeritus.runtime import fingerprint as fp
from emeritus.runtime.llamacpp import LlamaCppBackend
from emeritus.runtime.preserved import (
    fingerprint_model,
    fingerprints,
    open_preserved,
    verify_behaviour,
    weights_entry,
)
from emeritus.store import Settings, Store, list_events
from helpers import bundled_gguf

MODEL = "smollm2-135m-instruct"
runner = CliRunner()


@pytest.fixture
def few_canaries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three canaries instead of twelve, where the test is about the mechanism."""
    monkeypatch.setattr(fp, "CANARIES", fp.CANARIES[:3])


@pytest.fixture
def archive(hermetic_home: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("EMERITUS_THREADS", "1")
    with Store.open(Settings.from_env()) as store:
        Registry(store).add(MODEL)
        archive = Archive(store)
        archive.preserve(MODEL, [bundled_gguf()])
        yield archive


def _open(archive: Archive) -> LlamaCppBackend:
    backend, size = open_preserved(archive, MODEL, n_threads=1, n_ctx=512)
    assert isinstance(backend, LlamaCppBackend) and size == bundled_gguf().stat().st_size
    return backend


def test_runs_from_the_archive_without_a_copy(archive: Archive) -> None:
    backend = _open(archive)
    try:
        content = archive.content_file(MODEL, f"weights/{bundled_gguf().name}")
        assert backend.path == content and str(archive.settings.archive_dir) in str(content)
    finally:
        backend.close()


@pytest.mark.timeout(900)  # the real model on one thread, beside another test
def test_full_fingerprint_then_a_restored_model_matches(archive: Archive, tmp_path: Path) -> None:
    backend = _open(archive)
    try:
        name, version = fingerprint_model(archive, MODEL, backend)
    finally:
        backend.close()
    assert version == 2 and name.startswith("fingerprints/llamacpp-")
    document = json.loads(archive.read_logical(MODEL, name))
    assert len(document["canaries"]) == 12 and document["runtime"]["version"] == "0.3.36"
    assert document["weights_sha256"] == weights_entry(archive, MODEL)["sha256"]
    body = {k: v for k, v in document.items() if k != "digest"}
    assert document["digest"] == fp.digest_of(body)
    # Restore the model elsewhere, load it from the restored file, replay the canaries.
    archive.restore(MODEL, tmp_path / "restored")
    restored = LlamaCppBackend(
        tmp_path / "restored" / "weights" / bundled_gguf().name, n_threads=1, n_ctx=512
    )
    try:
        report = fp.replay(restored, document, name=name)
    finally:
        restored.close()
    assert report.comparable and report.ok, [r for r in report.results if not r.match]


@pytest.mark.timeout(900)  # the real model on one thread, beside another test
@pytest.mark.usefixtures("few_canaries")
def test_a_perturbed_tensor_is_caught_twice(archive: Archive) -> None:
    backend = _open(archive)
    try:
        fingerprint_model(archive, MODEL, backend)
    finally:
        backend.close()
    # Perturb one tensor of the preserved weights in place, as bit rot or tampering would.
    path = archive.content_file(MODEL, f"weights/{bundled_gguf().name}")
    norm = next(t for t in inspect_weights(path).tensors if t.name == "output_norm.weight")
    noise = np.random.default_rng(1).standard_normal(norm.length // 4).astype(np.float32)
    with path.open("r+b") as handle:
        handle.seek(norm.offset)
        handle.write(noise.tobytes())
    damaged = verify(archive, MODEL, full=True)
    assert any("damaged tensors: output_norm.weight" in p.detail for p in damaged.problems)
    backend = _open(archive)
    try:
        [report] = verify_behaviour(archive, MODEL, backend)
    finally:
        backend.close()
    assert report.comparable and not report.ok
    first = next(r for r in report.results if not r.match)
    assert first.first_difference is not None and first.first_difference >= 0


@pytest.mark.usefixtures("few_canaries")
def test_another_runtime_is_not_comparable(archive: Archive) -> None:
    backend = _open(archive)
    try:
        fingerprint_model(archive, MODEL, backend)
        original = backend.describe

        def other_build() -> dict[str, Any]:
            return {**original(), "build_flags": "CPU : AVX512 = 1 |"}

        backend.describe = other_build  # type: ignore[method-assign]
        [report] = verify_behaviour(archive, MODEL, backend)
    finally:
        backend.close()
    assert not report.comparable and "build_flags" in report.reason and not report.results
    with archive.store.transaction() as session:
        kinds = [e.kind for e in list_events(session, subject=f"model:{MODEL}")]
    assert "runtime.fingerprinted" in kinds and "runtime.behaviour_verified" in kinds


@pytest.mark.usefixtures("few_canaries")
def test_cli_run_fingerprint_and_verify_behaviour(archive: Archive) -> None:
    result = runner.invoke(app, ["run", MODEL, "Say hello.", "--max-tokens", "8"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() and "completion tokens" in result.stderr
    result = runner.invoke(app, ["verify", MODEL, "--behaviour"])
    assert result.exit_code == 3 and "no fingerprint" in result.stderr
    assert runner.invoke(app, ["fingerprint", MODEL]).exit_code == 0
    result = runner.invoke(app, ["verify", MODEL, "--behaviour", "--json"])
    assert result.exit_code == 0, result.output
    [report] = json.loads(result.stdout)
    assert report["ok"] and [r["id"] for r in report["results"]] == ["fact", "arithmetic", "code"]
    assert len(fingerprints(archive, MODEL)) == 1


@pytest.mark.usefixtures("few_canaries")
def test_cli_preserve_of_gguf_weights_takes_a_fingerprint(archive: Archive) -> None:
    assert runner.invoke(app, ["models", "add", "again"]).exit_code == 0
    result = runner.invoke(app, ["preserve", "again", str(bundled_gguf()), "--json"])
    assert result.exit_code == 0, result.output
    taken = json.loads(result.stdout)["fingerprint"]
    assert taken and taken.startswith("fingerprints/llamacpp-")
    assert list(fingerprints(archive, "again")) == [taken]
