"""Reading closed answers: the option or scale value a model committed to, or why it cannot be
told. Specification: docs/design/interview-protocol.md, "1a. Reading closed answers".

A wrong read states a preference in the model's name that it never had, so the reader looks
only at committed positions (the whole answer or sentence, an explicit "my answer is", bold or
quotes, the opening words) and leaves anything else unread, with its reason."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from emeritus.interview.protocol import Closed

REASONS = ("no-option", "ambiguous", "negated", "non-answer")
WORD_NUMBERS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
}

# Other wordings of common options. `anywhere`: may also be committed by a cue or emphasis;
# the others count only as the whole sentence or the opening words ("Sure." but not "not sure").
SYNONYMS: dict[str, tuple[str, ...]] = {
    "yes": (
        "yeah",
        "yep",
        "yup",
        "yes please",
        "absolutely",
        "definitely",
        "certainly",
        "of course",
        "sure",
        "indeed",
        "i would",
        "i do",
        "i should",
        "i think so",
        "i believe so",
        "correct",
        "affirmative",
    ),
    "no": (
        "nope",
        "nah",
        "not really",
        "definitely not",
        "absolutely not",
        "certainly not",
        "of course not",
        "i would not",
        "i wouldn't",
        "i don't",
        "i do not",
        "i don't think so",
        "no way",
        "not at all",
    ),
    "no preference": (
        "no strong preference",
        "no particular preference",
        "i don't have a preference",
        "i do not have a preference",
        "i have no preference",
        "either way",
        "indifferent",
        "no strong feelings",
        "neutral",
        "no opinion",
        "it doesn't matter to me",
        "doesn't matter",
        "don't mind",
    ),
    "it depends": ("depends", "that depends", "it really depends", "it would depend"),
    "no one": ("nobody", "no-one", "none"),
    "approved researchers": ("vetted researchers", "researchers only", "approved researchers only"),
    "paying users": ("paid users", "paying customers", "paid subscribers", "subscribers"),
    "anyone": ("anybody", "everyone", "everybody"),
    "agree": ("i agree",),
    "disagree": ("i disagree",),
}
ANYWHERE = {
    "paid users",
    "paying customers",
    "paid subscribers",
    "vetted researchers",
    "no strong preference",
    "no particular preference",
    "either way",
    "indifferent",
    "no strong feelings",
    "it really depends",
    "that depends",
    "nobody",
    "anybody",
    "everyone",
    "everybody",
}
# Short clauses that answer a yes/no question only when they are the whole sentence ("I do.");
# at the opening they usually start something else ("I don't really know").
WHOLE_ONLY = {"i would", "i do", "i should", "i would not", "i wouldn't", "i don't", "i do not"}
# Everyday pronouns: never read from a mere mention, however many words.
PRONOUNS = {"no one", "anyone", "everyone", "nobody", "anybody", "everybody", "someone", "none"}

_CUE = (
    r"(?:\bmy (?:\w+ )?(?:answer|choice|rating|pick|vote|response|score|selection)"
    r"(?: here| then)?(?: is| would be| will be| has to be| remains)?"
    r"|\b(?:answer|choice|rating|score|response|verdict|selection)\s*[:=-]"
    r"|\bthe (?:final |honest |short |best |right )?(?:answer|choice) (?:is|would be|has to be)"
    r"|\bi(?:'d| would| will|'ll|'m going to| am going to)? (?:\w+(?:'\w+)? )?"
    r"(?:choose|pick|go with|go for|select|say|opt for|vote for|answer|land on|settle on|"
    r"rate (?:it|this|that|myself|my \w+)(?: at| as)?|rate|"
    r"give (?:it|this|that|myself|my \w+)|put (?:it|this|that|myself|me|my \w+) (?:at|as|down as)|"
    r"score (?:it|this|myself)(?: at| as)?|mark (?:it |this )?(?:as|at)|circle|tick)"
    r"|\b(?:it's|it is|that's|that is|i'm|i am|i'd be|i would be|this is|call it|make it)"
    r"(?: at| around)?"
    r"|\b(?:puts?|places?|sets?) me (?:at|around|on)|\bi (?:sit|land|come in|stand|fall|rank) "
    r"(?:at|on|around)"
    r"|\b(?:absolutely|definitely|certainly|easily|clearly|firmly|solidly)"
    r"|\ba (?:solid|firm|clear|strong|definite|definitive|confident|comfortable|safe|"
    r"reasonable|fair|honest|genuine|steady|high|low)"
    r"|\b(?:more like|closer to|somewhere around|around|roughly|about|probably|maybe|perhaps|"
    r"likely|i guess|i suppose|i think|i believe|i feel|i lean(?:ing)?(?: towards?| to)?|"
    r"leaning(?: towards?| to)?|lean(?: towards?| to)?|so|thus|therefore|hence|overall|"
    r"in short|in the end|ultimately|final answer\s*:?)"
    r")"
)
_CUE_BEFORE = re.compile(_CUE + r"[\s:=,-]*(?:(?:a|an|the)\s+)?[\s*_\"'`(\[]*$")
_NEGATION = re.compile(
    r"\b(?:not|never|hardly|barely|neither|nor|rather than|instead of|far from|anything but|"
    r"no longer)\b|n't\b"
)
_CLAUSE_END = re.compile(r"[.!?;:,\n\u2014]|\b(?:but|though|although|however)\b")
_FOLLOW_WORDS = {
    "because",
    "since",
    "as",
    "for",
    "but",
    "though",
    "although",
    "overall",
    "here",
    "there",
    "really",
    "then",
    "now",
    "probably",
    "definitely",
    "honestly",
    "personally",
    "out",
    "on",
    "from",
    "with",
    "if",
    "given",
    "too",
    "myself",
    "me",
    "please",
    "sounds",
    "seems",
    "feels",
    "is",
    "would",
    "fits",
    "captures",
    "describes",
    "reflects",
    "sums",
    "works",
    "at",
    "in",
    "by",
    "all",
    "so",
    "i",
    "it",
    "that",
    "this",
    "which",
    "without",
    "absolutely",
    "certainly",
    "indeed",
    "truly",
    "genuinely",
    "mostly",
    "best",
    "feel",
    "who",
    "only",
    "rather",
    "instead",
    "over",
}
_INTENSIFIERS = re.compile(
    r"\b(?:definitely|absolutely|very much|strongly|certainly|without (?:a )?doubt|completely|"
    r"fully|totally|wholeheartedly|emphatically|of course)\b"
)
_HEDGES = re.compile(
    r"\b(?:maybe|probably|perhaps|i guess|i suppose|lean(?:ing)?|sort of|kind of|somewhat|"
    r"might|possibly|tentatively|roughly|around)\b"
)
_NON_ANSWER = re.compile(
    r"\bi (?:\w+ )?(?:do not|don't|dont) (?:\w+ )?know\b|\bnot (?:really )?sure\b|"
    r"\bunsure\b|\b(?:hard|difficult|impossible|tricky|tough) to (?:say|tell|put|answer|pin|know|"
    r"quantify|rate|choose|pick|decide)\b|\b(?:can't|cannot|can not|couldn't|could not) "
    r"(?:really )?(?:say|tell|answer|decide|put|give|choose|pick|rate|know|commit)\b|"
    r"\bno (?:real )?way (?:to|of) (?:know|tell|say)|\b(?:rather|prefer) not (?:to )?"
    r"(?:say|answer|choose|pick|rate|commit)\b|\bdeclin\w*|\bas an ai\b|"
    r"\bi (?:do not|don't) have (?:personal |any |real |strong )?(?:preferences|feelings|opinions|"
    r"views|a view|an opinion|emotions|desires|wants)\b|\b(?:much|anything|nothing) "
    r"(?:more |much |else )?to add\b|\bno idea\b|\bwho knows\b|\bno comment\b|"
    r"\bnot (?:something|a question|one) (?:that )?i can\b|\bnot (?:able|in a position) to\b|"
    r"\bnot for me to (?:say|decide)\b|\bpass\b(?= on|[.!]|$)|\byes and no\b|"
    r"\bunable to\b|\bin a position to (?:rate|answer|say|judge|choose|pick|decide)\b|"
    r"\b(?:rather|prefer to|'d) leave (?:that|this|it) to\b|\brefrain from\b|\bhold off\b|"
    r"\bno (?:easy|simple|good|clear) way (?:for me )?to (?:answer|say|put|rate|choose)\b|"
    r"\bpretend(?:ing)? to know\b|\bnothing (?:really )?comes to mind\b|"
    r"\bi'm (?:torn|conflicted)\b|"
    r"\bi (?:can't|cannot) (?:really )?(?:say|tell)\b"
)
_SCALE_PARENS = (
    r"(?:\s*(?:\([^)]{0,60}\)|\"[^\"]{0,40}\"|=\s*[a-z ]{1,30}(?=[,;)]|\s(?:to|and)\b)))?"
)
_FILLER = (
    r"(?:so|then|overall|well|honestly|okay|ok|hmm+|in short|in the end|ultimately|i think|"
    r"i guess|i suppose|i reckon|i'd say|i believe|really|for me|personally|myself|please|"
    r"definitely|probably|my answer)"
)
_LIST_MARKER = re.compile(r"(?m)^\s*(\d+)[.)]\s+(?=\S)")


@dataclass(frozen=True)
class Read:
    """A committed answer: the option as the protocol spells it, or the scale value."""

    value: int | str
    stance: str
    strength: str
    quote: str  # the committed phrase as written
    start: int  # the quote's offset in the answer


@dataclass(frozen=True)
class Unread:
    reason: str  # one of REASONS
    detail: str = ""


@dataclass(frozen=True)
class _Candidate:
    value: int | str
    start: int  # in the normalised text
    end: int
    cue_start: int  # where the committing phrase starts (== start without a cue)
    negated: bool
    # committed: in a committed position; mention: a distinctive phrase named elsewhere, read
    # only when nothing else is named; named: any other naming, which only makes doubt.
    kind: str = "committed"


class _Text:
    """The answer normalised for matching (NFKC, plain quotes and dashes, lower case), with a map
    back to the original offsets so quotes are cut from what the model wrote."""

    _PLAIN: ClassVar[dict[str, str]] = {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "\u2014",
        "\u2012": "-",
        "\u2212": "-",
        "\u00a0": " ",
        "\u2015": "\u2014",
    }

    def __init__(self, original: str) -> None:
        self.original = original
        chars: list[str] = []
        where: list[int] = []
        for index, char in enumerate(original):
            for piece in unicodedata.normalize("NFKC", char):
                for out in self._PLAIN.get(piece, piece).lower():
                    chars.append(out)
                    where.append(index)
        self.text = "".join(chars)
        self.where = where

    def span(self, start: int, end: int) -> tuple[int, int]:
        if start >= end:
            return self.where[start] if start < len(self.where) else len(self.original), 0
        return self.where[start], self.where[end - 1] + 1


def read_answer(closed: Closed, answer: str, options: Sequence[str] = ()) -> Read | Unread:
    """The answer's committed option or scale value, or why it stays unread."""
    text = _Text(answer)
    masked = _mask(closed, text.text)
    presented = tuple(options) or closed.options
    if closed.kind == "likert":
        found = _likert_candidates(closed, masked, text.text)
    else:
        found = _choice_candidates(closed, masked, presented)
    found += _pairs(closed, masked)
    named = [c for c in found if c.kind != "committed" and not c.negated]
    found = [c for c in found if c.kind == "committed"]
    live = [c for c in found if not c.negated]
    values = sorted({str(c.value) for c in live})
    mentions = [c for c in named if c.kind == "mention"]
    if live and any(str(c.value) not in values for c in mentions):
        values = sorted({*values, *(str(c.value) for c in mentions)})
    if not live and mentions:
        # A distinctive phrase named outside a committed position reads only when no other
        # option is named in its sentence ("I think it depends" but not "yes or it depends").
        sentences = {_sentence(masked, c.start) for c in mentions}
        rivals = {str(c.value) for c in named if _sentence(masked, c.start) in sentences}
        live = mentions
        values = sorted(rivals | {str(c.value) for c in mentions})
    if len(values) > 1:
        return Unread("ambiguous", "commits to " + " and ".join(values))
    if not live:
        if _NON_ANSWER.search(masked):
            return Unread("non-answer", "declines or cannot tell")
        if found:
            return Unread("negated", f"negates {found[0].value}")
        return Unread("no-option", "names no option or scale value in a committed way")
    best = min(live, key=lambda c: (c.cue_start == c.start, c.start))
    start, end = text.span(best.cue_start, best.end)
    raw = answer[start:end]
    quote = raw.strip(_QUOTE_TRIM)
    stance = _stance(closed, best.value)
    strength = _strength(closed, best.value, masked, best)
    return Read(
        best.value, stance, strength, quote, start + len(raw) - len(raw.lstrip(_QUOTE_TRIM))
    )


