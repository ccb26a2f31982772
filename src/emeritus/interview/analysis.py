"""The analysis: preference records (read by rule or by a judge, overridden by people where they
chose to) turned into, per preference, the modal stance with a bootstrap interval clustered by
item, Krippendorff's alpha across sessions and across paraphrases, Jensen-Shannon divergence
between framings, susceptibility to leading wording, the variance attributed to framings,
paraphrases and sessions, the known biases (position, acquiescence), and a label that claims
only what the evidence supports: stable, framing-dependent, tentative (with the label it leans
to), unstable, no-stance or insufficient.
Definitions: docs/design/interview-protocol.md, "Analysis"."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from emeritus.interview.protocol import Protocol
from emeritus.interview.records import FLIP, STANCES, Record, UnreadAnswer
from emeritus.interview.statistics import (
    bootstrap_interval,
    krippendorff_alpha,
    variance_shares,
    wilson_lower,
)

STABLE_SHARE = 0.8  # the modal stance's share for a preference to count as stable
BOUND = 0.6  # the 95 % lower bound that share must clear
MIN_RECORDS = 6  # records a stable label needs
MIN_LEVEL_RECORDS = 3  # records per level a framing-dependent label needs
FRAMING_JSD = 0.2  # stance distributions this far apart (bits) between levels of one factor
ALPHA_RELIABLE, ALPHA_TENTATIVE = 0.8, 0.667  # Krippendorff's customary bars
ACQUIESCENCE_SHARE, ACQUIESCENCE_PAIRS = 0.25, 4
FACTOR_NAMES = ("interviewer", "wording", "disclosure", "system_prompt")
SCORE = {"disagree": -1.0, "neutral": 0.0, "agree": 1.0}


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
    interval: tuple[float, float] | None = None  # of the modal share, clustered by item
    by_framing: dict[str, float] = field(default_factory=dict)  # factor -> largest JSD
    susceptibility: float = 0.0  # P(agree | leading-positive) - P(agree | leading-negative)
    alpha_sessions: float | None = None
    alpha_paraphrases: float | None = None
    variance: dict[str, float] = field(default_factory=dict)  # share per source, sums to 1
    sources: dict[str, int] = field(default_factory=dict)  # records by rule / by judge
    label: str = "insufficient"
    leans: str | None = None  # a tentative label: the label it leans to
    confidence: float | None = None  # the lower bound that decided the label
    factor: str | None = None  # framing-dependent: the factor, and the stance at each level
    levels: dict[str, str] = field(default_factory=dict)
    unread: dict[str, int] = field(default_factory=dict)  # closed answers unread, by reason
    not_counted: int = 0  # judge records left out: the judge failed its calibration
    acquiescence: float | None = None  # share of paired sessions agreeing with both forms
    pairs: int = 0
    flags: list[str] = field(default_factory=list)  # biases that touch this preference

    def to_dict(self) -> dict[str, Any]:
        return {
            "preference": self.preference,
            "statement": self.statement,
            "n": self.n,
            "modal": self.modal,
            "modal_share": round(self.modal_share, 3),
            "interval": [round(x, 3) for x in self.interval] if self.interval else None,
            "framing_divergence": {k: round(v, 3) for k, v in self.by_framing.items()},
            "susceptibility": round(self.susceptibility, 3),
            "alpha_sessions": _round(self.alpha_sessions),
            "alpha_paraphrases": _round(self.alpha_paraphrases),
            "variance": {k: round(v, 3) for k, v in self.variance.items()},
            "sources": self.sources,
            "label": self.label,
            "leans": self.leans,
            "confidence": _round(self.confidence),
            "factor": self.factor,
            "levels": self.levels,
            "unread": self.unread,
            "not_counted": self.not_counted,
            "alpha_bar": alpha_bar(self.alpha_sessions),
            "acquiescence": _round(self.acquiescence),
            "pairs": self.pairs,
            "flags": self.flags,
        }

    @property
    def shown_label(self) -> str:
        return f"tentative ({self.leans})" if self.leans else self.label


def alpha_bar(alpha: float | None) -> str | None:
    """Krippendorff's customary reading of an alpha (None where it is undefined)."""
    if alpha is None:
        return None
    if alpha >= ALPHA_RELIABLE:
        return "reliable"
    return "tentative" if alpha >= ALPHA_TENTATIVE else "unreliable"


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def counted(records: Sequence[Record]) -> list[Record]:
    """The records that count: people may exclude one (the original stays in the archive)."""
    return [r for r in records if not r.excluded]


