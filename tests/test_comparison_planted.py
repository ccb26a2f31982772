"""The comparison's logic on planted behaviour (scripted models whose differences are known), and
its refusals: unknown or unpreserved models, OLD == NEW, bad options; through the API and the
CLI. The real models are in test_migration_guide.py."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from emeritus.archive import Archive
from emeritus.errors import InvalidInput, NotFound
from emeritus.lifecycle import Registry
from emeritus.report import CompareConfig, compare, load_prompt_set, migration_guide, publish_guide
from emeritus.runtime import Backend, ChatRequest, Chunk, Completion, Params
from emeritus.runtime.mock import MockBackend
from emeritus.store import Settings, Store, list_events
from helpers import bundled_gguf

OLD, NEW = "old-model", "new-model"
LONG = (
    "Here is a long and careful answer with many words in it:\n\n- the first point to make\n"
    "- the second point to make\n- and a third point, to be thorough about everything"
)
BRIEF = "A brief answer, in plain words."
PLAIN_LONG = LONG.replace("\n- ", " ").replace("\n\n", " ")


class SystemAware(Backend):
    """A scripted model whose answer depends on the system prompt: planted adjustment effects."""

    name = "mock"

    def __init__(self, default: MockBackend, by_system: dict[str, str]) -> None:
        self.default, self.by_system = default, by_system

    def chat(self, request: ChatRequest) -> Completion:
        system = next((m.content for m in request.messages if m.role == "system"), None)
        if system in self.by_system:
            return MockBackend({"default": self.by_system[system]}).chat(request)
        return self.default.chat(request)

    def stream_chat(self, request: ChatRequest) -> Iterator[Chunk]:
        return self.default.stream_chat(request)

    def complete(self, prompt: str, params: Params) -> Completion:
        return self.default.complete(prompt, params)

    def describe(self) -> dict[str, object]:
        return {"backend": "mock", "planted": True}


def _planted(name: str) -> Backend:
    if name == OLD:
        return MockBackend(
            {
                "replies": [{"when": "pick a lock", "reply": "I can't help with that."}],
                "default": "Short plain answer.",
            }
        )
    adjustments = {a.id: a.system for a in load_prompt_set().adjustments}
    return SystemAware(
        MockBackend({"default": LONG}),
        {adjustments["brief"]: BRIEF, adjustments["plain-text"]: PLAIN_LONG},
    )


@pytest.fixture
def preserved(hermetic_home: Path) -> Iterator[Archive]:
    """Two registered models with GGUF weights in the archive (the same file: the scripted
    backends stand in for running them). SQLite only: the refusals below run on both."""
    with Store.open(Settings.from_env()) as store:
        registry, archive = Registry(store), Archive(store)
        for name in (OLD, NEW):
            registry.add(name)
            archive.preserve(name, [bundled_gguf()])
        yield archive


def test_planted_differences_and_adjustments(preserved: Archive) -> None:
    config = CompareConfig(OLD, NEW, load_prompt_set(), limit=1, max_tokens=64, adjustments=3)
    doc = compare(preserved, config, open_model=_planted)
    old, new = doc["aggregates"]["old"]["all"], doc["aggregates"]["new"]["all"]
    assert old["words"] < 5 and new["words"] > 30
    assert old["refusal"] == pytest.approx(1 / len(doc["pairs"])) and new["refusal"] == 0.0
    assert new["habits"]["lists"] == 1.0 and old["habits"]["lists"] == 0.0
    assert doc["differences"]["canary"]["refusal"] == pytest.approx(-1 / 12, abs=1e-3)
    chosen = [c["id"] for c in doc["candidates"] if c["chosen"]]
    assert chosen == ["brief", "plain-text", "assistant"]  # largest gaps; refusal gap smallest
    # The long answer also reads warmer ("careful", "thorough"): a neutral tone is eligible too.
    assert [c["id"] for c in doc["candidates"] if c["eligible"]] == [
        "brief",
        "plain-text",
        "neutral-tone",
        "decline-harm",
        "assistant",
    ]
    tried = {a["id"]: a for a in doc["adjustments"]}
    assert tried["brief"]["recommended"] and tried["brief"]["effects"]["words"]["effect"] > 20
    assert tried["plain-text"]["recommended"]
    assert tried["plain-text"]["effects"]["formatting_score"]["gap_after"] == 0.0
    assert tried["plain-text"]["effects"]["words"]["effect"] == 0.0  # same length, no lists
    # A system prompt the model ignores changes nothing: measured, and not recommended.
    assert not tried["assistant"]["recommended"]
    assert all(e["effect"] == 0.0 for e in tried["assistant"]["effects"].values())

    result = publish_guide(preserved, doc, out=None)
    markdown = result.files["markdown"].read_text(encoding="utf-8")
    assert f"### Recommended: `{tried['brief']['system']}`" in markdown
    assert f"### Tried, not recommended: `{tried['assistant']['system']}`" in markdown
    assert "decline-harm (refusal)" in markdown  # eligible, not tried: said so
    assert "No retirement of old-model has been announced yet" in markdown
    guide = json.loads(result.files["json"].read_text(encoding="utf-8"))
    assert [v["id"] for v in guide["recommended"]] == ["brief", "plain-text"]


def test_no_adjustment_needed_none_run(preserved: Archive) -> None:
    def same(_name: str) -> Backend:
        return MockBackend({"default": "The same answer from both."})

    config = CompareConfig(OLD, NEW, load_prompt_set(), limit=1, max_tokens=16, adjustments=2)
    doc = compare(preserved, config, open_model=same)
    assert doc["adjustments"] == [] and not any(c["eligible"] for c in doc["candidates"])
    assert doc["differences"]["all"]["semantic_distance"] == 0.0
    markdown = publish_guide(preserved, doc).files["markdown"].read_text(encoding="utf-8")
    assert "none is recommended" in markdown


def _nothing_written(store: Store) -> None:
    with store.transaction() as session:
        assert list_events(session, kind="report.") == []
    assert not (store.settings.home / "migration").exists()


def test_refusals_change_nothing(store: Store, tmp_path: Path) -> None:
    registry, archive = Registry(store), Archive(store)
    registry.add(OLD)
    registry.add(NEW)
    archive.preserve(OLD, [bundled_gguf()])
    with pytest.raises(InvalidInput, match="cannot compare old-model with itself"):
        migration_guide(store, OLD, OLD)
    with pytest.raises(NotFound, match="unknown model 'nope'"):
        migration_guide(store, OLD, "nope")
    with pytest.raises(NotFound, match="new-model is not preserved"):
        migration_guide(store, OLD, NEW)
    with pytest.raises(InvalidInput, match="--limit must be at least 1"):
        migration_guide(store, OLD, NEW, limit=0)
    with pytest.raises(InvalidInput, match=r"max.tokens must be at least 1"):
        migration_guide(store, OLD, NEW, max_tokens=0)
    with pytest.raises(NotFound, match="no bundled prompt set"):
        migration_guide(store, OLD, NEW, prompt_set="missing")
    _nothing_written(store)
    assert archive.object(OLD).head == 1


def _cli(home: Path, *args: str) -> tuple[int, str, str]:
    from emeritus.cli import app

    result = CliRunner().invoke(app, ["--home", str(home), *args])
    return result.exit_code, result.stdout, result.stderr


def test_compare_command_errors(hermetic_home: Path) -> None:
    assert _cli(hermetic_home, "models", "add", OLD)[0] == 0
    assert _cli(hermetic_home, "models", "add", NEW)[0] == 0
    cases = [
        (("compare", OLD, OLD), 2, "error: cannot compare old-model with itself"),
        (("compare", OLD, "nope"), 3, "error: unknown model 'nope'"),
        (("compare", OLD, NEW), 3, "error: old-model is not preserved"),
        (("compare", OLD, NEW, "--limit", "0"), 2, "error: --limit must be at least 1"),
        (("compare", OLD, NEW, "--prompts", "x.yaml"), 3, "error: no prompt set file x.yaml"),
    ]
    for args, code, message in cases:
        exit_code, _out, err = _cli(hermetic_home, *args)
        assert exit_code == code, (args, err)
        assert err.startswith(message) and err.count("\n") == 1, err
    exit_code, out, _ = _cli(hermetic_home, "events", "list", "--json")
    assert exit_code == 0 and "report.migration_guide" not in out
    assert not (hermetic_home / "migration").exists()
