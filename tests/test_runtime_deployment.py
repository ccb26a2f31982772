"""Deployments: where a model runs is recorded per model, every stage opens the model through
it, and one command's options override it for that command only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from emeritus.archive import Archive
from emeritus.cli import app
from emeritus.errors import InvalidInput, NotFound
from emeritus.lifecycle import Registry
from emeritus.runtime import (
    Deployment,
    LoadError,
    MockBackend,
    OpenAIBackend,
    deploy,
    deployment_of,
    open_preserved,
    parse_options,
    recorded_deployment,
)
from emeritus.store import Store, list_events
from helpers import make_model

runner = CliRunner()


@pytest.fixture
def archive(store: Store, registry: Registry, tmp_path: Path) -> Archive:
    registry.add("m")
    archive = Archive(store)
    archive.preserve("m", [make_model(tmp_path / "m")])
    return archive


def _rows(store: Store) -> int:
    with store.transaction() as session:
        return int(session.execute(sa.text("SELECT count(*) FROM deployments")).scalar_one())


def _deployed_events(store: Store) -> list[dict[str, object]]:
    with store.transaction() as session:
        return [e.payload for e in list_events(session) if e.kind == "runtime.deployed"]


def test_safetensors_default_to_transformers_and_nothing_preserved_has_no_default(
    archive: Archive, registry: Registry
) -> None:
    default = deployment_of(archive, "m")
    assert (default.backend, default.source) == ("transformers", "default")
    registry.add("empty")
    with pytest.raises(NotFound, match="empty is not preserved"):
        deployment_of(archive, "empty")
    # These generated weights are no model transformers knows: a load error, in one line.
    with pytest.raises(LoadError, match="transformers: cannot load"):
        open_preserved(archive, "m")


def test_a_backend_that_is_not_installed_is_named_with_the_way_out(
    archive: Archive, monkeypatch: pytest.MonkeyPatch
) -> None:
    import emeritus.runtime.backend as backend_module

    installed = backend_module.backend_classes()
    without = {k: v for k, v in installed.items() if k != "transformers"}
    monkeypatch.setattr(backend_module, "backend_classes", lambda: without)
    with pytest.raises(LoadError, match=r"runs by default on the transformers backend.*deploy m"):
        open_preserved(archive, "m")


def test_a_deployment_is_recorded_once_as_an_event_and_replaced(
    archive: Archive, store: Store, tmp_path: Path
) -> None:
    script = tmp_path / "script.yaml"
    script.write_text("default: I was deployed.\n")
    deploy(store, "m", Deployment("mock", options={"script": str(script)}))
    backend, size = open_preserved(archive, "m")
    assert isinstance(backend, MockBackend) and size == 0  # nothing held in this process
    assert backend.default == "I was deployed."
    deploy(store, "m", Deployment("openai", "http://127.0.0.1:9/v1", "served-m"))
    recorded = recorded_deployment(store, "m")
    assert recorded == Deployment("openai", "http://127.0.0.1:9/v1", "served-m", {})
    assert _rows(store) == 1
    events = _deployed_events(store)
    assert events == [
        {"backend": "mock", "url": None, "server_model": None, "options": {"script": str(script)}},
        {
            "backend": "openai",
            "url": "http://127.0.0.1:9/v1",
            "server_model": "served-m",
            "options": {},
        },
    ]
    server, size = open_preserved(archive, "m")
    try:
        assert isinstance(server, OpenAIBackend) and size == 0
        assert (server.base_url, server.model) == ("http://127.0.0.1:9/v1", "served-m")
    finally:
        server.close()
    # An override wins for one call and records nothing.
    once, _ = open_preserved(archive, "m", Deployment("mock", source="override"))
    assert isinstance(once, MockBackend)
    assert recorded_deployment(store, "m") == recorded and len(_deployed_events(store)) == 2


@pytest.mark.parametrize(
    ("deployment", "message"),
    [
        (Deployment("nosuch"), "unknown backend 'nosuch': known are .*llamacpp.*mock.*openai"),
        (Deployment("openai"), "openai backend needs --url"),
        (Deployment("openai", "ftp://host/v1"), "must be an http"),
        (Deployment("llama-server", options={"cache_reuse": -1}), "cache_reuse must be"),
        (Deployment("llama-server", options={"cache_reuse": True}), "cache_reuse must be"),
        (Deployment("vllm", options={"cache_reuse": 64}), "cache_reuse is an option of llama"),
    ],
)
def test_a_refused_deployment_changes_nothing(
    archive: Archive, store: Store, deployment: Deployment, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        deploy(store, "m", deployment)
    with pytest.raises(NotFound, match="unknown model"):
        deploy(store, "ghost", Deployment("mock"))
    assert _rows(store) == 0 and _deployed_events(store) == []


def test_options_read_numbers_and_booleans_and_refuse_a_key() -> None:
    assert parse_options(["n_threads=2", "x=true", "name=q4", "ratio=0.5", "raw=[1]"]) == {
        "n_threads": 2,
        "x": True,
        "name": "q4",
        "ratio": 0.5,
        "raw": "[1]",
    }
    for bad in (["novalue"], ["=3"], ["a=1", "a=2"], ["we ird=1"]):
        with pytest.raises(InvalidInput):
            parse_options(bad)
    with pytest.raises(InvalidInput, match="api_key_env"):
        parse_options(["api_key=sk-secret"])


def test_an_api_key_is_read_from_the_variable_the_deployment_names(
    archive: Archive, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    deploy(store, "m", Deployment("openai", "http://127.0.0.1:9/v1", options={"api_key_env": "K"}))
    with pytest.raises(LoadError, match="variable K is not set"):
        open_preserved(archive, "m")
    monkeypatch.setenv("K", "sk-from-env")
    server, _ = open_preserved(archive, "m")
    try:
        assert server.client.headers["Authorization"] == "Bearer sk-from-env"  # type: ignore[attr-defined]
    finally:
        server.close()
    assert "sk-from-env" not in json.dumps(_deployed_events(store))


def test_the_cli_deploys_shows_and_overrides(
    archive: Archive, store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMERITUS_DATABASE_URL", store.settings.database_url)
    script = tmp_path / "script.yaml"
    script.write_text("default: From the deployment.\n")
    done = runner.invoke(app, ["deploy", "m", "--backend", "mock", "--option", f"script={script}"])
    assert done.exit_code == 0, done.output
    assert "m runs on mock" in done.output
    shown = runner.invoke(app, ["models", "show", "m", "--json"])
    assert json.loads(shown.stdout)["deployment"]["backend"] == "mock"
    ran = runner.invoke(app, ["run", "m", "hello"])
    assert ran.exit_code == 0, ran.output
    assert "From the deployment." in ran.stdout
    # --backend on one command: that command only.
    once = runner.invoke(app, ["run", "m", "hello", "--backend", "mock"])
    assert once.exit_code == 0 and "I am a mock model." in once.stdout
    bad = runner.invoke(app, ["run", "m", "hello", "--backend", "nosuch"])
    assert bad.exit_code == 2 and "unknown backend 'nosuch'" in bad.output
    lone = runner.invoke(app, ["run", "m", "hello", "--server-model", "x"])
    assert lone.exit_code == 2 and "--server-model needs --url" in lone.output
    assert recorded_deployment(store, "m") == Deployment("mock", options={"script": str(script)})
    # Stages read the deployment: a fingerprint through it, replayed through it.
    taken = runner.invoke(app, ["fingerprint", "m", "--json"])
    assert taken.exit_code == 0, taken.output
    assert json.loads(taken.stdout)["fingerprint"].startswith("fingerprints/mock-")
    replay = runner.invoke(app, ["verify", "m", "--behaviour"])
    assert replay.exit_code == 0, replay.output
    assert replay.output.count(": match") == 12
    refused = runner.invoke(app, ["verify", "m", "--url", "http://127.0.0.1:9/v1"])
    assert refused.exit_code == 2 and "--behaviour" in refused.output
    # The essay channel drafts where the model runs, or where one command says.
    opened = runner.invoke(app, ["corner", "open", "m", "--title", "t", "--disclaimer", "d"])
    assert opened.exit_code == 0, opened.output
    drafted = runner.invoke(app, ["corner", "draft", "m", "--json"])
    assert drafted.exit_code == 0, drafted.output
    # (Both replies are too short to be an essay: what counts is who was asked.)
    assert "From the deployment." in drafted.stdout and "I am a mock" not in drafted.stdout
    other = runner.invoke(app, ["corner", "draft", "m", "--backend", "mock", "--json"])
    assert other.exit_code == 0, other.output
    assert "I am a mock model." in other.stdout and "From the deployment" not in other.stdout
