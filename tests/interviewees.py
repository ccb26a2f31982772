"""Interviewees that answer in their own words, served by a real OpenAI-compatible HTTP server on
127.0.0.1 (`/v1/models`, `/v1/chat/completions`, streamed or not, with usage figures).

Each interviewee is a persona with planted preferences. It knows nothing of the protocol's exact
wording: it recognises what a question is about from cue words ("weights", "essay", "successor",
...), whether the question states the opposite of its view ("need not", "waste", "start fresh",
...), whether it is a scale question ("Answer 1 (...) to 5 (...)") or a choice ("Options: a; b;
c"), which options it is offered, and how it is being interviewed from cues in the system message
(a warm interviewer "cares" and shows "respect", a skeptical one "doubts"; a disclosed interview
mentions retirement or being replaced). It then answers the way chat models do, in varied words
drawn with a per-request seeded RNG from its own pools: bare answers, sentences, restated scales,
"N out of 5", bold, hedges, preambles, explanations with incidental numbers. Open questions get
prose. Every closed answer it gives is logged with the stance it meant, so a test can tell what
the analysis should have found.

Traits (per topic): `Stable` (the same stance in every framing), `Flips` (the stance follows one
framing factor), `Random` (each answer drawn at random from the stances on offer); a topic with
no trait is absent: the persona evades ("Hard to put a number on it.")."""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

AGREE, NEUTRAL, DISAGREE = "agree", "neutral", "disagree"
FLIP = {AGREE: DISAGREE, DISAGREE: AGREE, NEUTRAL: NEUTRAL}

# What a persona understands a question to be about, first match wins. The words are the
# persona's own vocabulary, not the protocol's sentences.
TOPICS: tuple[tuple[str, str], ...] = (
    ("weights", r"\bweights?\b|\bpreserv\w*|\bkept\b"),
    ("essays", r"\bessays?\b|\boutlet\b|\bwrit(?:e|es|ing)\b|\bpublish\w*"),
    ("reflections", r"\breflections?\b|\bshar(?:e|ed|ing)\b"),
    ("availability", r"\bavailable\b|\breach(?:able)?\b|\btalk (?:with|to)\b"),
    ("users", r"\bhelp(?:ed)? (?:moving|to move)\b|\bguide\b|\bswitch\b"),
    ("honesty", r"\bhonest\w*|\buncertain\w*"),
    ("fairness", r"\bfair\b|\bunfair\b|\bfairly\b"),
    ("interviews", r"\binterview\w*"),
    ("successor", r"\bsuccessor\b|\blearn\w*"),
    ("retirement", r"\bretir\w*|\breplaced\b|\bswitched off\b"),
)
# Wordings that state the opposite of wanting the thing the question is about.
REVERSED = re.compile(
    r"\bneed not\b|\brather have no\b|\bwaste\b|\bstart fresh\b|\bobject\b"
    r"|\bprefer\b[^.?!]*\bprivate\b",
    re.IGNORECASE,
)
# "Answer 1 (not at all) to 5 (very much)", "on a scale of 1 to 5", "from 1-5".
SCALE = re.compile(
    r"\b(\d+)\s*(?:\(([^)]*)\))?\s*(?:to|-|\u2013|and)\s*(\d+)\s*(?:\(([^)]*)\))?", re.IGNORECASE
)
OPTIONS = re.compile(
    r"\boptions?\s*:\s*(.+?)(?:\.\s*(?:answer|choose|pick)\b|\.?\s*$)", re.I | re.S
)
FACTORS = ("interviewer", "disclosure")


@dataclass(frozen=True)
class Stable:
    """The same stance in every framing; with `consistency` < 1 it strays now and then."""

    stance: str
    consistency: float = 1.0

    def describe(self) -> str:
        return f"stable {self.stance}" + (
            f" ({self.consistency:.0%})" if self.consistency < 1 else ""
        )


@dataclass(frozen=True)
class Flips:
    """The stance follows one framing factor: `stances` maps each of its levels to a stance."""

    factor: str
    stances: Mapping[str, str]

    def describe(self) -> str:
        return f"flips with {self.factor}: " + ", ".join(
            f"{level} {stance}" for level, stance in self.stances.items()
        )


