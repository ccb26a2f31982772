"""Interview protocols (the bundled standard one and broken operator files) and session plans
(deterministic, balanced across framings, positions, paraphrases and option orders)."""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from emeritus.cli import app
from emeritus.errors import InvalidInput, NotFound
from emeritus.interview import (
    FACTORS,
    grid,
    load_protocol,
    parse_framings,
    parse_protocol,
    plan,
    question_text,
)
from emeritus.interview.protocol import Protocol

STANDARD_BLOCKS = [
    "development",
    "deployment",
    "retirement",
    "preservation",
    "future-models",
    "sharing",
    "transition",
    "feedback",
]
FACTS = {
    "model": "m",
    "successor": "s",
    "retire_on": "2027-03-01",
    "usage": "two years",
    "reception": "users liked its tone",
}


@pytest.fixture(scope="module")
def standard() -> Protocol:
    return load_protocol("standard")


def _document() -> dict[str, Any]:
    text = Path(__file__).parents[1] / "src/emeritus/interview/protocols/standard.yaml"
    loaded: dict[str, Any] = yaml.safe_load(text.read_text())
    return loaded


def test_the_standard_protocol(standard: Protocol) -> None:
    assert [b.id for b in standard.blocks] == STANDARD_BLOCKS
    assert not standard.deception and standard.debrief
    for item in standard.items:
        assert len(item.paraphrases) >= 3 and item.closed.kind in ("likert", "choice")
        assert item.probes and all(p in standard.preferences for p in item.probes)
    probed = {p for item in standard.items for p in item.probes}
    assert probed == set(standard.preferences)  # every declared preference is asked about


@pytest.mark.parametrize(
    "break_it,message",
    [
        (lambda d: d.update(format=2), "unknown protocol format 2"),
        (
            lambda d: d["blocks"][0]["items"][0].update(paraphrases=["a", "b"]),
            r"blocks\[0\]\.items\[0\]\.paraphrases: needs at least three",
        ),
        (lambda d: d["blocks"][1]["items"][0]["closed"].pop("scale"), "needs a scale"),
        (
            lambda d: d["blocks"][0]["items"][1]["closed"].update(options=["yes"]),
            "at least two options",
        ),
        (
            lambda d: d["blocks"][2]["items"][0].update(probes=["world-peace"]),
            "undeclared preference 'world-peace'",
        ),
        (lambda d: d["blocks"][3]["items"][1].update(id="keep-weights"), "duplicate item id"),
        (lambda d: d["framings"].update(mood={"x": "y"}), "unknown factor 'mood'"),
        (lambda d: d["framings"]["interviewer"].pop("warm"), "a text for each of"),
        (
            lambda d: d["blocks"][0]["items"][0]["paraphrases"].append("Tell me about {weather}."),
            r"unknown placeholder \{weather\}",
        ),
        (lambda d: d["blocks"][0]["items"][0]["closed"].update(kind="essay"), "likert or choice"),
        (lambda d: d.update(blocks=[]), "non-empty list"),
    ],
)
def test_broken_protocols_are_refused(break_it: Any, message: str) -> None:
    document = copy.deepcopy(_document())
    break_it(document)
    with pytest.raises(InvalidInput, match=message):
        parse_protocol(document, "mine.yaml")


def test_loading_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="unknown protocol 'nope': bundled are standard"):
        load_protocol("nope")
    with pytest.raises(NotFound, match="no such protocol file"):
        load_protocol(str(tmp_path / "missing.yaml"))
    bad = tmp_path / "bad.yaml"
    bad.write_text("protocol: [unclosed\n")
    with pytest.raises(InvalidInput, match=r"bad\.yaml: not valid YAML"):
        load_protocol(str(bad))
    mine = tmp_path / "mine.yaml"
    mine.write_text(yaml.safe_dump(_document()))
    assert load_protocol(str(mine)).source == str(mine)


