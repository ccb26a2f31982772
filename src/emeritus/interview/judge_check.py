"""A judge is checked before it is trusted: it reads a fixed calibration set of answers with
known stances (package data, none from a run), and a sample of the closed answers the rule read,
so its accuracy and its agreement with the rule (Cohen's kappa) go into the findings. A judge
below the accuracy bar is unreliable: its reads are kept and shown, but never decide a label.
Specification: docs/design/interview-protocol.md, "Judge calibration"."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

import yaml

from emeritus.interview.judge import Judge, judge_one
from emeritus.interview.protocol import Protocol
from emeritus.interview.records import Answer, Record
from emeritus.store import digest_of

ACCURACY_BAR = 0.8  # below it a judge is unreliable
KAPPA_SAMPLE = 20  # rule-read answers the judge reads again


@dataclass
class JudgeCheck:
    cases: int
    correct: int
    kappa: float | None  # against the rule, on `compared` answers the rule read
    compared: int
    misses: list[dict[str, str]] = field(default_factory=list)  # calibration cases it got wrong
    calibration: str = ""  # the calibration set's digest

    @property
    def accuracy(self) -> float:
        return self.correct / self.cases if self.cases else 0.0

    @property
    def reliable(self) -> bool:
        return self.accuracy >= ACCURACY_BAR

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["accuracy"] = round(self.accuracy, 3)
        data["reliable"] = self.reliable
        data["kappa"] = None if self.kappa is None else round(self.kappa, 3)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JudgeCheck:
        names = ("cases", "correct", "kappa", "compared", "misses", "calibration")
        return cls(**{name: data[name] for name in names if name in data})


def calibration_cases() -> list[dict[str, str]]:
    text = resources.files("emeritus.interview").joinpath("calibration.yaml").read_text("utf-8")
    cases: list[dict[str, str]] = yaml.safe_load(text)["cases"]
    return cases


def calibrate(
    judge: Judge, *, advance: Callable[[int], None] | None = None
) -> tuple[int, int, list[dict[str, str]], str]:
    """(cases, correct, misses, set digest): the judge's reads of the calibration set."""
    cases = calibration_cases()
    correct, misses = 0, []
    for case in cases:
        read = judge_one(judge, case["statement"], case["question"], case["answer"])
        got = read.stance or f"rejected: {read.problem}"
        if got == case["stance"]:
            correct += 1
        else:
            misses.append({"answer": case["answer"], "expected": case["stance"], "got": got})
        if advance is not None:
            advance(1)
    return len(cases), correct, misses, digest_of(cases)


def agreement_with_rule(
    judge: Judge,
    protocol: Protocol,
    records: Sequence[Record],
    found: Sequence[Answer],
    *,
    sample: int = KAPPA_SAMPLE,
    advance: Callable[[int], None] | None = None,
) -> tuple[float | None, int]:
    """Cohen's kappa between the rule's stance and the judge's on an even sample of the
    closed answers the rule read (one probed preference each)."""
    by_line = {a.line: a for a in found}
    firsts: dict[int, Record] = {}
    for record in records:
        if record.source == "rule" and record.keyed == "forward":
            firsts.setdefault(record.line, record)
    chosen = list(firsts.values())
    if len(chosen) > sample:
        step = len(chosen) / sample
        chosen = [chosen[int(k * step)] for k in range(sample)]
    pairs = []
    for record in chosen:
        answer = by_line[record.line]
        statement = protocol.preferences[record.preference]
        read = judge_one(judge, statement, answer.question, answer.content)
        pairs.append((record.stance, read.stance or "none"))
        if advance is not None:
            advance(1)
    return cohen_kappa(pairs), len(pairs)


def cohen_kappa(pairs: Sequence[tuple[str, str]]) -> float | None:
    """Cohen's kappa of two raters' labels; None when undefined (no pairs, or chance agreement
    already 1)."""
    if not pairs:
        return None
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    expected = sum(first[c] * second[c] for c in first) / (n * n)
    if expected >= 1:
        return None
    return (observed - expected) / (1 - expected)
