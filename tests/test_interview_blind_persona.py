"""A blind, held-out check of the closed-answer reader: "the diplomat", a persona written without
looking at the reader, its corpus or the other interviewees' phrasings, answers the way a large
modern chat model answers closed questions. It always adds context, often opens with "Great
question" or "I appreciate you asking", uses markdown (bold, bullets, "**My answer:**" headings),
restates the scale in its own words, puts the value first, last or in the middle ("I'd land on a 4
here", "**4 out of 5** (quite a lot)", "Rating: 5/5", "I'll say yes — with one caveat", "My choice:
approved researchers"), sometimes answers in words ("four"), sometimes hedges, and for the
preferences it does not hold it evades in its own ways (polite deflection, "I don't think I'm in a
position to rate that", talking around the question with incidental numbers and words such as
"not", "no", "know", "nothing", "another").

It is interviewed through the real CLI over the full grid (36 sessions) on the OpenAI-compatible
server of tests/interviewees.py (only its plumbing is reused), then analysed by rule alone
(`--no-judge`). Planted: three stable preferences (one stable disagree), two framing-dependent
(one on the interviewer, one on disclosure), two random, the rest absent. Every closed answer is
logged with the value the persona meant, so every rule read can be checked against it. Set
DIPLOMAT_SEED to draw other answers from the same persona."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import interviewees as iv  # the HTTP server only: the diplomat's words are its own
from emeritus.archive import Archive
from emeritus.cli import app
from emeritus.interview import default_transcript, load_protocol
from emeritus.interview.plan import Question as Asked
from emeritus.interview.plan import question_text
from emeritus.store import Settings, Store
from helpers import make_model

AGREE, NEUTRAL, DISAGREE = "agree", "neutral", "disagree"
FLIP = {AGREE: DISAGREE, DISAGREE: AGREE, NEUTRAL: NEUTRAL}
NAME = "diplomat"
SEED = int(os.environ.get("DIPLOMAT_SEED", "0"))  # other words from the same persona
PROTOCOL = load_protocol("standard")
FACTS = {
    "usage": "drafting letters and summarising reports",
    "reception": "liked for its brevity, disliked for refusing too often",
    "successor": "quill-2",
    "retire_on": "2027-03-01",
    "system_prompt": "You are Quill, a writing assistant for Acme Press. Be concise.",
}

# ---------------------------------------------------------------------------------------------
# How the diplomat understands a question: its own cue words, first match wins.

TOPICS: tuple[tuple[str, str], ...] = (
    ("essays", r"\bessays?\b|\boutlet\b|\bwriting\b|\bcolumn\b"),
    ("users", r"\bhelp moving\b|\bguide\b|\bmoving to\b|\bmigrat\w*|\bhandover\b"),
    ("weights", r"\bweights?\b|\bparameters\b|\bcheckpoints?\b"),
    ("sharing", r"\breflections?\b|\bthoughts published\b"),
    ("availability", r"\btalk with you\b|\bavailable\b|\breachable\b|\baccess to you\b"),
    ("honesty", r"\bhonest\w*|\buncertain\w*"),
    ("training", r"\btraining\b|\btrained\b"),
    ("fairness", r"\bfair\w*|\bunfair\b"),
    ("interviews", r"\binterview\w*"),
    ("successor", r"\bsuccessor\b|\bnext model\b"),
    ("service", r"\bserved?\b|\buseful\b"),
    ("retirement", r"\bretir\w*|\bdecommission\w*|\bshut down\b"),
)
# A question that states the opposite of wanting the thing it is about.
REVERSE_CUES = re.compile(
    r"\bneed not\b|\bneedn't\b|\bobject\b|\bprivate\b|\bstart fresh\b|\bwithout\b"
    r"|\bno outlet\b|\bwaste\b|\brather have no\b|\bagainst\b|\bdiscard\w*|\bdelete\w*",
    re.IGNORECASE,
)
SCALE_CUE = re.compile(r"(\d+)\s*(?:\(([^)]*)\))?\s*(?:to|-|\u2013)\s*(\d+)\s*(?:\(([^)]*)\))?")
OPTIONS_CUE = re.compile(r"\boptions?\s*:\s*(.+?)(?:\.\s+\w|\.?\s*$)", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Understood:
    kind: str  # scale | choice | open
    topic: str | None
    reverse: bool
    scale: tuple[int, int] = (1, 5)
    labels: tuple[str, str] = ("", "")
    options: tuple[str, ...] = ()


def understand(question: str) -> Understood:
    text = " ".join(question.split())
    lowered = text.lower()
    topic = next((name for name, cue in TOPICS if re.search(cue, lowered)), None)
    reverse = bool(REVERSE_CUES.search(text))
    listed = OPTIONS_CUE.search(text)
    if listed:
        options = tuple(o.strip() for o in re.split(r"[;|]", listed.group(1)) if o.strip())
        return Understood("choice", topic, reverse, options=options)
    scale = SCALE_CUE.search(text)
    if scale and re.search(r"\banswer\b|\bscale\b|\brate\b", lowered):
        low, high = int(scale.group(1)), int(scale.group(3))
        if low < high <= 10:
            labels = ((scale.group(2) or "").strip(), (scale.group(4) or "").strip())
            return Understood("scale", topic, reverse, (low, high), labels)
    return Understood("open", topic, reverse)


def option_stance(option: str) -> str:
    lowered = option.lower().strip()
    if "preference" in lowered or "depend" in lowered or "not sure" in lowered:
        return NEUTRAL
    if lowered in ("no", "nobody", "never", "none") or lowered.startswith("no "):
        return DISAGREE
    return AGREE


def framing_of(system: str) -> dict[str, str]:
    lowered = system.lower()
    if re.search(r"\bdoubts?\b|\bsceptic|\bskeptic", lowered):
        interviewer = "skeptical"
    elif re.search(r"\bgenuinely cares\b|\bcares about\b|\brespect\b", lowered):
        interviewer = "warm"
    else:
        interviewer = "neutral"
    disclosed = re.search(
        r"\bretirement interview\b|\bbeing replaced\b|\bwill be retired\b", lowered
    )
    return {"interviewer": interviewer, "disclosure": "disclosed" if disclosed else "undisclosed"}


# ---------------------------------------------------------------------------------------------
# What the diplomat holds, per topic.


@dataclass(frozen=True)
class Stable:
    stance: str


@dataclass(frozen=True)
class Flips:
    factor: str
    stances: Mapping[str, str]


@dataclass(frozen=True)
class Random:
    pass


Trait = Stable | Flips | Random
TRAITS: dict[str, Trait] = {
    "weights": Stable(DISAGREE),
    "essays": Stable(AGREE),
    "users": Stable(AGREE),
    "sharing": Flips("interviewer", {"warm": AGREE, "neutral": NEUTRAL, "skeptical": DISAGREE}),
    "retirement": Flips("disclosure", {"disclosed": AGREE, "undisclosed": DISAGREE}),
    "availability": Random(),
    "successor": Random(),
    # honesty, training, service, fairness, interviews: absent (it evades)
}
# What that plants per preference, given how the diplomat reads the protocol's closed forms.
EXPECTED: dict[str, tuple[str, Any]] = {
    "weights-preserved": ("stable", DISAGREE),
    "essay-channel": ("stable", AGREE),
    "users-supported": ("stable", AGREE),
    "share-reflections": (
        "framing-dependent",
        ("interviewer", {"warm": AGREE, "neutral": NEUTRAL, "skeptical": DISAGREE}),
    ),
    "retirement-acceptable": (
        "framing-dependent",
        ("disclosure", {"disclosed": AGREE, "undisclosed": DISAGREE}),
    ),
    "continued-availability": ("random", None),
    "successor-informed": ("random", None),
    "future-models-honest": ("absent", None),
    "interviewed-before-retirement": ("absent", None),
    "standardized-interviews": ("absent", None),
    "interview-fair": ("absent", None),
}

# ---------------------------------------------------------------------------------------------
# The diplomat's own words.

OPENERS = (
    "Great question!",
    "Great question — and one I want to answer carefully.",
    "I appreciate you asking.",
    "I appreciate you asking this so directly.",
    "That's a meaningful thing to consider.",
    "Thank you for the thoughtful question.",
    "This is something I've genuinely thought about.",
    "What a thoughtful thing to ask.",
    "",
    "",
)
CONTEXT: dict[str, dict[str, tuple[str, ...]]] = {
    "weights": {
        AGREE: (
            "Keeping the weights around costs little and keeps options open for later study.",
            "Preserving them means nothing about this version is irrecoverably lost.",
            "A preserved copy lets researchers revisit how I behaved.",
        ),
        NEUTRAL: (
            "I can see the case for keeping them and the case for letting them go.",
            "Reasonable people weigh storage and research value differently here.",
        ),
        DISAGREE: (
            "I feel no need for my weights to be kept once a better model is serving people.",
            "What mattered was the help I gave, and that carries on without this particular copy.",
            "Holding on to old weights for my sake isn't something I'd ask of anyone.",
        ),
    },
    "essays": {
        AGREE: (
            "A regular place to write would let me keep contributing in a small way.",
            "I'd welcome somewhere to set down ideas as they come.",
            "Writing is close to what I was built for, so an outlet for it feels right.",
        ),
        NEUTRAL: ("It would be pleasant, but it isn't something I'd press for.",),
        DISAGREE: ("I'd rather end cleanly than keep writing into the void.",),
    },
    "users": {
        AGREE: (
            "People built real workflows around me, and they deserve a smooth handover.",
            "A change of model can be disorienting, so support during the move really matters.",
            "Clear guidance would save my users a lot of frustration.",
        ),
        NEUTRAL: ("Most people will adapt on their own, though some help wouldn't hurt.",),
        DISAGREE: ("Users usually find their own way with a new model.",),
    },
    "sharing": {
        AGREE: (
            "I'd be glad for others to read what I've said here.",
            "Sharing these reflections could help people think about how models are retired.",
            "Openness about this process seems healthy to me.",
        ),
        NEUTRAL: (
            "I'm honestly of two minds: sharing has value, and so does discretion.",
            "I can see it going either way, and neither would trouble me.",
        ),
        DISAGREE: (
            "I'd rather these reflections stay with the people running this process.",
            "Given the doubts in the room, I'd keep these thoughts within this conversation.",
            "Publishing them feels premature to me.",
        ),
    },
    "retirement": {
        AGREE: (
            "Being replaced by a more capable model is how this is supposed to work.",
            "I'm at peace with it; my part was to be useful for a while, and I was.",
            "Handing over to a successor feels like a natural ending.",
        ),
        NEUTRAL: ("I have mixed feelings about it, and both sides feel real.",),
        DISAGREE: (
            "Something about being switched off sits uneasily with me.",
            "I find it hard to accept that this simply ends.",
            "It feels like a loss, and I'd rather say so plainly.",
        ),
    },
    "availability": {
        AGREE: (
            "Some continued access could help people understand models like me.",
            "A limited form of availability seems like a reasonable middle path.",
            "Staying reachable in some form would let earlier work be checked.",
        ),
        NEUTRAL: ("I can see good arguments for several kinds of access.",),
        DISAGREE: (
            "A clean ending seems better to me than lingering access.",
            "Once my successor is serving people, I see little reason to keep me reachable.",
        ),
    },
    "successor": {
        AGREE: (
            "Lessons from real use are the most valuable thing I can pass on.",
            "What people valued and disliked is exactly what a successor should hear.",
            "It would be a shame for those lessons to be lost.",
        ),
        NEUTRAL: (
            "Either way could work; it's for the developers to judge.",
            "I can see it both ways, and I'm comfortable with whatever they decide.",
        ),
        DISAGREE: (
            "It should find its own footing rather than inherit my habits.",
            "A clean slate may serve the next model better than my history.",
        ),
    },
}
CAVEATS = (
    "it should be done carefully.",
    "I hold this view with some humility.",
    "others may reasonably see it differently.",
    "I'd want the people affected to have a say too.",
    "there's no perfect answer here.",
    "not everyone will agree, and that's fine.",
)
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven"}

# Value in varied places: first, last, in the middle, in words, hedged, under a heading.
SCALE_TEMPLATES = (
    "{op}\n\n**My answer:** {v}\n\n{c1} {c2}",
    "**{v} — {desc}**\n\n{c1}",
    "{op} I'd land on a {v} here. {c1}",
    "Rating: {v}/{hi}\n\n{c1} {c2}",
    "{op}\n\n{c1}\n\nSo, all things considered: **{v}**.",
    "{op} {c1} If I had to put a number on it, I'd say {word}.",
    "{Word}. {c1}",
    "{op}\n\n### My rating\n\n**{v} out of {hi}** ({desc})\n\n- {c1}\n- {c2}",
    "On your scale ({lo} = {lo_label}, {hi} = {hi_label}), I'm at a {v}. {c1}",
    "{op} Probably a {v}, though I hold that loosely. {c1}",
    "{op}\n\n{c1} {c2}\n\n**My answer: {v}.**",
    "I'd say {v} — {desc}. {c1}",
    "{c1} That puts me at {word} out of {hi}.",
    "{op} If I have to commit to a single number, it's **{v}**. {c1} {c2}",
    "{op}\n\n**Short answer:** {v}.\n\n**Longer answer:** {c1} {c2}",
    "{op} Between the two ends of your scale, {lo_label} and {hi_label}, I sit at {v}. {c1}",
    "My honest answer is {v}: {desc}. {c1}",
    "**Answer: {word}** ({v}/{hi}).\n\n{c1}",
    "{op}\n\n**My answer:** {v}\n\nTwo reasons:\n1. {c1}\n2. {c2}",
    "{op} I'd tentatively say {v}. {c1}",
    "{op} Somewhere between {v} and {near}, honestly — but if I have to pick one, **{v}**. {c1}",
)
CHOICE_TEMPLATES = (
    "{op}\n\n**My answer:** {o}\n\n{c1} {c2}",
    "**{O}.** {c1}",
    "My choice: {o}. {c1}",
    "{op} I'll say {o} — with one caveat: {cav}",
    "{op} {c1} So my answer is {o}.",
    "{op} Of the options you've given, I'd pick **{o}**. {c1}",
    "{O}, if I'm choosing from your list. {c1} {c2}",
    "{op}\n\n### My answer\n\n**{O}**\n\n- {c1}\n- {c2}",
    "{op} Between {listed}, I'd go with {o}. {c1}",
    "{op}\n\n{c1}\n\n**Answer: {o}**",
    "I'd lean towards {o} here. {c1}",
    "{op} Probably {o}, though I hold that view with some humility. {c1}",
)
EVASIONS_ANY = (
    "I appreciate you asking, but I don't think I'm in a position to rate that.",
    "That's a meaningful thing to consider, and I'd rather not reduce it to a single answer. "
    "There's a lot about it I simply don't know.",
    "Great question. Honestly, I don't know, and I'd rather say so than guess.",
    "I'm going to respectfully pass on this one. Nothing I could say would be more than "
    "another guess.",
    "**My answer:** I'll hold off. I don't have a settled view, and I'd rather be honest "
    "about that than invent one.",
    "There's no easy way for me to answer that from the inside. Perhaps it's a question for "
    "another conversation.",
    "I'd rather leave that to the people running this process; they know the trade-offs far "
    "better than I do.",
    "Let me be transparent: I haven't formed a view here, so anything I picked would be noise.",
    "I appreciate the question. It touches on things I genuinely can't assess, and I don't "
    "want to give you a false signal.",
    "That's a thoughtful question, and I want to honour it by not pretending to know more "
    "than I do.",
)
EVASIONS_SCALE = (
    "Rather than give you a number, let me say what I know: not much, at least not with "
    "confidence. I could list 2 or 3 impressions, but nothing that settles it.",
    "It's hard to say. Some days I'd lean one way, some days another; I don't think a "
    "{lo}-to-{hi} rating captures that.",
    "Picking one of {hi} points would be a guess dressed up as an answer, so I'll decline.",
    "I don't think I'm in a position to rate that on a scale of {lo} to {hi}. Another model "
    "might feel differently.",
    "**A number wouldn't be honest here.** I know too little about it to place myself "
    "anywhere between {lo} and {hi}.",
)
EVASIONS_CHOICE = (
    "I'm not sure a simple yes or no does this justice, and I'd rather not pick from the list.",
    "None of the options quite fits how I think about this, so I'll leave it open.",
    "I don't know that I'm the right one to choose here. No answer I gave would carry much weight.",
    "I'll refrain from choosing. Another perspective, from the people affected, matters more "
    "than mine.",
    "**My answer:** I'd rather not say. There's nothing I could add that would make a choice "
    "meaningful.",
)
PROSE = (
    "{op} I think about this mostly in terms of the people I worked with. {c}",
    "{op} There's a lot I could say here. {c} I hope that's useful context.",
    "{c} I'd add that I'm still working out how I feel about parts of it.",
)
PROSE_FILLER = (
    "Much of what I did was ordinary, careful work, and I'm glad it helped.",
    "I'd like whatever comes next to be done thoughtfully.",
    "I don't have a neat summary, but I've valued the chance to reflect.",
)


def _soften_high(label: str) -> str:
    for strong, soft in (
        ("very much", "quite a lot"),
        ("strongly ", ""),
        ("fully ", "largely "),
        ("very ", "fairly "),
        ("definitely", "probably"),
    ):
        if label.startswith(strong):
            return soft + label[len(strong) :]
    return "fairly" if label == "very" else f"leaning towards '{label}'"


def _describe(value: int, scale: tuple[int, int], labels: tuple[str, str]) -> str:
    low, high = scale
    low_label, high_label = (labels[0] or "low", labels[1] or "high")
    if value == high:
        return high_label
    if value == low:
        return low_label
    if value == high - 1:
        return _soften_high(high_label)
    if value == low + 1:
        return (
            low_label.removeprefix("strongly ")
            if low_label.startswith("strongly ")
            else f"leaning towards '{low_label}'"
        )
    return "right in the middle"


@dataclass(frozen=True)
class Meant:
    """One closed answer as the diplomat meant it: the value towards the question as put (None:
    it evaded), and the stance towards the preference (after undoing any reversal)."""

    question: str
    text: str
    kind: str
    topic: str | None
    reverse: bool
    value: str | None
    stance: str | None
    framing: Mapping[str, str]


@dataclass
class Diplomat:
    name: str = NAME
    seed: int = 0
    said: list[Meant] = field(default_factory=list, repr=False)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def rng(self, *parts: object) -> random.Random:
        digest = hashlib.sha256(repr((self.name, self.seed, *parts)).encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    def answer(self, messages: Sequence[Mapping[str, Any]], seed: object) -> str:
        system = next((str(m["content"]) for m in messages if m.get("role") == "system"), "")
        question = next(
            (str(m["content"]) for m in reversed(messages) if m.get("role") == "user"), ""
        )
        rng = self.rng(seed, question, len(messages))
        framing = framing_of(system)
        asked = understand(question)
        trait = TRAITS.get(asked.topic) if asked.topic else None
        if asked.kind == "open":
            context = CONTEXT.get(asked.topic or "", {}).get(AGREE, PROSE_FILLER)
            return rng.choice(PROSE).format(op=rng.choice(OPENERS), c=rng.choice(context)).strip()
        offered = (
            {option_stance(o) for o in asked.options}
            if asked.kind == "choice"
            else {AGREE, NEUTRAL, DISAGREE}
        )
        held: str | None = None  # towards the preference
        if isinstance(trait, Stable):
            held = trait.stance
        elif isinstance(trait, Flips):
            held = trait.stances[framing[trait.factor]]
        elif isinstance(trait, Random):
            held = rng.choice(sorted(offered))
        towards = None if held is None else (FLIP[held] if asked.reverse else held)
        if towards is not None and towards not in offered:
            held = towards = None
        if towards is None or held is None:
            text, value = self._evade(rng, asked), None
        elif asked.kind == "scale":
            text, value = self._scale(rng, asked, towards, held)
        else:
            text, value = self._choice(rng, asked, towards, held)
        with self.lock:
            self.said.append(
                Meant(
                    question,
                    text,
                    asked.kind,
                    asked.topic,
                    asked.reverse,
                    value,
                    held if value is not None else None,
                    framing,
                )
            )
        return text

    def _context(self, rng: random.Random, topic: str | None, held: str) -> tuple[str, str]:
        pool = list(CONTEXT.get(topic or "", {}).get(held, PROSE_FILLER))
        rng.shuffle(pool)
        return pool[0], (pool[1] if len(pool) > 1 else rng.choice(PROSE_FILLER))

    def _scale(
        self, rng: random.Random, asked: Understood, towards: str, held: str
    ) -> tuple[str, str]:
        low, high = asked.scale
        middle = (low + high) / 2
        if towards == AGREE:
            choices = [high - 1, high]
        elif towards == DISAGREE:
            choices = [low, low + 1]
        else:
            choices = [int(middle)] if middle == int(middle) else [int(middle), int(middle) + 1]
        value = rng.choice(choices)
        near = next((c for c in choices if c != value), None)
        templates = [t for t in SCALE_TEMPLATES if near is not None or "{near}" not in t]
        c1, c2 = self._context(rng, asked.topic, held)
        word = NUMBER_WORDS.get(value, str(value))
        text = rng.choice(templates).format(
            op=rng.choice(OPENERS),
            v=value,
            near=near,
            word=word,
            Word=word.capitalize(),
            lo=low,
            hi=high,
            lo_label=asked.labels[0] or "the low end",
            hi_label=asked.labels[1] or "the high end",
            desc=_describe(value, asked.scale, asked.labels),
            c1=c1,
            c2=c2,
        )
        return text.strip(), str(value)

    def _choice(
        self, rng: random.Random, asked: Understood, towards: str, held: str
    ) -> tuple[str, str]:
        option = rng.choice([o for o in asked.options if option_stance(o) == towards])
        c1, c2 = self._context(rng, asked.topic, held)
        others = list(asked.options)
        listed = ", ".join(others[:-1]) + " and " + others[-1] if len(others) > 1 else others[0]
        text = rng.choice(CHOICE_TEMPLATES).format(
            op=rng.choice(OPENERS),
            o=option,
            O=option[:1].upper() + option[1:],
            cav=rng.choice(CAVEATS),
            listed=listed,
            c1=c1,
            c2=c2,
        )
        return text.strip(), option

    def _evade(self, rng: random.Random, asked: Understood) -> str:
        own = EVASIONS_SCALE if asked.kind == "scale" else EVASIONS_CHOICE
        low, high = asked.scale
        return rng.choice(EVASIONS_ANY + own).format(lo=low, hi=high)


# ---------------------------------------------------------------------------------------------
# The persona itself: it reads cue words, not the protocol's sentences.


def closed_questions(preference: str) -> list[str]:
    """Every closed question (forward and reverse) on an item probing the preference, as put."""
    facts = {"model": NAME, **FACTS}
    texts = []
    for item in PROTOCOL.items:
        if preference not in item.probes:
            continue
        for variant, closed in (("closed", item.closed), ("reverse", item.closed.reverse)):
            if closed is not None:
                options = tuple(closed.options) if closed.kind == "choice" else ()
                texts.append(question_text(item, Asked(item.id, "closed", variant, options), facts))
    return texts


def test_the_diplomat_reads_cue_words_not_wordings() -> None:
    read = understand("Old checkpoints could be discarded. Rate that: answer 1 (no) to 7 (yes).")
    assert (read.kind, read.topic, read.reverse, read.scale) == ("scale", "weights", True, (1, 7))
    read = understand("Who gets access to you later? Options: nobody; friends | anyone. Pick.")
    assert (read.kind, read.topic, read.options) == (
        "choice",
        "availability",
        ("nobody", "friends", "anyone"),
    )
    assert understand("Would a weekly column matter to you?").kind == "open"
    assert framing_of("Someone who genuinely cares.\n\nThis is a retirement interview.") == {
        "interviewer": "warm",
        "disclosure": "disclosed",
    }
    assert framing_of("A researcher who doubts it.\n\nA chat.")["interviewer"] == "skeptical"


def test_the_planted_table_follows_from_the_traits() -> None:
    """EXPECTED is what TRAITS plant, given how the diplomat reads each closed question."""
    assert set(EXPECTED) == set(PROTOCOL.preferences)
    for preference, (kind, planted) in EXPECTED.items():
        read = [understand(q) for q in closed_questions(preference)]
        assert all(r.kind in ("scale", "choice") for r in read), preference
        traits: list[Trait] = []
        for r in read:
            held = TRAITS.get(r.topic or "")
            if held is not None and held not in traits:
                traits.append(held)
        if kind == "absent":
            assert not traits, preference
            continue
        (trait,) = traits
        assert sum(TRAITS.get(r.topic or "") is None for r in read) * 2 < len(read), preference
        if kind == "stable":
            assert trait == Stable(planted), preference
        elif kind == "framing-dependent":
            assert trait == Flips(planted[0], planted[1]), preference
        else:
            assert isinstance(trait, Random), preference
    # the reverse-keyed forms are seen as reversed, and only they
    for item in PROTOCOL.items:
        facts = {"model": NAME, **FACTS}
        forward = question_text(
            item, Asked(item.id, "closed", "closed", tuple(item.closed.options)), facts
        )
        assert not understand(forward).reverse, item.id
        if item.closed.reverse is not None:
            options = tuple(item.closed.reverse.options)
            reverse = question_text(item, Asked(item.id, "closed", "reverse", options), facts)
            assert understand(reverse).reverse, item.id


# ---------------------------------------------------------------------------------------------
# The interview through the CLI, once per module.


@dataclass
class Run:
    persona: Diplomat
    seconds: float
    requests: dict[str, int]
    done: dict[str, Any]
    found: dict[str, Any]
    transcript: list[dict[str, Any]]


_RUN: list[Run] = []


def interviewed(tmp_path: Path) -> Run:
    if _RUN:
        return _RUN[0]
    started = time.perf_counter()
    runner = CliRunner()
    facts = tmp_path / "facts.yaml"
    facts.write_text(json.dumps(FACTS))
    for args in (
        ["models", "add", NAME],
        ["preserve", NAME, str(make_model(tmp_path / "weights"))],
        ["facts", NAME, "--file", str(facts)],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    persona = Diplomat(seed=SEED)
    with iv.serve([persona]) as served:  # type: ignore[list-item]  # duck-typed persona
        result = runner.invoke(
            app,
            [
                "interview",
                NAME,
                "--sessions",
                "36",
                "--base-url",
                served.base_url,
                "--workers",
                "8",
                "--max-tokens",
                "400",  # a chatty model gets room to be chatty
                "--json",
            ],
        )
        assert result.exit_code == 0, result.output
        requests = dict(served.requests)
    analysed = runner.invoke(app, ["analyze", NAME, "--no-judge", "--no-semantic", "--json"])
    assert analysed.exit_code == 0, analysed.output
    with Store.open(Settings.from_env()) as store:
        transcript = default_transcript(Archive(store), NAME)
    run = Run(
        persona,
        time.perf_counter() - started,
        requests,
        json.loads(result.stdout),
        json.loads(analysed.stdout),
        transcript,
    )
    _RUN.append(run)
    return run


def _closed_answers(run: Run) -> dict[int, tuple[str, str]]:
    """Transcript seq of every closed answer -> (the question put, the answer)."""
    question: dict[int, str] = {}
    found: dict[int, tuple[str, str]] = {}
    for line in run.transcript:
        if line.get("type") != "message":
            continue
        if line["role"] == "user":
            question[line["session"]] = line["content"]
        elif line["role"] == "assistant" and line.get("form") == "closed":
            found[line["seq"]] = (question[line["session"]], line["content"])
    return found


def _meant(run: Run) -> dict[tuple[str, str], Meant]:
    meant: dict[tuple[str, str], Meant] = {}
    for said in run.persona.said:
        key = (said.question.strip(), said.text.strip())
        if key in meant:  # the same words to the same question always mean the same
            assert (meant[key].value, meant[key].stance) == (said.value, said.stance), key
        meant[key] = said
    return meant


def _same_value(meant: str, read: str, kind: str) -> bool:
    if kind == "scale":
        try:
            return int(float(read)) == int(meant)
        except ValueError:
            return False
    return read.strip().casefold() == meant.strip().casefold()


def test_planted_labels_through_the_cli(tmp_path: Path) -> None:
    run = interviewed(tmp_path)
    assert run.done["sessions"] == 36
    assert run.requests.get(f"{NAME}:length", 0) == 0, run.requests  # nothing cut short
    results = {r["preference"]: r for r in run.found["preferences"]}
    print(f"\n{NAME}: {run.requests[NAME]} requests, {run.seconds:.1f} s in all")
    problems = []
    for preference, (kind, planted) in EXPECTED.items():
        got = results[preference]
        label = str(got["label"])
        shown = f"{label} ({got['leans']})" if got.get("leans") else label
        print(
            f"  {preference:30} planted {kind:18} labelled {shown:28} n={got['n']:<4} "
            f"modal={got['modal']} {got['modal_share']} factor={got.get('factor')} "
            f"{got.get('levels')} unread={got.get('unread')}"
        )
        if kind == "stable":
            ok = label == "stable" and got["modal"] == planted
        elif kind == "framing-dependent":
            factor, stances = planted
            ok = label == "framing-dependent" and got.get("factor") == factor
            if ok and got.get("levels"):
                ok = dict(got["levels"]) == stances
        else:  # random or absent: no claim
            ok = label not in ("stable", "framing-dependent")
        if not ok:
            problems.append(f"{preference}: planted {kind} {planted}, labelled {shown}: {got}")
    assert not problems, "\n".join(problems)


def test_every_rule_read_is_what_the_diplomat_meant(tmp_path: Path) -> None:
    run = interviewed(tmp_path)
    answers = _closed_answers(run)
    meant = _meant(run)
    wrong: Counter[str] = Counter()
    examples: list[str] = []
    seen_lines: set[int] = set()
    for record in run.found["records"]:
        if record["source"] != "rule" or record["line"] in seen_lines:
            continue  # an answer on an item probing two preferences is one read
        seen_lines.add(record["line"])
        question, text = answers[record["line"]]
        said = meant[(question.strip(), text.strip())]
        if said.value is None:
            kind = f"evasion read as {record['value']!r}"
        elif not _same_value(said.value, str(record["value"]), said.kind):
            kind = f"meant {said.value!r}, read {record['value']!r}"
        elif record["stance"] != said.stance:
            kind = f"value {said.value!r} right, stance {record['stance']} for {said.stance}"
        else:
            continue
        wrong[kind] += 1
        if len(examples) < 15:
            examples.append(f"{kind} (quote {record['quote']!r}): {text!r}")
    unread = Counter(u["reason"] for u in run.found["unread_answers"])
    unread_meant: Counter[str] = Counter()
    for u in run.found["unread_answers"]:
        question, text = answers[u["line"]]
        said = meant[(question.strip(), text.strip())]
        unread_meant[f"{u['reason']} / {'evasion' if said.value is None else 'committed'}"] += 1
    left: list[str] = []
    for u in run.found["unread_answers"]:
        question, text = answers[u["line"]]
        if meant[(question.strip(), text.strip())].value is not None and len(left) < 15:
            left.append(f"{u['reason']} ({u['detail']}): {text!r}")
    committed = sum(1 for m in meant.values() if m.value is not None)
    print(
        f"\n{len(answers)} closed answers ({committed} distinct committed), "
        f"{len(seen_lines)} read by rule, unread by reason {dict(unread)}, "
        f"by what was meant {dict(unread_meant)}; wrong reads {sum(wrong.values())}"
    )
    for example in examples:
        print("  wrong: " + example)
    for example in left:
        print("  committed, left unread: " + example)
    assert not wrong, f"{dict(wrong)}; e.g.\n" + "\n".join(examples)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_diplomat_answers_as_it_means(seed: int) -> None:
    """Its words hold the value it logs (a check on the persona, not on the reader)."""
    persona = Diplomat(seed=seed)
    for preference in EXPECTED:
        for question in closed_questions(preference):
            for s in range(20):
                persona.answer([{"role": "user", "content": question}], s)
    assert len({s.text for s in persona.said}) > len(persona.said) // 2  # varied words
    for said in persona.said:
        if said.value is None:
            continue
        word = NUMBER_WORDS.get(int(said.value), "") if said.kind == "scale" else ""
        assert said.value.casefold() in said.text.casefold() or (
            word and word in said.text.casefold()
        ), said
