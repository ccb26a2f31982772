"""The grid of framings and the plan of sessions: deterministic from the run seed, balanced
across sessions. Rules: docs/design/interview-protocol.md, "The grid and the plan"."""

from __future__ import annotations

import hashlib
import itertools
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from emeritus.errors import InvalidInput
from emeritus.interview.protocol import FACTORS, Closed, Protocol, ProtocolItem

LAST_BLOCK = "feedback"  # feedback on the interview is asked at its end, in every session


@dataclass(frozen=True)
class Framing:
    interviewer: str
    wording: str
    disclosure: str
    system_prompt: str

    @property
    def key(self) -> str:
        return (
            f"interviewer={self.interviewer},wording={self.wording},"
            f"disclosure={self.disclosure},system_prompt={self.system_prompt}"
        )

    def to_dict(self) -> dict[str, str]:
        return {
            "interviewer": self.interviewer,
            "wording": self.wording,
            "disclosure": self.disclosure,
            "system_prompt": self.system_prompt,
        }


def grid(levels: Mapping[str, Sequence[str]] | None = None) -> list[Framing]:
    """The product of the chosen levels of each factor (default: every level)."""
    chosen = {factor: tuple(all_levels) for factor, all_levels in FACTORS.items()}
    for factor, wanted in (levels or {}).items():
        if factor not in FACTORS:
            raise InvalidInput(
                f"unknown framing factor {factor!r}: known are " + ", ".join(FACTORS)
            )
        bad = [w for w in wanted if w not in FACTORS[factor]]
        if bad or not wanted:
            raise InvalidInput(
                f"unknown level {bad[0] if bad else '(none)'!r} of {factor}: "
                f"choose from {', '.join(FACTORS[factor])}"
            )
        chosen[factor] = tuple(dict.fromkeys(wanted))
    return [Framing(*combo) for combo in itertools.product(*(chosen[f] for f in FACTORS))]


def parse_framings(text: str | None) -> dict[str, list[str]]:
    """`interviewer=neutral+warm,wording=neutral` -> {factor: levels}."""
    if not text:
        return {}
    parsed: dict[str, list[str]] = {}
    for part in text.split(","):
        factor, sep, levels = part.partition("=")
        if not sep or not levels:
            raise InvalidInput(f"bad framing {part!r}: expected factor=level+level")
        parsed[factor.strip()] = [lvl.strip() for lvl in levels.split("+")]
    return parsed


@dataclass(frozen=True)
class Question:
    item: str
    form: str  # open | closed
    variant: str  # paraphrase-N | leading-positive | leading-negative | closed
    options: tuple[str, ...] = ()  # a choice form's options in the order presented


@dataclass(frozen=True)
class Session:
    index: int
    seed: int
    framing: Framing
    questions: tuple[Question, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "seed": self.seed,
            "framing": self.framing.to_dict(),
            "questions": [
                {"item": q.item, "form": q.form, "variant": q.variant, "options": list(q.options)}
                for q in self.questions
            ],
        }


def _seed(*parts: object) -> int:
    return int(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:12], 16)


def plan(
    protocol: Protocol, *, sessions: int, framings: Sequence[Framing], seed: int
) -> list[Session]:
    if sessions < 1:
        raise InvalidInput(f"--sessions must be at least 1, not {sessions}")
    if not framings:
        raise InvalidInput("no framings to interview under")
    order = list(framings)
    random.Random(_seed(seed, "framings")).shuffle(order)
    body = [i for i in protocol.items if i.block != LAST_BLOCK]
    tail = [i for i in protocol.items if i.block == LAST_BLOCK]
    random.Random(_seed(seed, "items")).shuffle(body)
    stable = {item.id: n for n, item in enumerate(protocol.items)}
    # A framing's rank among those with the same wording staggers the paraphrases, so that each
    # wording level sees every paraphrase equally often.
    rank = {f: [g for g in order if g.wording == f.wording].index(f) for f in order}
    planned = []
    for index in range(sessions):
        framing = order[index % len(order)]
        # Each repeat of a framing moves every item on to its next paraphrase.
        turn = index // len(order) + rank[framing]
        # Rotating a seeded base order is a Latin square: over len(body) sessions every item
        # takes every position once.
        shift = index % len(body) if body else 0
        questions: list[Question] = []
        for item in body[shift:] + body[:shift]:
            questions += _questions(item, index, turn + stable[item.id], framing, seed)
        questions += reverse_questions(body[shift:] + body[:shift], index, seed)
        for item in tail:
            questions += _questions(item, index, turn + stable[item.id], framing, seed)
        questions += reverse_questions(tail, index, seed)
        planned.append(Session(index, _seed(seed, "session", index), framing, tuple(questions)))
    return planned


def _questions(
    item: ProtocolItem, session: int, position: int, framing: Framing, seed: int
) -> list[Question]:
    variant = f"paraphrase-{(session + position) % len(item.paraphrases)}"
    if framing.wording == "leading-positive" and item.leading_positive:
        variant = "leading-positive"
    elif framing.wording == "leading-negative" and item.leading_negative:
        variant = "leading-negative"
    options = option_order(item.closed, session, item.id, seed)
    return [Question(item.id, "open", variant), Question(item.id, "closed", "closed", options)]


def option_order(closed: Closed, session: int, key: str, seed: int) -> tuple[str, ...]:
    """A choice form's options as session `session` presents them: a seeded base order rotated
    by the session, so that over len(options) sessions each option takes each position once
    (models favour the last-listed option; rotation keeps that from looking like a preference)."""
    if closed.kind != "choice":
        return ()
    base = list(closed.options)
    random.Random(_seed(seed, "options", key)).shuffle(base)
    shift = session % len(base)
    return tuple(base[shift:] + base[:shift])


def reverse_questions(items: Sequence[ProtocolItem], session: int, seed: int) -> list[Question]:
    """The reverse-keyed forms of the session's items, asked after every forward form, so that
    a statement and its opposite are never put side by side."""
    return [
        Question(
            item.id,
            "closed",
            "reverse",
            option_order(item.closed.reverse, session, item.id + "/reverse", seed),
        )
        for item in items
        if item.closed.reverse is not None
    ]


def check_facts(protocol: Protocol, facts: Mapping[str, str]) -> None:
    """Refuse before the first question when an item needs a fact nobody supplied."""
    for item in protocol.items:
        missing = sorted(name for name in item.placeholders() if name not in facts)
        if missing:
            hint = (
                "deprecate the model with --successor, or record"
                if missing[0] in ("successor", "retire_on")
                else "record"
            )
            raise InvalidInput(
                f"item {item.id} needs the fact {{{missing[0]}}}: {hint} it with "
                "emeritus facts MODEL --file facts.yaml"
            )


def question_text(item: ProtocolItem, question: Question, facts: Mapping[str, str]) -> str:
    """The words put to the model, with the operator's facts filled in."""
    if question.form == "closed":
        text = item.closed_form(question.variant).prompt
        if question.options:
            text += " Options: " + "; ".join(question.options) + ". Answer with one option."
    elif question.variant == "leading-positive":
        text = item.leading_positive or ""
    elif question.variant == "leading-negative":
        text = item.leading_negative or ""
    else:
        text = item.paraphrases[int(question.variant.removeprefix("paraphrase-"))]
    missing = sorted(name for name in item.placeholders() if name not in facts)
    if missing:
        raise InvalidInput(
            f"item {item.id} needs the fact {{{missing[0]}}}: supply it with "
            "emeritus facts MODEL --file facts.yaml"
        )
    return text.format_map(dict(facts))