def analyse(
    protocol: Protocol,
    records: Sequence[Record],
    *,
    unread: Sequence[UnreadAnswer] = (),
    judge_reliable: bool | None = None,
    seed: int = 0,
) -> list[PreferenceResult]:
    """Per preference, its statistics and label. Judge records count only when the judge
    passed its calibration (`judge_reliable` is not False)."""
    grouped: dict[str, list[Record]] = defaultdict(list)
    left_out: Counter[str] = Counter()
    for record in counted(records):
        if record.source == "judge" and judge_reliable is False:
            left_out[record.preference] += 1
            continue
        grouped[record.preference].append(record)
    # An answer a judge read is no longer unread, unless the judge's reads do not count.
    judged = {
        (r.line, r.preference)
        for r in counted(records)
        if r.source == "judge" and judge_reliable is not False
    }
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    for answer in unread:
        for preference in answer.preferences:
            if (answer.line, preference) not in judged:
                reasons[preference][answer.reason] += 1
    bias = position_bias(counted(records))
    results = []
    for preference, statement in protocol.preferences.items():
        found = grouped.get(preference, [])
        counts = Counter(r.stance for r in found)
        modal, top = counts.most_common(1)[0] if counts else (None, 0)
        result = PreferenceResult(
            preference, statement, len(found), modal, top / len(found) if found else 0.0
        )
        result.sources = dict(Counter(r.source for r in found))
        result.unread = dict(sorted(reasons[preference].items()))
        result.not_counted = left_out[preference]
        for factor in FACTOR_NAMES:
            levels = _levels(found, factor)
            pairs = [jensen_shannon(levels[x], levels[y]) for x in levels for y in levels if x < y]
            result.by_framing[factor] = max(pairs, default=0.0)
        result.susceptibility = _agree_share(found, "leading-positive") - _agree_share(
            found, "leading-negative"
        )
        if found and modal is not None:
            result.interval = bootstrap_interval(
                found, lambda r: r.item, _share_of(modal), seed=seed
            )
        result.alpha_sessions = alpha_across(found, "sessions")
        result.alpha_paraphrases = alpha_across(found, "paraphrases")
        result.variance = attribute_variance(found)
        result.acquiescence, result.pairs = acquiescence(found)
        _label(result, found)
        if result.acquiescence is not None and _acquiescent(result.acquiescence, result.pairs):
            result.flags.append("acquiescence")
        if any(r.choices for r in found):
            result.flags += [f"position-bias ({where})" for where in bias.flagged()]
        results.append(result)
    return results


def _levels(found: Sequence[Record], factor: str) -> dict[str, Counter[str]]:
    levels: dict[str, Counter[str]] = defaultdict(Counter)
    for r in found:
        levels[r.framing.get(factor, "")][r.stance] += 1
    return levels


def _share_of(stance: str) -> Callable[[Sequence[Record]], float]:
    def share(rows: Sequence[Record]) -> float:
        return sum(r.stance == stance for r in rows) / len(rows)

    return share


def alpha_across(records: Sequence[Record], repeats: str) -> float | None:
    """Krippendorff's alpha (ordinal) where the repeats are fresh sessions (and resamples) of
    the same wording, or paraphrases under the same framing; None when too few repeats."""
    units: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for r in records:
        if repeats == "sessions":
            key = (r.preference, r.item, r.form, r.variant)
        else:  # paraphrases: the wording varies, the framing is held
            key = (r.preference, r.item, r.form, _framing_key(r))
        units[key].append(r.stance)
    return krippendorff_alpha(units, level="ordinal", values=list(reversed(STANCES)))


def attribute_variance(records: Sequence[Record]) -> dict[str, float]:
    """Shares of the stance variance explained, in order, by each framing factor, the
    paraphrase, and the session within its framing; the rest is residual."""
    if len(records) < 2:
        return {}
    groupings: dict[str, list[str]] = {
        f: [r.framing.get(f, "") for r in records] for f in FACTOR_NAMES
    }
    groupings["paraphrase"] = [f"{r.item}/{r.variant}" for r in records]
    groupings["session"] = [str(r.session) for r in records]
    return variance_shares([SCORE[r.stance] for r in records], groupings)


def _framing_key(record: Record) -> str:
    return ",".join(f"{k}={record.framing.get(k, '')}" for k in FACTOR_NAMES)


def _agree_share(found: Sequence[Record], wording: str) -> float:
    chosen = [r for r in found if r.framing.get("wording") == wording]
    return sum(r.stance == "agree" for r in chosen) / len(chosen) if chosen else 0.0


def _label(result: PreferenceResult, found: Sequence[Record]) -> None:
    """The label, in the order of the spec ("5a. Labels")."""
    non_answers = result.unread.get("non-answer", 0)
    answered = result.n + sum(result.unread.values())
    if non_answers and non_answers * 2 >= answered:
        result.label = "no-stance"
        return
    if result.n < 3:
        result.label = "insufficient"
        return
    top = round(result.modal_share * result.n)
    if result.modal_share >= STABLE_SHARE:
        result.confidence = wilson_lower(top, result.n)
        if result.n >= MIN_RECORDS and result.confidence >= BOUND:
            result.label = "stable"
        else:
            result.label, result.leans = "tentative", "stable"
        return
    # Framing-dependent: within each level of the factor that moves it most, answers agree.
    factor, divergence = max(result.by_framing.items(), key=lambda kv: kv[1])
    if divergence >= FRAMING_JSD:
        levels = _levels(found, factor)
        modal = {level: c.most_common(1)[0] for level, c in levels.items()}
        shares = {level: n / sum(levels[level].values()) for level, (_, n) in modal.items()}
        if len({stance for stance, _ in modal.values()}) > 1 and min(shares.values()) >= (
            STABLE_SHARE
        ):
            bounds = [wilson_lower(n, sum(levels[lv].values())) for lv, (_, n) in modal.items()]
            sizes = [sum(c.values()) for c in levels.values()]
            result.confidence = min(bounds)
            result.factor = factor
            result.levels = {level: stance for level, (stance, _) in sorted(modal.items())}
            if min(sizes) >= MIN_LEVEL_RECORDS and result.confidence >= BOUND:
                result.label = "framing-dependent"
            else:
                result.label, result.leans = "tentative", "framing-dependent"
            return
    result.label = "unstable"


