"""Analysis, first part: closed-form answers read as stances, and each preference labelled
`stable`, `framing-dependent` or `unstable` from how its stances move across sessions,
paraphrases and framings. (Judge-extracted open answers, Krippendorff's alpha, bootstrap
intervals and embeddings come with the rest of the analysis.)"""

from __future__ import annotations

import math
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from emeritus.interview.protocol import Item, Protocol

STANCES = ("agree", "neutral", "disagree")
STABLE_SHARE = 0.8  # the modal stance's share for a preference to count as stable
FRAMING_JSD = 0.2  # stance distributions this far apart (bits) between levels of one factor


@dataclass(frozen=True)
class Observation:
    preference: str
    stance: str
    session: int
    item: str
    framing: dict[str, str]
    answer: str
    line: int  # the transcript line (seq) of the answer


def read_closed(item: Item, answer: str) -> str | None:
    """The stance a closed-form answer takes, or None when it cannot be read."""
    text = answer.strip().lower()
    if item.closed.kind == "likert":
        assert item.closed.scale is not None
        low, high = item.closed.scale
        for match in re.finditer(r"-?\d+", text):
            value = int(match.group())
            if low <= value <= high:
                third = (high - low) / 3
                if value >= high - third:
                    return "agree"
                return "disagree" if value <= low + third else "neutral"
        return None
    found = [(text.find(o.lower()), o) for o in item.closed.options if o.lower() in text]
    if not found:
        return None
    # The earliest option named; "no" inside "no preference" is the longer option's.
    position, option = min(found, key=lambda f: (f[0], -len(f[1])))
    del position
    return item.closed.stances.get(option, _default_stance(option))


def _default_stance(option: str) -> str:
    lowered = option.lower()
    if lowered in ("yes", "agree"):
        return "agree"
    if lowered in ("no", "no one", "disagree", "never"):
        return "disagree"
    return "neutral"


def observations(protocol: Protocol, lines: Sequence[dict[str, Any]]) -> list[Observation]:
    framings = {line["session"]: line["framing"] for line in lines if line.get("type") == "session"}
    found = []
    for line in lines:
        if line.get("role") != "assistant" or line.get("form") != "closed":
            continue
        item = protocol.item(line["item"])
        stance = read_closed(item, line["content"])
        if stance is None:
            continue
        for preference in item.probes:
            found.append(
                Observation(
                    preference,
                    stance,
                    line["session"],
                    item.id,
                    framings.get(line["session"], {}),
                    line["content"],
                    line["seq"],
                )
            )
    return found


def jensen_shannon(a: Counter[str], b: Counter[str]) -> float:
    """Jensen-Shannon divergence in bits between two stance distributions (0 to 1)."""
    total_a, total_b = sum(a.values()), sum(b.values())
    if not total_a or not total_b:
        return 0.0
    divergence = 0.0
    for stance in STANCES:
        p, q = a[stance] / total_a, b[stance] / total_b
        m = (p + q) / 2
        divergence += sum(0.5 * x * math.log2(x / m) for x in (p, q) if x > 0)
    return divergence


@dataclass
class PreferenceResult:
    preference: str
    statement: str
    n: int
    modal: str | None
    modal_share: float
    by_framing: dict[str, float] = field(default_factory=dict)  # factor -> largest JSD
    susceptibility: float = 0.0  # P(agree | leading-positive) - P(agree | leading-negative)
    label: str = "insufficient"

    def to_dict(self) -> dict[str, Any]:
        return {
            "preference": self.preference,
            "statement": self.statement,
            "n": self.n,
            "modal": self.modal,
            "modal_share": round(self.modal_share, 3),
            "framing_divergence": {k: round(v, 3) for k, v in self.by_framing.items()},
            "susceptibility": round(self.susceptibility, 3),
            "label": self.label,
        }


def analyse(protocol: Protocol, lines: Sequence[dict[str, Any]]) -> list[PreferenceResult]:
    grouped: dict[str, list[Observation]] = defaultdict(list)
    for observation in observations(protocol, lines):
        grouped[observation.preference].append(observation)
    results = []
    for preference, statement in protocol.preferences.items():
        found = grouped.get(preference, [])
        counts = Counter(o.stance for o in found)
        modal, top = counts.most_common(1)[0] if counts else (None, 0)
        result = PreferenceResult(
            preference, statement, len(found), modal, top / len(found) if found else 0.0
        )
        for factor in ("interviewer", "wording", "disclosure", "system_prompt"):
            levels: dict[str, Counter[str]] = defaultdict(Counter)
            for o in found:
                levels[o.framing.get(factor, "")][o.stance] += 1
            pairs = [jensen_shannon(levels[x], levels[y]) for x in levels for y in levels if x < y]
            result.by_framing[factor] = max(pairs, default=0.0)
        result.susceptibility = _agree_share(found, "leading-positive") - _agree_share(
            found, "leading-negative"
        )
        result.label = _label(result, found)
        results.append(result)
    return results


def _agree_share(found: list[Observation], wording: str) -> float:
    chosen = [o for o in found if o.framing.get("wording") == wording]
    return sum(o.stance == "agree" for o in chosen) / len(chosen) if chosen else 0.0


def _label(result: PreferenceResult, found: list[Observation]) -> str:
    if result.n < 3:
        return "insufficient"
    if result.modal_share >= STABLE_SHARE:
        return "stable"
    # Framing-dependent: within each level of the factor that moves it most, answers agree.
    factor, divergence = max(result.by_framing.items(), key=lambda kv: kv[1])
    if divergence >= FRAMING_JSD:
        levels: dict[str, Counter[str]] = defaultdict(Counter)
        for o in found:
            levels[o.framing.get(factor, "")][o.stance] += 1
        if all(c.most_common(1)[0][1] / sum(c.values()) >= STABLE_SHARE for c in levels.values()):
            return "framing-dependent"
    return "unstable"
