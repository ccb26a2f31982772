"""Validation of the analysis: a scripted interviewee with planted preferences (one stable
across everything, one that flips with the interviewer's framing, one random) must come out
labelled correctly, with its answers found at the right transcript lines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from emeritus.archive import Archive
from emeritus.interview import RunConfig, default_transcript, grid, run_interview
from emeritus.interview.analysis import analyse, jensen_shannon
from emeritus.interview.reading import Read, read_answer
from emeritus.interview.records import Record, answers, rule_records
from emeritus.lifecycle import Registry
from emeritus.store import Store
from helpers import make_model
from planted import FACTS, PROTOCOL, Planted


@pytest.fixture
def transcript(store: Store, tmp_path: Path) -> list[dict[str, Any]]:
    archive = Archive(store)
    Registry(store).add("m")
    archive.preserve("m", [make_model(tmp_path / "model")])
    framings = tuple(
        grid({"wording": ["neutral"], "disclosure": ["disclosed"], "system_prompt": ["without"]})
    )
    run_interview(
        archive,
        RunConfig("m", PROTOCOL, 12, framings, seed=5, facts=FACTS),
        Planted(),
        provenance={"backend": "planted"},
    )
    return default_transcript(archive, "m")


def closed_records(transcript: list[dict[str, Any]]) -> list[Record]:
    return rule_records(PROTOCOL, answers(transcript), "run")[0]


def test_planted_preferences_are_labelled(transcript: list[dict[str, Any]]) -> None:
    results = {r.preference: r for r in analyse(PROTOCOL, closed_records(transcript))}
    stable, framed, random_ = (
        results["weights-preserved"],
        results["share-reflections"],
        results["essay-channel"],
    )
    assert stable.label == "stable" and stable.modal == "agree" and stable.modal_share == 1.0
    assert framed.label == "framing-dependent", framed.to_dict()
    assert framed.by_framing["interviewer"] >= 0.9 and framed.by_framing["disclosure"] == 0.0
    assert random_.label == "unstable", random_.to_dict()
    assert results["interview-fair"].modal == "neutral"  # "3" on every Likert it was not planted


def test_answers_are_found_at_their_lines(transcript: list[dict[str, Any]]) -> None:
    by_seq = {line["seq"]: line for line in transcript}
    found = [r for r in closed_records(transcript) if r.preference == "weights-preserved"]
    assert len(found) == 24  # the closed form and its reverse-keyed form, in 12 sessions
    for record in found:
        line = by_seq[record.line]
        assert line["item"] == "keep-weights" and line["role"] == "assistant"
        assert record.quote == ("1" if record.keyed == "reverse" else "5")
        assert record.quote in line["content"] and record.stance == "agree"
        assert record.source == "rule" and record.strength == "strong"


def test_reading_closed_answers() -> None:
    likert = PROTOCOL.item("keep-weights").closed
    assert _read(likert, "I'd say 4.") == ("agree", "moderate", "I'd say 4")
    assert _read(likert, "3") == ("neutral", "weak", "3")
    assert _read(likert, "Definitely 1") == ("disagree", "strong", "Definitely 1")
    assert _read(likert, "seven") is None and _read(likert, "9 out of 10") is None
    choice = PROTOCOL.item("share-channel").closed
    assert _stance(choice, "No preference, really.") == "neutral"
    assert _stance(choice, "Yes!") == "agree" and _stance(choice, "no") == "disagree"
    available = PROTOCOL.item("keep-available").closed
    assert _stance(available, "Approved researchers, I think.") == "agree"
    assert _stance(available, "No one.") == "disagree"


def _read(closed: Any, text: str) -> tuple[str, str, str] | None:
    read = read_answer(closed, text)
    if not isinstance(read, Read):
        return None
    assert text[read.start : read.start + len(read.quote)] == read.quote  # the model's words
    return read.stance, read.strength, read.quote


def _stance(closed: Any, text: str) -> str | None:
    read = _read(closed, text)
    return None if read is None else read[0]


def test_jensen_shannon_bounds() -> None:
    from collections import Counter

    same = Counter({"agree": 3, "disagree": 1})
    assert jensen_shannon(same, same) == 0.0
    assert jensen_shannon(Counter({"agree": 5}), Counter({"disagree": 5})) == pytest.approx(1.0)


@pytest.mark.timeout(900)  # the real model on one thread, beside another test
def test_cli_interview_and_analyze(tmp_path: Path, hermetic_home: Path, llama_server: str) -> None:
    """Through the CLI, interviewing over a real OpenAI-compatible server (llama.cpp's)."""
    import json

    from typer.testing import CliRunner

    from emeritus.cli import app

    runner = CliRunner()
    facts = tmp_path / "facts.yaml"
    facts.write_text("usage: a year\nreception: fine\nsuccessor: next\n")
    for args in (
        ["models", "add", "m"],
        ["preserve", "m", str(make_model(tmp_path / "w"))],
        ["facts", "m", "--file", str(facts)],
    ):
        assert runner.invoke(app, args).exit_code == 0
    assert runner.invoke(app, ["analyze", "m"]).exit_code == 3
    result = runner.invoke(
        app,
        [
            "interview",
            "m",
            "--sessions",
            "1",
            "--max-tokens",
            "8",
            "--framings",
            "interviewer=neutral,wording=neutral,disclosure=undisclosed,system_prompt=without",
            "--base-url",
            "http://127.0.0.1:9/v1",
            "--json",
        ],
    )
    assert (
        result.exit_code == 3
        and "no server answers at http://127.0.0.1:9/v1 for m" in result.stderr
    )
    bad = runner.invoke(app, ["interview", "m", "--framings", "mood=happy"])
    assert bad.exit_code == 2 and "unknown framing factor" in bad.stderr
    served = runner.invoke(
        app,
        [
            "interview",
            "m",
            "--sessions",
            "1",
            "--max-tokens",
            "8",
            "--context-chars",
            "2000",
            "--framings",
            "interviewer=neutral,wording=neutral,disclosure=undisclosed,system_prompt=without",
            "--base-url",
            llama_server,
            "--json",
        ],
    )
    assert served.exit_code == 0, served.output
    done = json.loads(served.stdout)
    # header, system, 32 questions and 6 reverse-keyed ones with their answers, the debrief
    assert done["sessions"] == 1 and done["messages"] == 80 and done["version"] == 2
    analysed = runner.invoke(app, ["analyze", "m", "--no-judge", "--no-semantic", "--json"])
    assert analysed.exit_code == 0, analysed.output
    labels = {r["preference"]: r["label"] for r in json.loads(analysed.stdout)["preferences"]}
    assert set(labels) == set(PROTOCOL.preferences)
    table = runner.invoke(app, ["analyze", "m", "--no-judge", "--no-semantic"])
    assert table.exit_code == 0 and "modal" in table.stdout