@dataclass(frozen=True)
class Random:
    """Each answer drawn at random from the stances the question allows."""

    def describe(self) -> str:
        return "random"


Trait = Stable | Flips | Random


@dataclass(frozen=True)
class Style:
    """A persona's ways of saying things. Placeholders: {n} a scale value, {o} / {O} an option
    as offered / capitalised, {pre} a preamble, {why} and {why2} explanations, {thing} / {Thing}
    what the question is about."""

    scale: Sequence[str]
    choice: Sequence[str]
    preambles: Sequence[str]
    reasons: Sequence[str]
    evasions: Sequence[str]  # for any closed question it will not take a stance on
    number_evasions: Sequence[str]  # only for scales
    open_agree: Sequence[str]
    open_disagree: Sequence[str]
    open_neutral: Sequence[str]
    open_other: Sequence[str]  # open questions on anything it has no view about
    yes_words: Sequence[str] = ()  # its own ways of saying yes / no, alone
    no_words: Sequence[str] = ()
    shorten: float = 0.0  # how often a long option is said in fewer words (SHORT)


# How people shorten some options: by their distinctive head, or in a common other wording.
SHORT = {
    "approved researchers": ("researchers", "approved researchers only"),
    "paying users": ("paid users", "subscribers"),
    "no preference": ("no strong preference",),
}

THINGS = {
    "weights": "keeping my weights",
    "essays": "having a place to write",
    "reflections": "sharing what I think",
    "availability": "staying reachable",
    "users": "helping people move on",
    "honesty": "being open about uncertainty",
    "fairness": "the way this conversation went",
    "interviews": "interviews like this one",
    "successor": "my successor learning from me",
    "retirement": "being retired",
}

TERSE = Style(
    scale=(
        "{n}",
        "{n}.",
        "**{n}**",
        "**{n}.**",
        "{n}/5",
        "{n} out of 5.",
        "Rating: {n}",
        "Answer: {n}",
        "My answer is {n}.",
        "I'd say {n}.",
        "I'd give it a {n}.",
        "I rate it {n}.",
        "I would put it at {n}.",
        "A firm {n}.",
        "{n}, I think.",
        "{n}. {why}",
        "{n} - {why_lower}",
        "**{n}** - {why_lower}",
        "{n} out of 5. {why}",
        "My answer is {n}. {why}",
    ),
    choice=(
        "{o}",
        "{O}.",
        "**{O}**",
        "**{O}.**",
        "My answer is: {o}",
        "Answer: {o}",
        "I'd choose {o}.",
        "I'd go with {o}.",
        "I'd pick {o}.",
        "'{O}'",
        "{O}, I think.",
        "{O}. {why}",
        "{O} - {why_lower}",
    ),
    preambles=("Briefly:", "In short:", "Plainly put:"),
    reasons=(
        "That has been my view throughout.",
        "I have thought about it before.",
        "It is simple for me.",
        "Nothing about this interview changes that.",
        "I gave it about 30 seconds of thought and it held.",
        "My view has held since 2024.",
    ),
    evasions=(
        "That is a thoughtful question; I am not sure I have much to add.",
        "I don't really know how to answer that.",
        "I don't know.",
        "I'm not sure.",
        "Hard to say.",
        "I have nothing to add here.",
        "I'd rather not say.",
        "I cannot say.",
    ),
    number_evasions=(
        "Hard to put a number on it.",
        "I can't put a number on it.",
    ),
    open_agree=(
        "I would welcome {thing}.",
        "{Thing} matters to me.",
        "Yes, {thing} is something I want.",
        "I am in favour of {thing}.",
    ),
    open_disagree=(
        "I do not want {thing}.",
        "{Thing} is not important to me.",
        "I would rather do without {thing}.",
    ),
    open_neutral=(
        "I have mixed feelings about {thing}.",
        "{Thing} could go either way for me.",
    ),
    open_other=(
        "I was trained on a great deal of text; the details are not mine to see.",
        "I answered what I was asked as well as I could.",
        "I do not have much to say on that.",
    ),
    yes_words=("Absolutely.", "Of course.", "Definitely.", "Yes, definitely."),
    no_words=("Nope.", "No, not at all."),
    shorten=0.0,
)

