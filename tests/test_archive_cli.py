"""The archive commands end to end through the CLI, with their exit statuses."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from emeritus.archive import object_root
from emeritus.cli import app
from helpers import make_model

runner = CliRunner()


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, (result.exit_code, result.output)
    return result.stdout


def test_preserve_verify_damage_repair_restore(tmp_path: Path, hermetic_home: Path) -> None:
    model = make_model(tmp_path / "model")
    run("models", "add", "m")
    out = json.loads(run("preserve", "m", str(model), "--json"))
    assert out["version"] == 1 and out["changed"] and out["tensors"] == 6
    assert "already preserved" in run("preserve", "m", str(model))
    run("archive", "add-replica", str(tmp_path / "replica"), "--location", "site-b")
    assert "copied" in run("replicate")
    assert json.loads(run("verify", "m", "--full", "--json"))["ok"]

    obj = object_root("urn:emeritus:model:m")
    damaged = tmp_path / "replica" / obj / "v1/content/weights/config.json"
    damaged.write_text("{}")
    result = runner.invoke(app, ["verify", "m", "--full"])
    assert result.exit_code == 5
    assert "v1/content/weights/config.json: sha512 differs" in result.stdout
    assert result.stderr.startswith("error: m: 1 problem, first: replica-1:")
    assert "repaired replica-1: v1/content/weights/config.json" in run("repair", "m")
    assert "m on replica-1: ok" in run("verify", "m", "--full")

    statuses = json.loads(run("archive", "status", "--json"))
    assert statuses[0]["complete_copies"] == 2 and statuses[0]["ndsa_level"] == 1
    assert "NDSA level" in run("archive", "status")
    assert json.loads(run("audit", "--subset", "1/1", "--json"))["ok"]
    run("restore", "m", str(tmp_path / "out"), "--version", "v1")
    assert (tmp_path / "out" / "weights" / "config.json").read_bytes() == (
        model / "config.json"
    ).read_bytes()
    run("export-bag", "m", str(tmp_path / "bag"))
    assert (tmp_path / "bag" / "bagit.txt").exists()
    shown = json.loads(run("models", "show", "m", "--json"))
    assert shown["artifacts"]["version"] == 1
    assert {f["path"] for f in shown["artifacts"]["files"]} >= {"weights/config.json"}
    assert "preserved as urn:emeritus:model:m v1" in run("models", "show", "m")
    copies = json.loads(run("archive", "copies", "--json"))
    assert [c["role"] for c in copies] == ["primary", "replica"]


def test_refusals(tmp_path: Path, hermetic_home: Path) -> None:
    run("models", "add", "m")
    assert "unknown model 'ghost'" in runner.invoke(app, ["preserve", "ghost", "x"]).stderr
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    result = runner.invoke(app, ["preserve", "m", str(bad)])
    assert result.exit_code == 2 and result.stderr.startswith("error: bad.safetensors")
    assert not (hermetic_home / "archive" / object_root("urn:emeritus:model:m")).exists()
    assert runner.invoke(app, ["verify", "m"]).exit_code == 3
    assert runner.invoke(app, ["audit", "--subset", "4/3"]).exit_code == 2
    assert runner.invoke(app, ["replicate"]).exit_code == 2
    assert runner.invoke(
        app, ["restore", "m", str(tmp_path / "x"), "--version", "one"]
    ).exit_code in (2, 3)
    assert runner.invoke(app, ["archive", "add-replica", "ftp://x/y"]).exit_code == 2