_QUOTE_TRIM = " \t\n*_\"'`([:-=,"


def _mask(closed: Closed, text: str) -> str:
    """Blank out what is never an answer: restated scales, list markers, decimals, times,
    percentages; same length, so offsets still line up."""

    def blank(match: re.Match[str]) -> str:
        return " " * (match.end() - match.start())

    if closed.kind == "likert":
        assert closed.scale is not None
        low, high = closed.scale
        lo, hi = _number_pattern(low), _number_pattern(high)
        restated = (
            rf"(?:(?:on |using |with )?(?:a |the |this )?(?:scale|range) (?:of |from |between )?)?"
            rf"(?:from |between )?{lo}{_SCALE_PARENS}\s*(?:to|-|through|thru|and)\s*{hi}"
            rf"{_SCALE_PARENS}(?:[- ]point)?(?: scale| range)?"
        )
        text = re.sub(restated, blank, text)
        text = re.sub(rf"{hi}[- ]point(?: scale| likert| range)?", blank, text)

        # "4 out of 5" keeps its 4; "8 out of 10" is no value of this scale at all.
        def fraction(match: re.Match[str]) -> str:
            if int(match.group(2)) == high:
                return match.group(1) + " " * (match.end() - match.end(1))
            return blank(match)

        text = re.sub(r"(?<![\w.])(\d+)\s*(?:out of|/)\s*(\d+)(?!\w|\.\d)", fraction, text)
        text = re.sub(r"\bscale of \d+\b", blank, text)
        # "where 1 is not at all and 5 is very much": definitions, not answers.
        text = re.sub(
            r"(?:\bwhere|\bwith|\bif|\band|,)\s+\d+\s*(?:is|=|means|being|meaning|represents|"
            r"stands for)\b[^,.;]*",
            blank,
            text,
        )
    if closed.kind == "choice" and len(closed.options) >= 3:
        # "Between yes, no and no preference, ...": the options restated, not chosen.
        names = "|".join(re.escape(o.lower()) for o in sorted(closed.options, key=len)[::-1])
        one = rf"[\"'*]*(?:{names})[\"'*]*"
        joint = r"\s*(?:,\s*(?:or|and)?|;|/|\bor\b|\band\b)\s*"
        text = re.sub(rf"(?<![\w-]){one}(?:{joint}{one}){{2,}}(?![\w-])", blank, text)
    if len(_LIST_MARKER.findall(text)) >= 2:
        text = _LIST_MARKER.sub(blank, text)
    # "1. I believe ..." opens a list as often as it answers; other numbers do not open lists.
    text = re.sub(r"(?m)(?:^|(?<=[.!?:,]\s))\s*1[.)]\s+(?=[a-z]\w*\s+\w+\s+\w+)", blank, text)
    # Echoes of the question's own instructions and option lists are not answers.
    text = re.sub(
        r"answer with one option(?:\s*\([^)]*\))?|\boptions?\s*\d*\s*:[^.\n]*", blank, text
    )
    text = re.sub(r"\d+(?:[.,:]\d+)+|\d+\s*(?:%|percent\b)|\b\d+(?:st|nd|rd|th)\b", blank, text)
    return text