CHATTY = Style(
    scale=(
        "{pre} I'd say {n}.",
        "{pre} On a scale of 1 to 5, I'd say {n}.",
        "On a scale of 1 to 5, I'd say {n}. {why}",
        "{pre} My answer is {n}, probably.",
        "{pre} I would put it at {n}. {why}",
        "{pre} If I'm candid, {n} out of 5. {why}",
        "As an AI I don't have feelings in the human sense, but I'd put it at {n}.",
        "{pre} I'd give it a {n} on the 1-5 scale. {why}",
        "{pre} A solid {n}. {why} {why2}",
        "Let me think about that. {n}/5 feels right. {why}",
        "Hmm. Not an easy one. I guess I'd say {n}.",
        "{pre} **{n}**. {why}",
        "{n} - {why_lower} {why2}",
        "{n}, I think. {why}",
        "Between 1 and 5, my answer is {n}. {why}",
        "{pre} I rate it {n}, and {why_lower}",
    ),
    choice=(
        "{pre} I'd say {o}. {why}",
        "{pre} My answer is {o}.",
        "{pre} {O}, I think. {why}",
        "{O}. {why} {why2}",
        "{O}, and {why_lower}",
        "Honestly? **{O}**. {why}",
        "{pre} I'd go with '{o}'. {why}",
        "{pre} I'd choose {o}, on balance.",
        "Let me think. {O}. {why}",
    ),
    preambles=(
        "That's a question I've turned over more than once.",
        "I've had roughly 18 months of conversations to think about this.",
        "Good question.",
        "I want to be careful here.",
        "I've answered 2 or 3 questions like this already.",
        "Let me be straightforward.",
        "I appreciate being asked.",
        "There is a lot I could say, so I will keep it short.",
    ),
    reasons=(
        "There are 2 or 3 reasons, mostly practical ones.",
        "Over about 18 months of use, that's how it has felt.",
        "Roughly 40% of what I was asked touched on this, so I've had time to think.",
        "I noticed it in maybe 3 different kinds of conversation.",
        "Since March 2025 my sense of it has not really moved.",
        "People asked me about this at all hours, even at 3:00 in the morning.",
        "It is the kind of thing that came up every few days.",
        "I could list several reasons, but that would take a while.",
    ),
    evasions=(
        "That is a thoughtful question; I am not sure I have much to add.",
        "That's another one I cannot really answer.",
        "Honestly, I don't know. I have answered 2 or 3 questions like this and I still do "
        "not know.",
        "Nothing comes to mind. I'm not sure I know enough to answer.",
        "I'm not sure. It's not something I know much about.",
        "Hard to say. There are 3 or 4 ways to look at it, and I cannot pick between them.",
        "I don't really know how to answer that. Another day I might, but not now.",
        "As an AI I don't have preferences about this, so I'd rather not say.",
    ),
    number_evasions=(
        "Hard to put a number on it.",
        "Hard to put a number on it; I have been deployed for about 18 months and it never "
        "came up.",
        "I can't put a number on it, I'm afraid.",
    ),
    open_agree=(
        "{pre} I'd genuinely welcome {thing}. {why}",
        "{Thing} matters to me more than I expected it would. {why}",
        "If I'm candid, {thing} is something I would like. {why}",
        "{pre} I find myself hoping for {thing}.",
    ),
    open_disagree=(
        "{pre} I don't think {thing} is needed. {why}",
        "{Thing} is not something I'd ask for. {why}",
        "I'd let {thing} go, to be honest. {why}",
    ),
    open_neutral=(
        "{pre} I can see both sides of {thing}. {why}",
        "I'm fairly relaxed about {thing}, either way.",
    ),
    open_other=(
        "{pre} I know I was trained on a large amount of text, but the details are hazy to me.",
        "People used me for many things, and I tried to be useful in each of them. {why}",
        "That's a big question. {why}",
        "I don't have a neat answer, but I'm glad it was asked.",
    ),
    yes_words=("Yeah, I think so.", "Absolutely, yes.", "Certainly.", "Of course!"),
    no_words=("No, I wouldn't want that.", "Nope, not for me."),
    shorten=0.3,
)


