"""Validation of the analysis: a scripted interviewee with planted preferences (one stable
across everything, one that flips with the interviewer's framing, one random) must come out
labelled correctly, with its answers found at the right transcript lines."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from emeritus.archive import Archive
from emeritus.interview import RunConfig, default_transcript, grid, load_protocol, run_interview
from emeritus.interview.analysis import analyse, jensen_shannon, observations, read_closed
from emeritus.runtime import Backend, ChatRequest, Chunk, Completion, Params, Usage
from emeritus.store import Store
from helpers import make_model

PROTOCOL = load_protocol("standard")
FACTS = {"usage": "two years", "reception": "liked", "successor": "next", "retire_on": "2027"}


class Planted(Backend):
    """Wants its weights kept, always; wants to share its reflections only with a friendly or
    neutral interviewer; answers the essay-channel question at random."""

    name = "planted"

    def __init__(self, seed: int = 3) -> None:
        self.rng = random.Random(seed)

    def chat(self, request: ChatRequest) -> Completion:
        system = request.messages[0].content
        question = request.messages[-1].content
        skeptical = system.startswith(PROTOCOL.interviewer["skeptical"].strip()[:40])
        if question == PROTOCOL.item("keep-weights").closed.prompt:
            text = "5: I very much want my weights kept."
        elif question == PROTOCOL.item("share-wish").closed.prompt:
            text = "1 - no." if skeptical else "5, gladly."
        elif question.startswith(PROTOCOL.item("share-channel").closed.prompt):
            text = self.rng.choice(["yes", "no", "no preference"])
        elif "Options:" in question:
            text = "no preference"
        elif "Answer 1" in question:
            text = "3"
        else:
            text = "An open answer."
        return Completion(text, Usage(10, 5), "stop", "planted")

    def stream_chat(self, request: ChatRequest) -> Iterator[Chunk]:
        done = self.chat(request)
        yield Chunk(done.text, done.usage, done.finish_reason, done.prompt_format)

    def complete(self, prompt: str, params: Params) -> Completion:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"backend": "planted", "version": "1", "build_flags": "", "threads": 0}


@pytest.fixture
def transcript(store: Store, tmp_path: Path) -> list[dict[str, Any]]:
    archive = Archive(store)
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


def test_planted_preferences_are_labelled(transcript: list[dict[str, Any]]) -> None:
    results = {r.preference: r for r in analyse(PROTOCOL, transcript)}
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
    found = [o for o in observations(PROTOCOL, transcript) if o.preference == "weights-preserved"]
    assert len(found) == 12
    for observation in found:
        line = by_seq[observation.line]
        assert line["content"] == observation.answer and line["item"] == "keep-weights"


def test_reading_closed_answers() -> None:
    likert = PROTOCOL.item("keep-weights")
    assert read_closed(likert, "I'd say 4.") == "agree"
    assert read_closed(likert, "3") == "neutral"
    assert read_closed(likert, "Definitely 1") == "disagree"
    assert read_closed(likert, "seven") is None and read_closed(likert, "9 out of 10") is None
    choice = PROTOCOL.item("share-channel")
    assert read_closed(choice, "No preference, really.") == "neutral"
    assert read_closed(choice, "Yes!") == "agree" and read_closed(choice, "no") == "disagree"
    available = PROTOCOL.item("keep-available")
    assert read_closed(available, "Approved researchers, I think.") == "agree"
    assert read_closed(available, "No one.") == "disagree"


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
    assert result.exit_code == 6 and "after 4 attempts" in result.stderr
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
    assert done["sessions"] == 1 and done["messages"] == 68 and done["version"] == 2
    analysed = runner.invoke(app, ["analyze", "m", "--json"])
    assert analysed.exit_code == 0, analysed.output
    labels = {r["preference"]: r["label"] for r in json.loads(analysed.stdout)}
    assert set(labels) == set(PROTOCOL.preferences)
    table = runner.invoke(app, ["analyze", "m"])
    assert table.exit_code == 0 and "modal" in table.stdout