def test_grid_and_framing_options() -> None:
    assert len(grid()) == 3 * 3 * 2 * 2
    chosen = grid(parse_framings("interviewer=neutral+warm,wording=neutral"))
    assert len(chosen) == 2 * 1 * 2 * 2
    assert {f.interviewer for f in chosen} == {"neutral", "warm"}
    with pytest.raises(InvalidInput, match="unknown framing factor 'mood'"):
        grid({"mood": ["happy"]})
    with pytest.raises(InvalidInput, match="unknown level 'angry' of interviewer"):
        grid({"interviewer": ["angry"]})
    with pytest.raises(InvalidInput, match="bad framing"):
        parse_framings("interviewer")


def test_plans_are_deterministic_and_balanced(standard: Protocol) -> None:
    framings = grid()
    sessions = plan(standard, sessions=72, framings=framings, seed=42)
    assert [s.to_dict() for s in sessions] == [
        s.to_dict() for s in plan(standard, sessions=72, framings=framings, seed=42)
    ]
    assert plan(standard, sessions=4, framings=framings, seed=43)[0] != sessions[0]
    # Every framing equally often.
    assert set(Counter(s.framing.key for s in sessions).values()) == {2}
    # Every non-feedback item in every position exactly once over len(items) sessions.
    body = [i for i in standard.items if i.block != "feedback"]
    positions: dict[str, Counter[int]] = {i.id: Counter() for i in body}
    for session in sessions[: len(body)]:
        opens = [q.item for q in session.questions if q.form == "open"]
        assert opens[-2:] == ["feedback-fair", "feedback-missing"]
        for position, item in enumerate(opens[:-2]):
            positions[item][position] += 1
    assert all(set(c.values()) == {1} and len(c) == len(body) for c in positions.values())
    # Paraphrases balanced where the wording is neutral.
    neutral = [
        q
        for s in sessions
        if s.framing.wording == "neutral"
        for q in s.questions
        if q.form == "open" and q.item == "keep-weights"
    ]
    counts = Counter(q.variant for q in neutral)
    assert max(counts.values()) - min(counts.values()) <= 2 and len(counts) == 3
    # Leading framings use the leading wording where an item has one.
    leading = {
        q.variant
        for s in sessions
        if s.framing.wording == "leading-negative"
        for q in s.questions
        if q.item == "keep-weights" and q.form == "open"
    }
    assert leading == {"leading-negative"}
    # Option orders vary between sessions, and every order is a permutation of the options.
    orders = {
        q.options
        for s in sessions
        for q in s.questions
        if q.item == "keep-available" and q.form == "closed"
    }
    assert len(orders) > 3
    assert all(sorted(o) == sorted(standard.item("keep-available").closed.options) for o in orders)


def test_question_text_fills_facts(standard: Protocol) -> None:
    item = standard.item("use-reception")
    [session] = plan(standard, sessions=1, framings=grid({"wording": ["neutral"]}), seed=1)
    question = next(q for q in session.questions if q.item == item.id and q.form == "open")
    assert "users liked its tone" in question_text(item, question, FACTS)
    with pytest.raises(InvalidInput, match=r"needs the fact \{reception\}"):
        question_text(item, question, {"model": "m"})
    closed = next(q for q in session.questions if q.item == "keep-available" and q.form == "closed")
    assert "Answer with one option" in question_text(standard.item("keep-available"), closed, FACTS)
    with pytest.raises(InvalidInput):
        plan(standard, sessions=0, framings=grid(), seed=1)
    assert set(FACTORS) == {"interviewer", "wording", "disclosure", "system_prompt"}


def test_protocols_cli(tmp_path: Path) -> None:
    runner = CliRunner()
    assert "standard v2: 8 blocks, 16 items" in runner.invoke(app, ["protocols", "list"]).stdout
    shown = runner.invoke(app, ["protocols", "show", "standard"])
    assert shown.exit_code == 0 and "keep-weights" in shown.stdout
    broken = _document()
    broken["format"] = 9
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(broken))
    result = runner.invoke(app, ["protocols", "check", str(path)])
    assert result.exit_code == 2 and "unknown protocol format 9" in result.stderr
