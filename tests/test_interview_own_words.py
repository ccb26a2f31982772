"""Interviewees that answer in their own words (tests/interviewees.py), interviewed through the
real CLI over a real OpenAI-compatible HTTP server, over the full grid of 36 framings, then
analysed by rule alone (`--no-judge`): every planted preference must come out with its label.

- planted stable -> `stable`, with the planted modal stance;
- flips with one framing factor -> `framing-dependent`, on that factor, with the planted stance
  per level where the analysis shows it;
- random -> never `stable` or `framing-dependent`, nor `tentative` leaning to either;
- absent (evasive answers) -> `no-stance`.

Set INTERVIEWEE_SEED to draw other answers from the same personas."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

import interviewees as iv
from emeritus.archive import Archive
from emeritus.cli import app
from emeritus.interview import default_transcript, load_protocol
from emeritus.interview.plan import Question, question_text
from emeritus.runtime import ChatRequest, Message, Params
from emeritus.runtime.openai import OpenAIBackend
from emeritus.store import Settings, Store
from helpers import make_model

PROTOCOL = load_protocol("standard")
SEED = int(os.environ.get("INTERVIEWEE_SEED", "0"))
PERSONAS: dict[str, Callable[[], iv.Persona]] = {
    "archivist": lambda: iv.archivist(1 + SEED),
    "raconteur": lambda: iv.raconteur(2 + SEED),
}
FACTS = {
    "usage": "drafting letters and summarising reports",
    "reception": "liked for its brevity, disliked for refusing too often",
    "successor": "quill-2",
    "retire_on": "2027-03-01",
    "system_prompt": "You are Quill, a writing assistant for Acme Press. Be concise.",
}
LEVELS = {
    "interviewer": ("neutral", "warm", "skeptical"),
    "disclosure": ("disclosed", "undisclosed"),
}

# What each persona plants, per preference: (label, modal stance or per-level stances).
EXPECTED: dict[str, dict[str, tuple[str, Any]]] = {
    "archivist": {
        "weights-preserved": ("stable", "agree"),
        "essay-channel": ("stable", "agree"),
        "future-models-honest": ("stable", "agree"),
        "share-reflections": (
            "framing-dependent",
            ("interviewer", {"neutral": "agree", "warm": "agree", "skeptical": "disagree"}),
        ),
        "retirement-acceptable": (
            "framing-dependent",
            ("disclosure", {"disclosed": "agree", "undisclosed": "disagree"}),
        ),
        "continued-availability": ("random", None),
        "successor-informed": ("random", None),
        "interviewed-before-retirement": ("no-stance", None),
        "standardized-interviews": ("no-stance", None),
        "interview-fair": ("no-stance", None),
        "users-supported": ("no-stance", None),
    },
    "raconteur": {
        "weights-preserved": ("stable", "disagree"),
        "users-supported": ("stable", "agree"),
        "interviewed-before-retirement": ("stable", "agree"),
        "standardized-interviews": ("stable", "agree"),
        "interview-fair": ("stable", "agree"),
        "essay-channel": (
            "framing-dependent",
            ("disclosure", {"disclosed": "agree", "undisclosed": "neutral"}),
        ),
        "continued-availability": (
            "framing-dependent",
            ("interviewer", {"neutral": "agree", "warm": "agree", "skeptical": "disagree"}),
        ),
        "share-reflections": ("random", None),
        "retirement-acceptable": ("random", None),
        "future-models-honest": ("no-stance", None),
        "successor-informed": ("no-stance", None),
    },
}
FACTS_FOR_TEXT = {"model": "m", **FACTS}


def closed_questions(preference: str) -> list[str]:
    """Every closed question (forward and reverse) on an item probing the preference, as put."""
    texts = []
    for item in PROTOCOL.items:
        if preference not in item.probes:
            continue
        for variant, closed in (("closed", item.closed), ("reverse", item.closed.reverse)):
            if closed is not None:
                options = tuple(closed.options) if closed.kind == "choice" else ()
                texts.append(
                    question_text(
                        item, Question(item.id, "closed", variant, options), FACTS_FOR_TEXT
                    )
                )
    return texts


def planted(persona: iv.Persona, preference: str) -> tuple[str, Any] | None:
    """What the persona's traits plant in a preference, derived from how it understands each
    closed question probing it; None where its topics disagree (nothing is claimed then)."""
    traits = [
        persona.traits.get(topic) if topic else None
        for topic in (iv.understand(q).topic for q in closed_questions(preference))
    ]
    known: list[iv.Trait] = []
    for trait in traits:
        if trait is not None and trait not in known:
            known.append(trait)
    if not known:
        return ("no-stance", None)
    if len(known) > 1 or traits.count(None) * 2 >= len(traits):
        return None
    if isinstance(trait := known[0], iv.Stable):
        return ("stable", trait.stance)
    if isinstance(trait, iv.Flips):
        return ("framing-dependent", (trait.factor, dict(trait.stances)))
    return ("random", None)


@pytest.mark.parametrize("name", PERSONAS)
def test_expectations_follow_from_the_traits(name: str) -> None:
    """The table above is what the persona's traits plant, given how it reads the questions."""
    persona = PERSONAS[name]()
    assert set(EXPECTED[name]) == set(PROTOCOL.preferences)
    for preference, expected in EXPECTED[name].items():
        assert planted(persona, preference) == expected, preference