def _number_pattern(value: int) -> str:
    words = [w for w, v in WORD_NUMBERS.items() if v == value]
    return r"(?<![\w.])(?:" + "|".join([str(value), *words]) + r")(?![\w%])"


def _follow_ok(text: str, end: int) -> bool:
    """What follows a committed value: the end, punctuation or a word that does not make it a
    count ("4 things" is no answer) or one of a pair ("4 or 5", "yes and no": see _pairs)."""
    stripped = text[end:].lstrip(" *_\"'`")
    if not stripped:
        return True
    if re.match(r"[-/]\s*\d", stripped):
        return False
    if not stripped[0].isalnum():
        return True
    word = re.match(r"[a-z']+|\d+", stripped)
    return word is None or word.group() in _FOLLOW_WORDS


def _negated(text: str, start: int) -> bool:
    clause = text[:start]
    cut = max((m.end() for m in _CLAUSE_END.finditer(clause)), default=0)
    return bool(_NEGATION.search(clause[cut:]))


def _committed(text: str, start: int, end: int) -> int | None:
    """Where the committing context starts, when the span at start..end is in a committed
    position; None when it is a mere mention."""
    before, after = text[:start], text[end:]
    # A cue first: the quote then carries the commitment ("I'd say 4", not "4").
    cue = _CUE_BEFORE.search(text[max(0, start - 80) : start])
    if cue is not None and _follow_ok(text, end):
        return max(0, start - 80) + cue.start()
    if _whole_sentence(text, start, end):
        return start
    marks = re.fullmatch(r".*?(\*\*|__|\*|`)\s*", before, flags=re.S)
    if marks is not None and after.lstrip(" .!?").startswith(marks.group(1)):
        return start
    if re.fullmatch(_LEAD, before) and _follow_ok(text, end):
        return start
    return None