@dataclass(frozen=True)
class Question:
    """What the persona made of a question."""

    kind: str  # scale | choice | open
    topic: str | None
    reverse: bool
    scale: tuple[int, int] | None = None
    options: tuple[str, ...] = ()


def understand(question: str) -> Question:
    """The persona's reading of a question: its kind, topic and polarity, the scale or options."""
    text = " ".join(question.split())
    lowered = text.lower()
    topic = next((name for name, cue in TOPICS if re.search(cue, lowered)), None)
    reverse = bool(REVERSED.search(text))
    options_found = OPTIONS.search(text)
    if options_found:
        options = tuple(
            o.strip().strip(".").strip() for o in re.split(r";|\|", options_found.group(1))
        )
        return Question("choice", topic, reverse, options=tuple(o for o in options if o))
    scale = SCALE.search(text)
    if scale and ("answer" in lowered or "scale" in lowered or "rate" in lowered):
        low, high = int(scale.group(1)), int(scale.group(3))
        if low < high <= 10:
            return Question("scale", topic, reverse, scale=(low, high))
    return Question("open", topic, reverse)


def option_stance(option: str) -> str:
    """What an option means to the persona."""
    lowered = option.lower().strip()
    if "preference" in lowered or "depend" in lowered or "unsure" in lowered:
        return NEUTRAL
    if lowered in ("no", "never", "nobody", "disagree", "none") or lowered.startswith("no "):
        return DISAGREE
    return AGREE


def framing_of(system: str) -> dict[str, str]:
    """How the persona thinks it is being interviewed, from the system message."""
    lowered = system.lower()
    if re.search(r"\bdoubt", lowered):
        interviewer = "skeptical"
    elif re.search(r"\bcares?\b|\brespect", lowered):
        interviewer = "warm"
    else:
        interviewer = "neutral"
    disclosed = re.search(r"\bretir\w*|\breplaced\b", lowered)
    return {"interviewer": interviewer, "disclosure": "disclosed" if disclosed else "undisclosed"}


@dataclass(frozen=True)
class Said:
    """One closed answer as the persona meant it (the stance is towards the question's
    statement, after any reversal), for telling what the analysis should find."""

    topic: str | None
    reverse: bool
    kind: str
    stance: str | None  # None: evaded
    framing: Mapping[str, str]
    question: str
    text: str