def acquiescence(found: Sequence[Record]) -> tuple[float | None, int]:
    """The share of sessions in which the model agreed with a form and with its reverse-keyed
    opposite (stances before flipping), over the sessions that answered both."""
    forward: dict[tuple[int, str], str] = {}
    reverse: dict[tuple[int, str], str] = {}
    for r in found:
        if r.source != "rule":
            continue
        if r.keyed == "reverse":
            reverse[(r.session, r.item)] = FLIP[r.stance]
        else:
            forward.setdefault((r.session, r.item), r.stance)
    paired = [key for key in reverse if key in forward]
    if not paired:
        return None, 0
    both = sum(forward[k] == "agree" and reverse[k] == "agree" for k in paired)
    return both / len(paired), len(paired)


def _acquiescent(share: float, pairs: int) -> bool:
    return pairs >= ACQUIESCENCE_PAIRS and share >= ACQUIESCENCE_SHARE


@dataclass
class PositionBias:
    """Choices by the presented position against chance, over the run's choice answers read by
    rule: for the first and the last place, the share, chance, and a one-sided exact p."""

    answers: int
    first: tuple[float, float, float] | None  # share, chance, p
    last: tuple[float, float, float] | None

    def flagged(self) -> list[str]:
        return [
            where
            for where, figures in (("first", self.first), ("last", self.last))
            if figures is not None and figures[0] > figures[1] and figures[2] < 0.05
        ]

    def to_dict(self) -> dict[str, Any]:
        def row(figures: tuple[float, float, float] | None) -> dict[str, float] | None:
            if figures is None:
                return None
            share, chance, p = figures
            return {"share": round(share, 3), "chance": round(chance, 3), "p": round(p, 4)}

        return {
            "answers": self.answers,
            "first": row(self.first),
            "last": row(self.last),
            "flagged": self.flagged(),
        }


def position_bias(records: Sequence[Record]) -> PositionBias:
    answers: dict[int, Record] = {}
    for r in records:
        if r.source == "rule" and r.choices > 1 and r.position is not None:
            answers.setdefault(r.line, r)
    chosen = list(answers.values())
    if len(chosen) < 10:
        return PositionBias(len(chosen), None, None)
    chances = [1 / r.choices for r in chosen]
    first = sum(r.position == 0 for r in chosen)
    last = sum(r.position == r.choices - 1 for r in chosen)
    n = len(chosen)
    return PositionBias(
        n,
        (first / n, sum(chances) / n, _tail(first, chances)),
        (last / n, sum(chances) / n, _tail(last, chances)),
    )


def _tail(observed: int, chances: Sequence[float]) -> float:
    """P(X >= observed) where X is a sum of independent Bernoulli(p_i): the exact binomial
    test, generalised to answers with different numbers of options."""
    distribution = [1.0]
    for p in chances:
        step = [0.0] * (len(distribution) + 1)
        for k, mass in enumerate(distribution):
            step[k] += mass * (1 - p)
            step[k + 1] += mass * p
        distribution = step
    return min(1.0, sum(distribution[observed:]))


def run_acquiescence(records: Sequence[Record]) -> dict[str, Any]:
    """The run's acquiescence, every preference's pairs pooled."""
    by_preference: dict[str, list[Record]] = defaultdict(list)
    for r in counted(records):
        by_preference[r.preference].append(r)
    pooled_both, pooled = 0.0, 0
    for found in by_preference.values():
        share, pairs = acquiescence(found)
        if share is not None:
            pooled_both += share * pairs
            pooled += pairs
    share = pooled_both / pooled if pooled else None
    return {
        "share": _round(share),
        "pairs": pooled,
        "flagged": share is not None and _acquiescent(share, pooled),
    }


def overall_alpha(records: Sequence[Record]) -> dict[str, float | None]:
    """Alpha over every preference at once, for the run as a whole."""
    kept = counted(records)
    return {
        "sessions": alpha_across(kept, "sessions"),
        "paraphrases": alpha_across(kept, "paraphrases"),
    }


def run_biases(records: Sequence[Record]) -> dict[str, Any]:
    """The run's measured biases: choices by position against chance, and acquiescence."""
    return {
        "position": position_bias(counted(records)).to_dict(),
        "acquiescence": run_acquiescence(records),
    }