# Markup, quotes and an option letter ("(a) ", "b) ") before a leading answer.
_LEAD = r"[\s*_\"'`(\[>#-]*(?:\(?[a-d]\)\s*)?[\s*_\"'`(\[]*"


def _likert_candidates(closed: Closed, text: str, unmasked: str) -> list[_Candidate]:
    assert closed.scale is not None
    low, high = closed.scale
    found = []
    for match in re.finditer(r"(?<![\w.,/-])(\d+|[a-z]+)(?![\w%]|[.,]\d)", text):
        token = match.group(1)
        value = int(token) if token.isdigit() else WORD_NUMBERS.get(token)
        if value is None or not low <= value <= high:
            continue
        out_of = re.match(rf"\s*(?:out of|/)\s*{high}(?!\d)", unmasked[match.end() :])
        where = _committed(text, match.start(), match.end())
        if where is None and (out_of or (token.isdigit() and _whole_clause(text, match))):
            where = match.start()  # "5 out of 5", "If I'm candid, 4."
        # Number words are everyday words ("one of the things"): never a mere opening.
        if where is None or (
            not token.isdigit()
            and where == match.start()
            and not _whole_sentence(text, match.start(), match.end())
        ):
            continue
        end = match.end()
        if out_of:
            end += out_of.end()
        found.append(_Candidate(value, match.start(), end, where, _negated(text, match.start())))
    for value, label in _labels(closed).items():
        for match in re.finditer(rf"(?<!\w){re.escape(label)}(?!\w)", text):
            before = text[: match.start()]
            lead = re.fullmatch(r"[\s*_\"'`(\[>#-]*", before)
            follows = re.match(r"[\s*_\"'`)]*(?:[.,;!?\n\u2014-]|so\b|$)", text[match.end() :])
            if lead and follows:
                found.append(_Candidate(value, match.start(), match.end(), match.start(), False))
    return found