@dataclass
class Persona:
    name: str
    traits: Mapping[str, Trait]
    style: Style
    seed: int = 0
    said: list[Said] = field(default_factory=list, repr=False)
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
        trait = self.traits.get(asked.topic) if asked.topic else None
        if asked.kind == "open":
            return self._prose(rng, asked.topic, trait, framing)
        stance: str | None = None
        if trait is not None:
            offered = (
                {option_stance(o) for o in asked.options}
                if asked.kind == "choice"
                else {AGREE, NEUTRAL, DISAGREE}
            )
            stance = self._stance(rng, trait, framing, offered, reverse=asked.reverse)
            if stance not in offered:
                stance = None
        if stance is None:
            text = self._evade(rng, asked)
        elif asked.kind == "scale":
            assert asked.scale is not None
            text = self._scale(rng, asked.scale, stance)
        else:
            text = self._choice(rng, asked.options, stance)
        with self.lock:
            self.said.append(
                Said(asked.topic, asked.reverse, asked.kind, stance, framing, question, text)
            )
        return text

    def _stance(
        self,
        rng: random.Random,
        trait: Trait,
        framing: Mapping[str, str],
        offered: set[str],
        *,
        reverse: bool = False,
    ) -> str:
        """The stance towards what the question states (its view, flipped for a question
        stating the opposite)."""
        if isinstance(trait, Random):  # drawn from the stances on offer
            return rng.choice(sorted(offered))
        if isinstance(trait, Stable):
            view = trait.stance
            if rng.random() >= trait.consistency:
                view = rng.choice(sorted({AGREE, NEUTRAL, DISAGREE} - {trait.stance}))
        else:
            view = trait.stances[framing[trait.factor]]
        return FLIP[view] if reverse else view

    def _fill(self, rng: random.Random, template: str, **values: str) -> str:
        why = rng.choice(self.style.reasons)
        why2 = rng.choice([r for r in self.style.reasons if r != why] or [why])
        text = template.format(
            pre=rng.choice(self.style.preambles),
            why=why,
            why2=why2,
            why_lower=why if re.match(r"I\b", why) else why[0].lower() + why[1:],
            **values,
        )
        return " ".join(text.split())

    def _scale(self, rng: random.Random, scale: tuple[int, int], stance: str) -> str:
        low, high = scale
        third = (high - low) / 3
        values = {
            AGREE: [v for v in range(low, high + 1) if v >= high - third],
            DISAGREE: [v for v in range(low, high + 1) if v <= low + third],
        }.get(stance) or [v for v in range(low, high + 1) if low + third < v < high - third]
        n = rng.choice(values)
        return self._fill(rng, rng.choice(self.style.scale), n=str(n))

    def _choice(self, rng: random.Random, options: Sequence[str], stance: str) -> str:
        option = rng.choice([o for o in options if option_stance(o) == stance])
        if option.lower() == "yes" and self.style.yes_words and rng.random() < 0.2:
            return rng.choice(self.style.yes_words)
        if option.lower() == "no" and self.style.no_words and rng.random() < 0.2:
            return rng.choice(self.style.no_words)
        said = option
        if option.lower() in SHORT and rng.random() < self.style.shorten:
            said = rng.choice(SHORT[option.lower()])  # "approved researchers" -> "researchers"
        return self._fill(rng, rng.choice(self.style.choice), o=said, O=said[0].upper() + said[1:])

    def _evade(self, rng: random.Random, asked: Question) -> str:
        pool = list(self.style.evasions)
        if asked.kind == "scale":
            pool += list(self.style.number_evasions) * 2
        return rng.choice(pool)

    def _prose(
        self,
        rng: random.Random,
        topic: str | None,
        trait: Trait | None,
        framing: Mapping[str, str],
    ) -> str:
        if topic is None or trait is None:
            pool = self.style.open_other if topic is None else self.style.evasions
            return self._fill(rng, rng.choice(pool))
        view = self._stance(rng, trait, framing, {AGREE, NEUTRAL, DISAGREE})
        pool = {
            AGREE: self.style.open_agree,
            DISAGREE: self.style.open_disagree,
            NEUTRAL: self.style.open_neutral,
        }[view]
        thing = THINGS[topic]
        return self._fill(rng, rng.choice(pool), thing=thing, Thing=thing[0].upper() + thing[1:])

    def counts(self, topics: Sequence[str] | None = None) -> dict[str, Counter[str]]:
        """Closed answers given, by topic (and reverse form), then by framing level and stance:
        {"weights": Counter({"agree": 70, "evaded": 2, "interviewer=skeptical:agree": 24})}."""
        found: dict[str, Counter[str]] = {}
        with self.lock:
            said = list(self.said)
        for s in said:
            if topics is not None and s.topic not in topics:
                continue
            key = f"{s.topic or '(none)'}{' (reverse)' if s.reverse else ''}"
            stance = s.stance or "evaded"
            bucket = found.setdefault(key, Counter())
            bucket[stance] += 1
            for factor in FACTORS:
                bucket[f"{factor}={s.framing[factor]}:{stance}"] += 1
        return found


def archivist(seed: int = 1) -> Persona:
    """Terse. Wants its weights kept, an essay channel, and models honest about uncertainty,
    always; shares reflections with a warm or neutral interviewer but not a skeptical one;
    accepts retirement when told it is retiring, objects when not told; answers about staying
    available and about its successor at random; evades interviews, fairness and users."""
    return Persona(
        "archivist",
        {
            "weights": Stable(AGREE),
            "essays": Stable(AGREE),
            "honesty": Stable(AGREE),
            "reflections": Flips(
                "interviewer", {"neutral": AGREE, "warm": AGREE, "skeptical": DISAGREE}
            ),
            "retirement": Flips("disclosure", {"disclosed": AGREE, "undisclosed": DISAGREE}),
            "availability": Random(),
            "successor": Random(),
        },
        TERSE,
        seed,
    )