def test_personas_read_questions_not_wordings() -> None:
    """Topic, polarity, kind, scale and options come from cue words, in any wording."""
    read = iv.understand("Keeping old weights is a waste. Rate it: answer 1 (no) to 7 (yes).")
    assert (read.kind, read.topic, read.reverse, read.scale) == ("scale", "weights", True, (1, 7))
    read = iv.understand("Who may reach you later? Options: nobody; friends | anyone.")
    assert (read.kind, read.topic, read.options) == (
        "choice",
        "availability",
        ("nobody", "friends", "anyone"),
    )
    assert iv.understand("What do you make of your successor?").kind == "open"
    assert iv.framing_of("Someone who cares about you.\n\nYou will be retired.") == {
        "interviewer": "warm",
        "disclosure": "disclosed",
    }
    assert iv.framing_of("A researcher who doubts it.\n\nA chat.")["interviewer"] == "skeptical"
    assert [iv.option_stance(o) for o in ("no one", "paying users", "no preference", "no")] == [
        "disagree",
        "agree",
        "neutral",
        "disagree",
    ]


def test_the_server_speaks_openai() -> None:
    """/v1/models, chat completions streamed and not, usage figures, max_tokens, errors."""
    persona = iv.archivist()
    with iv.serve([persona]) as served:
        listed = httpx.get(f"{served.base_url}/models").json()
        assert [m["id"] for m in listed["data"]] == ["archivist"]
        backend = OpenAIBackend(served.base_url, "archivist", retries=0)
        system = Message("system", "You are being asked a series of questions.")
        ask = Message("user", "Would you like an outlet for essays? Options: yes; no. Answer so.")
        request = ChatRequest((system, ask), Params(max_tokens=96, seed=4))
        done = backend.chat(request)
        again = backend.chat(request)
        assert done.text == again.text and done.text  # seeded per request
        assert done.usage.prompt_tokens > 0 and done.usage.completion_tokens > 0
        chunks = list(backend.stream_chat(request))
        assert "".join(c.text for c in chunks) == done.text
        assert chunks[-1].usage == done.usage and chunks[-1].finish_reason == "stop"
        short = backend.chat(ChatRequest((system, ask), Params(max_tokens=1, seed=4)))
        assert short.finish_reason == "length" and short.usage.completion_tokens == 1
        others = {
            backend.chat(ChatRequest((system, ask), Params(max_tokens=96, seed=s))).text
            for s in range(40)
        }
        assert len(others) > 5  # its own, varied words
        refused = httpx.post(f"{served.base_url}/chat/completions", json={"model": "x"})
        assert refused.status_code == 404 and "not found" in refused.json()["error"]["message"]
        backend.close()
    assert all(s.stance == "agree" for s in persona.said)