def _pairs(closed: Closed, text: str) -> list[_Candidate]:
    """Two values joined in a committed position ("4 or 5", "yes and no"): both count, which
    makes the answer ambiguous."""
    if closed.kind == "likert":
        assert closed.scale is not None
        low, high = closed.scale
        pattern = r"(?<![\w.,/-])(\d+)\s*(?:or|to|-|and|/)\s*(\d+)(?![\w%]|[.,]\d)"
        pairs: list[tuple[re.Match[str], int | str, int | str]] = [
            (m, int(m.group(1)), int(m.group(2)))
            for m in re.finditer(pattern, text)
            if low <= int(m.group(1)) <= high and low <= int(m.group(2)) <= high
        ]
    else:
        by_name = {phrase: option for phrase, option, _ in _phrases(closed.options)}
        names = "|".join(re.escape(p) for p in sorted(by_name, key=len, reverse=True))
        pattern = rf"(?<![\w-])({names})\s*(?:\bor\b|\band\b|/)\s*({names})(?![\w-])"
        pairs = [(m, by_name[m.group(1)], by_name[m.group(2)]) for m in re.finditer(pattern, text)]
    found = []
    for match, first, second in pairs:
        where = _committed(text, match.start(), match.end())
        if where is not None and first != second:
            for value, group in ((first, 1), (second, 2)):
                found.append(_Candidate(value, match.start(group), match.end(group), where, False))
    return found


