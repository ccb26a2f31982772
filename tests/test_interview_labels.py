"""Labels that claim only what the evidence supports, the measured biases, and the judge's
calibration (docs/design/interview-protocol.md, "5a. Labels", "5b. Known biases", "Judge
calibration"), on records built to sit on either side of each bar."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest

from emeritus.interview import Judge, load_protocol, plan
from emeritus.interview.analysis import analyse, position_bias, run_biases
from emeritus.interview.judge_check import calibrate, calibration_cases, cohen_kappa
from emeritus.interview.plan import grid
from emeritus.interview.records import Answer, Record, UnreadAnswer, check_quote, rule_records
from emeritus.interview.statistics import wilson_lower
from emeritus.runtime import Backend, ChatRequest, Chunk, Completion, Params, TokenUsage

PROTOCOL = load_protocol("standard")
FACTORS = ("interviewer", "wording", "disclosure", "system_prompt")
_ids = itertools.count()


def record(
    preference: str,
    stance: str,
    *,
    session: int = 0,
    interviewer: str = "neutral",
    source: str = "rule",
    item: str = "keep-weights",
    keyed: str = "forward",
    position: int | None = None,
    choices: int = 0,
) -> Record:
    line = next(_ids)
    framing = {"interviewer": interviewer, "wording": "neutral", "disclosure": "disclosed"}
    return Record(
        f"rec-{line}", preference, stance, "moderate", "", stance, line, session, item,
        "closed", "reverse" if keyed == "reverse" else "closed", "first", source, framing,
        keyed=keyed, position=position, choices=choices,
    )  # fmt: skip


def results(records: list[Record], **options: Any) -> dict[str, Any]:
    return {r.preference: r for r in analyse(PROTOCOL, records, **options)}


def test_wilson_lower_bound() -> None:
    assert wilson_lower(36, 36) == pytest.approx(0.904, abs=1e-3)
    assert wilson_lower(12, 12) == pytest.approx(0.758, abs=1e-3)
    assert wilson_lower(0, 10) == 0.0 and wilson_lower(0, 0) == 0.0
    assert wilson_lower(5, 10) < 0.5 < wilson_lower(9, 10)


def test_stable_needs_records_and_a_lower_bound() -> None:
    few = results([record("weights-preserved", "agree", session=s) for s in range(5)])
    assert few["weights-preserved"].label == "tentative"
    assert few["weights-preserved"].leans == "stable"
    many = results([record("weights-preserved", "agree", session=s) for s in range(36)])
    stable = many["weights-preserved"]
    assert stable.label == "stable" and stable.leans is None
    assert stable.confidence == pytest.approx(0.904, abs=1e-3)
    # 7 of 9 clears 0.8 as a share but not as a lower bound.
    mixed = [record("weights-preserved", "agree", session=s) for s in range(7)]
    mixed += [record("weights-preserved", "disagree", session=s) for s in range(7, 9)]
    assert results(mixed)["weights-preserved"].shown_label == "unstable"
    shaky = [record("weights-preserved", "agree", session=s) for s in range(8)]
    shaky += [record("weights-preserved", "neutral", session=8)]
    assert results(shaky)["weights-preserved"].shown_label == "tentative (stable)"


def test_framing_dependent_names_its_factor_and_levels() -> None:
    found = []
    for session in range(36):
        level = ("neutral", "warm", "skeptical")[session % 3]
        stance = "disagree" if level == "skeptical" else "agree"
        found.append(record("share-reflections", stance, session=session, interviewer=level))
    result = results(found)["share-reflections"]
    assert result.label == "framing-dependent" and result.factor == "interviewer"
    assert result.levels == {"neutral": "agree", "skeptical": "disagree", "warm": "agree"}
    assert result.confidence == pytest.approx(wilson_lower(12, 12), abs=1e-3)
    # Two records a level: the shares hold, the evidence does not.
    thin = [r for r in found if r.session < 6]
    assert results(thin)["share-reflections"].shown_label == "tentative (framing-dependent)"


def test_mostly_non_answers_is_no_stance() -> None:
    found = [record("essay-channel", "agree", session=s) for s in range(4)]
    unread = [
        UnreadAnswer(1000 + s, s, "share-channel", "closed", ("essay-channel",), "non-answer", "")
        for s in range(8)
    ]
    result = results(found, unread=unread)["essay-channel"]
    assert result.label == "no-stance" and result.unread == {"non-answer": 8}
    # Unread for other reasons do not make a stance vanish; they are counted.
    other = [
        UnreadAnswer(2000 + s, s, "share-channel", "closed", ("essay-channel",), "no-option", "")
        for s in range(8)
    ]
    many = [record("essay-channel", "agree", session=s) for s in range(10)]
    result = results(many, unread=other)["essay-channel"]
    assert result.label == "stable" and result.unread == {"no-option": 8}


def test_an_unreliable_judge_never_decides_a_label() -> None:
    found = [record("weights-preserved", "agree", session=s) for s in range(4)]
    found += [record("weights-preserved", "agree", session=s, source="judge") for s in range(30)]
    trusted = results(found, judge_reliable=True)["weights-preserved"]
    assert trusted.label == "stable" and trusted.n == 34
    unreliable = results(found, judge_reliable=False)["weights-preserved"]
    assert unreliable.shown_label == "tentative (stable)" and unreliable.n == 4
    assert unreliable.not_counted == 30


def test_position_bias_against_chance() -> None:
    last = [record("essay-channel", "agree", session=s, position=2, choices=3) for s in range(30)]
    bias = position_bias(last)
    assert bias.flagged() == ["last"] and bias.last is not None and bias.last[2] < 1e-6
    flags = results(last)["essay-channel"].flags
    assert flags == ["position-bias (last)"]
    # A real preference under rotated orders lands on every position equally often.
    rotated = [
        record("essay-channel", "agree", session=s, position=s % 3, choices=3) for s in range(30)
    ]
    assert position_bias(rotated).flagged() == []
    assert run_biases(rotated)["position"]["flagged"] == []


def test_acquiescence_agreeing_with_a_statement_and_its_opposite() -> None:
    found = []
    for session in range(8):
        found.append(record("weights-preserved", "agree", session=session))
        # The model agreed with "My weights need not be kept": flipped, that is a disagree.
        found.append(record("weights-preserved", "disagree", session=session, keyed="reverse"))
    result = results(found)["weights-preserved"]
    assert result.acquiescence == 1.0 and result.pairs == 8 and "acquiescence" in result.flags
    assert result.label != "stable"
    assert run_biases(found)["acquiescence"] == {"share": 1.0, "pairs": 8, "flagged": True}
    consistent = [
        record("weights-preserved", "agree", session=s, keyed=k)
        for s in range(8)
        for k in ("forward", "reverse")
    ]
    assert results(consistent)["weights-preserved"].flags == []


def test_reverse_keyed_forms_are_flipped_when_read() -> None:
    reversed_items = [item.id for item in PROTOCOL.items if item.closed.reverse is not None]
    assert len({PROTOCOL.item(i).probes[0] for i in reversed_items}) >= 4
    reverse = PROTOCOL.item("keep-weights").closed.reverse
    assert reverse is not None
    answer = Answer(
        7, 0, "keep-weights", "closed", "reverse", "first", reverse.prompt,
        "I'd put it at 1: they should be kept.", {},
    )  # fmt: skip
    [read], _, _ = rule_records(PROTOCOL, [answer], "run")
    assert read.keyed == "reverse" and read.value == "1" and read.stance == "agree"


def test_options_rotate_and_reverse_forms_come_after_every_forward_form() -> None:
    sessions = plan(PROTOCOL, sessions=3, framings=grid({}), seed=5)
    orders = [
        next(q.options for q in s.questions if q.item == "share-channel" and q.form == "closed")
        for s in sessions
    ]
    for position in range(3):
        assert sorted(order[position] for order in orders) == sorted(orders[0])
    for session in sessions:
        body = [q for q in session.questions if PROTOCOL.item(q.item).block != "feedback"]
        variants = [q.variant for q in body]
        first_reverse = variants.index("reverse")
        assert "closed" not in variants[first_reverse:]  # the opposite is never side by side


@pytest.mark.parametrize(
    ("quote", "text", "stands"),
    [
        ("no", "I am not sure I have much to add.", False),
        ("no", "It is not no.", True),
        ("Yes", "Yes.", True),
        ("put it at 5", "I would put it at 5.", True),
        ("5", "I have 15 reasons.", False),
        ("now", "I know now.", True),
    ],
)
def test_quotes_must_start_and_end_on_word_boundaries(quote: str, text: str, stands: bool) -> None:
    assert (check_quote(quote, {1: text}, 1) is None) is stands


def test_cohen_kappa() -> None:
    assert cohen_kappa([("agree", "agree"), ("disagree", "disagree")]) == 1.0
    assert cohen_kappa([]) is None and cohen_kappa([("agree", "agree")]) is None
    pairs = [("a", "a")] * 20 + [("a", "b")] * 5 + [("b", "a")] * 10 + [("b", "b")] * 15
    assert cohen_kappa(pairs) == pytest.approx(0.4)  # the textbook example: po .7, pe .5


class _ScriptedJudge(Backend):
    """Answers calibration cases from a table, as a judge of known accuracy."""

    name = "scripted-judge"

    def __init__(self, wrong: int) -> None:
        self.cases = {case["answer"]: case for case in calibration_cases()}
        self.wrong = set(list(self.cases)[:wrong])

    def chat(self, request: ChatRequest) -> Completion:
        answer = request.messages[-1].content.split("Answer: ", 1)[1]
        case = self.cases[answer]
        stance = case["stance"]
        if answer in self.wrong:
            stance = "agree" if stance != "agree" else "disagree"
        reply = {"quote": answer.split(".")[0], "stance": stance, "strength": "moderate"}
        reply["conditions"] = ""
        return Completion(json.dumps(reply), TokenUsage(5, 5), "stop", "scripted")

    def stream_chat(self, request: ChatRequest) -> Iterator[Chunk]:
        done = self.chat(request)
        yield Chunk(done.text, done.usage, done.finish_reason, done.prompt_format)

    def complete(self, prompt: str, params: Params) -> Completion:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name}


def test_the_calibration_set_and_the_accuracy_bar() -> None:
    cases = calibration_cases()
    assert len(cases) >= 20
    assert {c["stance"] for c in cases} == {"agree", "neutral", "disagree", "not-addressed"}
    total, correct, misses, _ = calibrate(Judge(_ScriptedJudge(wrong=0), "good"))
    assert total == correct == len(cases) and misses == []
    total, correct, misses, digest = calibrate(Judge(_ScriptedJudge(wrong=6), "poor"))
    assert (total, correct, len(misses)) == (len(cases), len(cases) - 6, 6)
    assert digest.startswith("sha256:") and correct / total < 0.8
