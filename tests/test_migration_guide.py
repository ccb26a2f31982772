"""The migration guide with the real bundled models: SmolLM2-135M-Instruct retiring in favour of
Gemma-3-270m, compared on a small run; the guide archived, recorded, rendered, and opened in
Debian's chromium."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from browser import check_page
from emeritus.archive import Archive
from emeritus.lifecycle import Availability, Registry
from emeritus.report import CompareConfig, GuideResult, compare, load_prompt_set, publish_guide
from emeritus.runtime import Backend
from emeritus.runtime.bundled import BUNDLED
from emeritus.runtime.canaries import CANARIES
from emeritus.runtime.preserved import open_preserved, weights_entry
from emeritus.store import Settings, Store, list_events, sha256_digest, utc_now, verify_chain

OLD, NEW = "smollm2-135m-instruct", "gemma-3-270m"
LIMIT, MAX_TOKENS, ADJUSTMENTS = 1, 16, 1
pytestmark = pytest.mark.timeout(900)


@dataclass(frozen=True)
class Compared:
    settings: Settings
    comparison: dict[str, Any]
    result: GuideResult


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Compared]:
    """Both bundled models preserved, OLD deprecated with NEW as successor, one small comparison
    and its guide (module-scoped: the models run once for every test here)."""
    home = tmp_path_factory.mktemp("guide-home")
    settings = Settings(home=home, database_url=f"sqlite:///{home}/emeritus.db", actor="tester")
    with Store.open(settings) as store:
        registry, archive = Registry(store), Archive(store)
        for spec in BUNDLED:
            registry.add(spec.name, family=spec.family, version=spec.version)
            with tempfile.TemporaryDirectory() as scratch:
                archive.preserve(spec.name, [spec.locate(Path(scratch))])
        now = utc_now()
        registry.deprecate(
            OLD,
            retire_at=now + timedelta(days=90),
            successor=NEW,
            availability_after=Availability.RESTRICTED,
            now=now,
        )

        def opener(name: str) -> Backend:
            return open_preserved(archive, name, n_threads=1, n_ctx=512)[0]

        config = CompareConfig(
            OLD,
            NEW,
            load_prompt_set(),
            limit=LIMIT,
            max_tokens=MAX_TOKENS,
            adjustments=ADJUSTMENTS,
        )
        comparison = compare(archive, config, open_model=opener)
        result = publish_guide(archive, comparison)
    yield Compared(settings, comparison, result)


def test_the_bundled_models_compared(compared: Compared) -> None:
    doc = compared.comparison
    categories = ["writing", "advice", "coding", "conversation", "canary"]
    assert doc["prompt_set"]["id"] == "standard@1" and doc["prompt_set"]["categories"] == categories
    assert len(doc["pairs"]) == 4 * LIMIT + len(CANARIES)
    formats = {p["new"]["prompt_format"] for p in doc["pairs"]}
    assert formats == {"transcript"}  # Gemma is a base model: prompted as a transcript
    assert all(p["old"]["prompt_format"].startswith("chat-template:") for p in doc["pairs"])
    assert all(p["old"]["metrics"]["tokens"] <= MAX_TOKENS for p in doc["pairs"])
    assert any(p["old"]["text"] != p["new"]["text"] for p in doc["pairs"])
    assert all(0.0 <= p["semantic_distance"] <= 1.0 for p in doc["pairs"])
    with Store.open(compared.settings) as store:
        archive = Archive(store)
        for side, model in (("old", OLD), ("new", NEW)):
            assert doc[side]["weights_sha256"] == weights_entry(archive, model)["sha256"]
            assert doc[side]["runtime"]["backend"] == "llamacpp"
            assert doc[side]["runtime"]["threads"] == 1
    assert doc["params"] == {"max_tokens": MAX_TOKENS, "temperature": 0.0, "seed": 0}
    assert set(doc["aggregates"]["new"]) == {*categories, "all"}
    assert doc["aggregates"]["old"]["all"]["n"] == len(doc["pairs"])
    assert doc["aggregates"]["old"]["all"]["semantic_distance"] == 0.0
    assert doc["seconds"]["total"] >= doc["seconds"]["old"] > 0


def test_adjustments_are_checked_by_running_them(compared: Compared) -> None:
    doc = compared.comparison
    chosen = [c for c in doc["candidates"] if c["chosen"]]
    assert len(chosen) == len(doc["adjustments"]) <= ADJUSTMENTS
    assert all(c["eligible"] for c in chosen)
    for adjustment in doc["adjustments"]:
        effect = adjustment["effects"][adjustment["metric"]]
        assert adjustment["recommended"] == (effect["effect"] > 0)
        assert effect["gap_before"] == pytest.approx(
            abs(
                doc["aggregates"]["new"]["all"][adjustment["metric"]]
                - doc["aggregates"]["old"]["all"][adjustment["metric"]]
            ),
            abs=1e-3,
        )
        assert len(adjustment["answers"]) == len(doc["pairs"])
        # The system prompt reached the model: at least one answer changed.
        new_texts = [p["new"]["text"] for p in doc["pairs"]]
        assert [a["text"] for a in adjustment["answers"]] != new_texts


def test_the_guide_is_archived_and_recorded(compared: Compared) -> None:
    result = compared.result
    with Store.open(compared.settings) as store:
        archive = Archive(store)
        assert archive.object(OLD).head == result.version == 2
        base = f"migration/{result.run_id}"
        for kind, path in result.files.items():
            logical = f"{base}/{path.name}"
            assert archive.read_logical(OLD, logical) == path.read_bytes(), kind
        with store.transaction() as session:
            [event] = list_events(session, kind="report.migration_guide")
            assert verify_chain(session).ok
    assert event.subject == f"model:{OLD}"
    assert event.payload["successor"] == NEW and event.payload["version"] == result.version
    assert event.payload["files"] == {
        f"{base}/{p.name}": sha256_digest(p.read_bytes()) for p in result.files.values()
    }
    assert result.folder == compared.settings.home / "migration" / OLD / result.run_id


def test_the_guide_says_what_changes_and_what_to_do(compared: Compared) -> None:
    files = compared.result.files
    markdown = files["markdown"].read_text(encoding="utf-8")
    guide = json.loads(files["json"].read_text(encoding="utf-8"))
    assert guide["format"] == "emeritus-migration-guide" and guide["version"] == 1
    assert guide["comparison"] == json.loads(json.dumps(compared.comparison))
    retire_on = guide["dates"]["retire_at"][:10]
    for heading in ("## Key dates", "## Where", "## What changes", "## What to do"):
        assert heading in markdown
    assert f"| retires | {retire_on} |" in markdown
    assert "approved researchers" in markdown  # availability after retirement: restricted
    assert guide["url"].endswith(f"/models/{OLD}/migration")
    for pair in compared.comparison["pairs"]:
        assert pair["prompt"] in markdown
    for adjustment in compared.comparison["adjustments"]:
        assert f"`{adjustment['system']}`" in markdown
    html = files["html"].read_text(encoding="utf-8")
    images = re.findall(r'<img src="([^"]+)"', html)
    assert len(images) == 5 + (1 if compared.comparison["adjustments"] else 0)
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r'(src|href)="(https?:)?//', html)  # self-contained


def test_the_guide_in_chromium(compared: Compared, tmp_path: Path) -> None:
    page = check_page(compared.result.files["html"], tmp_path / "guide.png")
    assert page.title == f"Migrating from {OLD} to {NEW}"
    assert page.console_errors == [] and page.failed_requests == []
    assert len(page.images) == 6 if compared.comparison["adjustments"] else 5
    assert all(i["complete"] and int(str(i["naturalWidth"])) > 0 for i in page.images)
    shot = page.screenshot.read_bytes()
    assert shot.startswith(b"\x89PNG\r\n\x1a\n") and len(shot) > 10_000


def test_compare_command_is_reproducible(compared: Compared, tmp_path: Path) -> None:
    """The same models, prompts and settings give the same answers, through the CLI."""
    from emeritus.cli import app

    out = tmp_path / "guide"
    result = CliRunner().invoke(
        app,
        [
            "--home",
            str(compared.settings.home),
            "compare",
            OLD,
            NEW,
            "--limit",
            str(LIMIT),
            "--max-tokens",
            str(MAX_TOKENS),
            "--adjustments",
            str(ADJUSTMENTS),
            "--out",
            str(out),
            "--json",
        ],
        env={"EMERITUS_THREADS": "1"},
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout)
    assert printed["model"] == OLD and printed["successor"] == NEW
    assert printed["version"] == compared.result.version + 1
    assert printed["files"] == {
        kind: str(out / name)
        for kind, name in (("markdown", "guide.md"), ("html", "guide.html"), ("json", "guide.json"))
    }
    again = json.loads((out / "guide.json").read_text(encoding="utf-8"))["comparison"]
    assert [(p["old"]["text"], p["new"]["text"]) for p in again["pairs"]] == [
        (p["old"]["text"], p["new"]["text"]) for p in compared.comparison["pairs"]
    ]
    assert [a["id"] for a in again["adjustments"]] == [
        a["id"] for a in compared.comparison["adjustments"]
    ]