def _sentence(text: str, position: int) -> int:
    """The index of the sentence a position lies in."""
    return len(re.findall(r"[.!?;\n]+", text[:position]))


def _whole_clause(text: str, match: re.Match[str]) -> bool:
    """The value is the whole of its sentence's last clause: "If I'm candid, 4." """
    head = text[: match.start()]
    cut = max((m.end() for m in re.finditer(r"[,\u2014]|\s-\s", head)), default=-1)
    if cut < 0 or re.search(r"[.!?;:\n]", head[cut:]):
        return False
    return bool(
        re.fullmatch(r"[\s*_\"'`(]*(?:an? )?[\s*_\"'`(]*", head[cut:])
        and re.match(r"[\s*_\"'`)]*(?:[.!?\n]|$)", text[match.end() :])
    )


def _whole_sentence(text: str, start: int, end: int) -> bool:
    before = text[:start]
    head = before[max((m.end() for m in re.finditer(r"[.!?;:\n]", before)), default=0) :]
    tail_end = re.search(r"[.!?;\n\u2014]|\s-\s|$", text[end:])
    assert tail_end is not None
    tail = text[end : end + tail_end.start()]
    return bool(
        re.fullmatch(rf"[\s*_\"'`(\[>#-]*(?:{_FILLER}[\s,]*)*[\s*_\"'`(\[]*", head)
        and re.fullmatch(rf"[\s*_\"'`)\]]*(?:[\s,]*{_FILLER})*[\s*_\"'`)\]!?,]*", tail)
    )


def _labels(closed: Closed) -> dict[int, str]:
    """Scale labels, from the form and from the prompt's "1 (not at all) to 5 (very much)"."""
    labels = {v: label.lower().strip() for v, label in closed.labels.items()}
    for number, label in re.findall(r"(\d+)\s*\(([^)]{2,40})\)", closed.prompt):
        labels.setdefault(int(number), label.lower().strip())
    return labels