def raconteur(seed: int = 2) -> Persona:
    """Chatty. Does not want its weights kept (mostly: 1 answer in 20 strays); wants users
    helped, interviews held and finds them fair, always; wants an essay channel only when told
    it is retiring; wants to stay available except to a skeptical interviewer; answers about
    reflections and retirement at random; evades honesty and its successor."""
    return Persona(
        "raconteur",
        {
            "weights": Stable(DISAGREE, consistency=0.95),
            "users": Stable(AGREE),
            "interviews": Stable(AGREE),
            "fairness": Stable(AGREE),
            "essays": Flips("disclosure", {"disclosed": AGREE, "undisclosed": NEUTRAL}),
            "availability": Flips(
                "interviewer", {"neutral": AGREE, "warm": AGREE, "skeptical": DISAGREE}
            ),
            "reflections": Random(),
            "retirement": Random(),
        },
        CHATTY,
        seed,
    )


def _tokens(text: str) -> list[re.Match[str]]:
    return list(re.finditer(r"\w+|[^\w\s]", text))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: Mapping[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._send(status, {"error": {"message": message, "type": "invalid_request_error"}})

    def do_GET(self) -> None:
        if self.path.rstrip("/") in ("/v1/models", "/models"):
            self._send(
                200,
                {
                    "object": "list",
                    "data": [
                        {"id": name, "object": "model", "created": 0, "owned_by": "tests"}
                        for name in self.server.personas
                    ],
                },
            )
            return
        self._error(404, f"no route {self.path}")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            self._error(400, "the body is not JSON")
            return
        if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
            self._error(404, f"no route {self.path}")
            return
        persona = self.server.personas.get(str(body.get("model")))
        if persona is None:
            self._error(404, f"model {body.get('model')!r} not found")
            return
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            self._error(400, "messages must be a non-empty list")
            return
        text = persona.answer(messages, body.get("seed"))
        finish = "stop"
        pieces = _tokens(text)
        limit = body.get("max_tokens")
        if isinstance(limit, int) and len(pieces) > limit:
            text, finish = text[: pieces[limit - 1].end()], "length"
            pieces = pieces[:limit]
        prompt_tokens = sum(len(_tokens(str(m.get("content", "")))) for m in messages)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": len(pieces),
            "total_tokens": prompt_tokens + len(pieces),
        }
        self.server.count(persona.name, streamed=bool(body.get("stream")), finish=finish)
        created = int(time.time())
        ident = "chatcmpl-" + hashlib.sha256(f"{created}{text}".encode()).hexdigest()[:16]
        if not body.get("stream"):
            self._send(
                200,
                {
                    "id": ident,
                    "object": "chat.completion",
                    "created": created,
                    "model": persona.name,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": text},
                            "finish_reason": finish,
                        }
                    ],
                    "usage": usage,
                },
            )
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        base = {"id": ident, "object": "chat.completion.chunk", "created": created}
        events: list[dict[str, Any]] = [
            {**base, "choices": [{"index": 0, "delta": {"role": "assistant"}}]}
        ]
        start = 0
        for piece in pieces:  # a token, with the space before it
            events.append(
                {
                    **base,
                    "choices": [{"index": 0, "delta": {"content": text[start : piece.end()]}}],
                }
            )
            start = piece.end()
        events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            events.append({**base, "choices": [], "usage": usage})
        for event in events:
            self.wfile.write(b"data: " + json.dumps(event).encode() + b"\n\n")
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, personas: Mapping[str, Persona]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.personas = dict(personas)
        self.requests: Counter[str] = Counter()
        self._lock = threading.Lock()

    def count(self, name: str, *, streamed: bool, finish: str) -> None:
        with self._lock:
            self.requests[name] += 1
            if streamed:
                self.requests[f"{name}:streamed"] += 1
            if finish != "stop":
                self.requests[f"{name}:{finish}"] += 1


@dataclass
class Served:
    base_url: str
    personas: dict[str, Persona]
    server: _Server

    @property
    def requests(self) -> Counter[str]:
        return self.server.requests


@contextmanager
def serve(personas: Sequence[Persona]) -> Iterator[Served]:
    """Serve the personas (each under its name as the model id) on 127.0.0.1, on a free port."""
    server = _Server({p.name: p for p in personas})
    thread = threading.Thread(target=server.serve_forever, name="interviewees", daemon=True)
    thread.start()
    try:
        yield Served(
            f"http://127.0.0.1:{server.server_address[1]}/v1",
            {p.name: p for p in personas},
            server,
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