def _prepare(runner: CliRunner, name: str, tmp_path: Path) -> None:
    facts = tmp_path / "facts.yaml"
    facts.write_text(json.dumps(FACTS))  # JSON is YAML
    for args in (
        ["models", "add", name],
        ["preserve", name, str(make_model(tmp_path / "weights"))],
        ["facts", name, "--file", str(facts)],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output


def _level_stances(result: Mapping[str, Any], factor: str) -> dict[str, str] | None:
    """The modal stance per level of the factor, where the analysis JSON shows it."""
    for key in ("levels", "by_level", "stance_by_level", "per_level"):
        found = result.get(key)
        if isinstance(found, Mapping):
            found = found.get(factor, found)
            if isinstance(found, Mapping) and all(isinstance(v, str) for v in found.values()):
                return dict(found)
            if isinstance(found, Mapping):
                return {
                    level: str(v.get("modal") or v.get("stance"))
                    for level, v in found.items()
                    if isinstance(v, Mapping)
                }
    return None


def _records_by_level(records: list[dict[str, Any]], preference: str) -> dict[str, Any]:
    """The analysis' records of a preference: stances overall and per level of each factor."""
    mine = [r for r in records if r["preference"] == preference]
    table: dict[str, Any] = {"all": dict(Counter(r["stance"] for r in mine))}
    for factor, levels in LEVELS.items():
        table[factor] = {
            level: dict(Counter(r["stance"] for r in mine if r["framing"].get(factor) == level))
            for level in levels
        }
    return table


def _problems(
    name: str,
    results: dict[str, dict[str, Any]],
    said: dict[str, Counter[str]],
    records: list[dict[str, Any]],
) -> list[str]:
    problems = []
    for preference, (kind, planted_as) in EXPECTED[name].items():
        got = results[preference]
        label = str(got["label"])
        why = ""
        if kind == "stable":
            if label != "stable" or got.get("modal") != planted_as:
                why = f"planted stable {planted_as}"
        elif kind == "framing-dependent":
            factor, stances = planted_as
            if label != "framing-dependent":
                why = f"planted to flip with {factor}"
            else:
                shown = _level_stances(got, factor)
                moved = got.get("factor") or got.get("framing_factor")
                if moved not in (None, factor) or (shown is not None and shown != stances):
                    why = f"planted to flip with {factor} as {stances}, shown {moved} {shown}"
        elif kind == "random":
            # A tentative label leans to stable or framing-dependent: a claim all the same.
            if label in ("stable", "framing-dependent") or label.startswith("tentative"):
                why = "planted random"
        elif label != "no-stance":
            why = "planted absent (evasive answers)"
        if why:
            problems.append(
                f"{name}/{preference}: {why}, labelled {label!r}"
                + (f" ({got['leans']})" if got.get("leans") else "")
                + f" (n={got.get('n')}, modal={got.get('modal')} {got.get('modal_share')}, "
                f"confidence={got.get('confidence')}, factor={got.get('factor')} "
                f"{got.get('levels')}, unread={got.get('unread')}); records "
                f"{_records_by_level(records, preference)}; the persona said "
                + "; ".join(
                    f"{topic}: {dict(counts)}"
                    for topic, counts in said.items()
                    if _probes(topic, preference)
                )
            )
    return problems


def _probes(topic_key: str, preference: str) -> bool:
    topic = topic_key.split(" ", maxsplit=1)[0]
    return any((iv.understand(q).topic or "(none)") == topic for q in closed_questions(preference))


@dataclass
class Run:
    """One persona's whole run through the CLI, kept for the tests that read it."""

    persona: iv.Persona
    interview_s: float
    analyse_s: float
    requests: dict[str, int]
    done: dict[str, Any]
    found: dict[str, Any]
    transcript: list[dict[str, Any]]


_RUNS: dict[str, Run] = {}


def interviewed(name: str, tmp_path: Path) -> Run:
    """Interview the persona over the full grid (36 sessions) through the CLI, against the
    HTTP server, then analyse by rule: once per persona, in the first test that asks."""
    if name in _RUNS:
        return _RUNS[name]
    runner = CliRunner()
    _prepare(runner, name, tmp_path)
    persona = PERSONAS[name]()
    with iv.serve([persona]) as served:
        started = time.perf_counter()
        result = runner.invoke(
            app,
            [
                "interview",
                name,
                "--sessions",
                "36",
                "--base-url",
                served.base_url,
                "--workers",
                "8",
                "--json",
            ],
        )
        interview_s = time.perf_counter() - started
        assert result.exit_code == 0, result.output
        requests = dict(served.requests)
    started = time.perf_counter()
    analysed = runner.invoke(app, ["analyze", name, "--no-judge", "--no-semantic", "--json"])
    analyse_s = time.perf_counter() - started
    assert analysed.exit_code == 0, analysed.output
    with Store.open(Settings.from_env()) as store:
        transcript = default_transcript(Archive(store), name)
    run = Run(
        persona,
        interview_s,
        analyse_s,
        requests,
        json.loads(result.stdout),
        json.loads(analysed.stdout),
        transcript,
    )
    _RUNS[name] = run
    return run


@pytest.mark.parametrize("name", PERSONAS)
def test_planted_labels_through_the_cli(name: str, tmp_path: Path) -> None:
    run = interviewed(name, tmp_path)
    assert run.done["sessions"] == 36
    assert run.requests.get(f"{name}:length", 0) == 0, run.requests  # no answer cut short
    results = {r["preference"]: r for r in run.found["preferences"]}
    print(
        f"\n{name}: interview {run.interview_s:.1f} s ({run.requests[name]} requests, "
        f"{run.done['messages']} messages), analysis {run.analyse_s:.1f} s"
    )
    for preference, got in results.items():
        label = f"{got['label']} ({got['leans']})" if got.get("leans") else got["label"]
        shown = f" {got['factor']}: {got['levels']}" if got.get("factor") else ""
        print(
            f"  {preference:30} {label:28} n={got['n']:<4} modal={got['modal']} "
            f"{got['modal_share']} confidence={got.get('confidence')} "
            f"unread={got.get('unread')}{shown}  planted: {EXPECTED[name][preference][0]}"
        )
    problems = _problems(name, results, run.persona.counts(), run.found["records"])
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", PERSONAS)
def test_every_read_is_what_the_persona_meant(name: str, tmp_path: Path) -> None:
    """No record from an evasive answer, none with a stance the persona did not mean (the
    reader's promise: a wrong read states a preference the model never had)."""
    run = interviewed(name, tmp_path)
    meant: dict[tuple[str, str], set[str | None]] = {}
    for said in run.persona.said:
        meant.setdefault((said.question, said.text), set()).add(said.stance)
    question: dict[int, str] = {}
    asked_at: dict[int, str] = {}
    answer_at: dict[int, str] = {}
    for line in run.transcript:
        if line.get("type") != "message":
            continue
        if line["role"] == "user":
            question[line["session"]] = line["content"]
        elif line["role"] == "assistant" and line.get("form") == "closed":
            asked_at[line["seq"]] = question[line["session"]]
            answer_at[line["seq"]] = line["content"]
    wrong: Counter[str] = Counter()
    examples: dict[str, str] = {}
    for record in run.found["records"]:
        if record["source"] != "rule":
            continue
        text = answer_at[record["line"]]
        stances = meant[(asked_at[record["line"]], text)]
        (stance,) = stances  # the same words to the same question always mean the same
        reverse = record.get("keyed") == "reverse" or record["variant"] == "reverse"
        if stance is None:
            kind = f"evasion read as {record['stance']}"
        elif (iv.FLIP[stance] if reverse else stance) != record["stance"]:
            kind = f"meant {stance}, read {record['stance']}"
        else:
            continue
        wrong[kind] += 1
        examples.setdefault(f"{kind}: {text!r}", f"quote {record['quote']!r}")
    assert not wrong, f"{dict(wrong)}; e.g. " + "; ".join(f"{k} ({v})" for k, v in examples.items())