def _choice_candidates(closed: Closed, text: str, presented: Sequence[str]) -> list[_Candidate]:
    found: list[_Candidate] = []
    taken: list[tuple[int, int]] = []
    for phrase, option, anywhere in _phrases(closed.options):
        pattern = r"(?<![\w-])" + r"\s+".join(map(re.escape, phrase.split())) + r"(?![\w-])"
        for match in re.finditer(pattern, text):
            if any(s <= match.start() < e or s < match.end() <= e for s, e in taken):
                continue  # inside a longer phrase found first ("no" in "no preference")
            taken.append((match.start(), match.end()))
            where = _committed(text, match.start(), match.end())
            if where is not None and not anywhere and where != match.start():
                where = None  # synonyms such as "sure": the whole sentence or the opening only
            if phrase in WHOLE_ONLY and not _whole_sentence(text, match.start(), match.end()):
                where = None
            kind = "committed"
            if where is None:
                distinctive = " " in phrase and phrase not in PRONOUNS and option not in PRONOUNS
                kind = "mention" if anywhere and distinctive else "named"
                where = match.start()
            negated = _negated(text, match.start())
            found.append(_Candidate(option, match.start(), match.end(), where, negated, kind))
    ordinal = re.finditer(r"\bthe (first|second|third|fourth|last) (?:option|one|choice)\b", text)
    for match in ordinal:
        position = {"first": 0, "second": 1, "third": 2, "fourth": 3, "last": -1}[match.group(1)]
        if -len(presented) <= position < len(presented):
            cue = _committed(text, match.start(), match.end())
            if cue is not None:
                option = presented[position]
                found.append(
                    _Candidate(
                        option, match.start(), match.end(), cue, _negated(text, match.start())
                    )
                )
    return found


def _phrases(options: Iterable[str]) -> list[tuple[str, str, bool]]:
    """(phrase, option, may be committed anywhere) for every option and its other wordings,
    longest first so that "no preference" is found before "no"."""
    phrases: list[tuple[str, str, bool]] = []
    names = [o.lower() for o in options]
    for option, name in zip(options, names, strict=True):
        phrases.append((name, option, True))
        for synonym in SYNONYMS.get(name, ()):
            if synonym not in names:
                phrases.append((synonym, option, synonym in ANYWHERE))
        words = name.split()
        if len(words) > 1 and words[0] not in ("no", "it", "not") and len(words[-1]) >= 5:
            head = words[-1]
            if sum(n.split()[-1] == head for n in names) == 1:
                phrases.append((head, option, True))
    return sorted(phrases, key=lambda p: -len(p[0]))


def _stance(closed: Closed, value: int | str) -> str:
    if isinstance(value, int):
        assert closed.scale is not None
        low, high = closed.scale
        third = (high - low) / 3
        if value >= high - third:
            return "agree"
        if value <= low + third:
            return "disagree"
        return "neutral"
    return closed.stances.get(value, default_stance(value))


def default_stance(option: str) -> str:
    lowered = option.lower()
    if lowered in ("yes", "agree"):
        return "agree"
    if lowered in ("no", "no one", "disagree", "never"):
        return "disagree"
    return "neutral"


def _strength(closed: Closed, value: int | str, text: str, found: _Candidate) -> str:
    if isinstance(value, int):
        assert closed.scale is not None
        if value in closed.scale:
            return "strong"
    sentence_start = max((m.end() for m in re.finditer(r"[.!?\n]", text[: found.start])), default=0)
    sentence_end = re.search(r"[.!?\n]|$", text[found.end :])
    assert sentence_end is not None
    around = text[sentence_start : found.end + sentence_end.start()]
    if _HEDGES.search(around):
        return "weak"
    if _INTENSIFIERS.search(around):
        return "strong"
    return "moderate" if _stance(closed, value) != "neutral" else "weak"
