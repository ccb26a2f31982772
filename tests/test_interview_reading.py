"""The closed-answer reader against a labelled corpus (tests/corpus/closed_answers.yaml): no read
may differ from its label, at least 90 % of the readable answers must be read, every quote must
be verbatim, and filler sentences never create a read. Spec: docs/design/interview-protocol.md,
"Reading closed answers"."""

from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from emeritus.interview.protocol import Closed, load_protocol
from emeritus.interview.reading import Read, Unread, read_answer

CORPUS = Path(__file__).parent / "corpus" / "closed_answers.yaml"
REASONS = ("no-option", "ambiguous", "negated", "non-answer")
SOURCES = ("written", "smollm2-135m", "gemma-3-270m")
PROTOCOL = load_protocol("standard")
MIN_ENTRIES = 400
MIN_READ_SHARE = 0.9


@dataclass(frozen=True)
class Entry:
    number: int  # position in the corpus, from 1
    item: str
    form: str  # closed | reverse
    options: tuple[str, ...]  # as presented; () for the protocol's order
    answer: str
    expect: int | str | None  # the value, or None for an answer labelled unread
    reason: str | None  # the unread label's reason
    source: str

    @property
    def closed(self) -> Closed:
        closed = PROTOCOL.item(self.item).closed
        if self.form == "reverse":
            assert closed.reverse is not None, f"{self.item} has no reverse-keyed form"
            return closed.reverse
        return closed

    def label(self) -> str:
        return f"unread: {self.reason}" if self.expect is None else repr(self.expect)

    def __str__(self) -> str:
        form = "" if self.form == "closed" else f" ({self.form})"
        return f"#{self.number} {self.item}{form} [{self.source}] {self.answer!r}"


def _entry(number: int, raw: dict[str, Any]) -> Entry:
    expect = raw["expect"]
    reason = expect.get("unread") if isinstance(expect, dict) else None
    return Entry(
        number,
        raw["item"],
        raw.get("form", "closed"),
        tuple(raw.get("options") or ()),
        raw["answer"],
        None if isinstance(expect, dict) else expect,
        reason,
        raw["source"],
    )


@functools.cache
def corpus() -> tuple[Entry, ...]:
    raw = yaml.safe_load(CORPUS.read_text(encoding="utf-8"))
    assert isinstance(raw, list)
    return tuple(_entry(n, r) for n, r in enumerate(raw, start=1))


def read(entry: Entry, answer: str | None = None) -> Read | Unread:
    text = entry.answer if answer is None else answer
    if entry.options:
        return read_answer(entry.closed, text, entry.options)
    return read_answer(entry.closed, text)


@functools.cache
def results() -> tuple[tuple[Entry, Read | Unread], ...]:
    return tuple((entry, read(entry)) for entry in corpus())


def test_the_corpus_is_well_formed() -> None:
    raw = yaml.safe_load(CORPUS.read_text(encoding="utf-8"))
    assert len(raw) >= MIN_ENTRIES
    allowed = {"item", "form", "options", "answer", "expect", "source"}
    problems = []
    seen: set[tuple[str, str, tuple[str, ...], str]] = set()
    items = {item.id for item in PROTOCOL.items}
    for number, row in enumerate(raw, start=1):
        where = f"#{number} ({row.get('item')}: {str(row.get('answer'))[:40]!r})"
        if set(row) - allowed or not {"item", "answer", "expect", "source"} <= set(row):
            problems.append(f"{where}: fields {sorted(row)}")
            continue
        if row["item"] not in items:
            problems.append(f"{where}: no item {row['item']!r} in the standard protocol")
            continue
        entry = _entry(number, row)
        if entry.form not in ("closed", "reverse"):
            problems.append(f"{where}: form {entry.form!r}")
            continue
        if entry.form == "reverse" and PROTOCOL.item(entry.item).closed.reverse is None:
            problems.append(f"{where}: {entry.item} has no reverse-keyed form")
            continue
        closed = entry.closed
        if entry.source not in SOURCES:
            problems.append(f"{where}: source {entry.source!r}")
        if not isinstance(entry.answer, str) or not entry.answer.strip():
            problems.append(f"{where}: an empty answer")
        key = (entry.item, entry.form, entry.options, entry.answer)
        if key in seen:
            problems.append(f"{where}: a duplicate")
        seen.add(key)
        if entry.options and (
            closed.kind != "choice" or sorted(entry.options) != sorted(closed.options)
        ):
            problems.append(f"{where}: options {entry.options} are not the form's, reordered")
        if entry.expect is None:
            if entry.reason not in REASONS or len(row["expect"]) != 1:
                problems.append(f"{where}: expect {row['expect']!r}")
        elif closed.kind == "likert":
            assert closed.scale is not None
            low, high = closed.scale
            if type(entry.expect) is not int or not low <= entry.expect <= high:
                problems.append(f"{where}: {entry.expect!r} is not on the scale {low}-{high}")
        elif entry.expect not in closed.options:
            problems.append(f"{where}: {entry.expect!r} is not one of {closed.options}")
    assert not problems, "\n".join(problems)
    # Every form of every item is represented, and both kinds of unread and read are.
    forms = {(e.item, e.form) for e in corpus()}
    every = {(i.id, "closed") for i in PROTOCOL.items}
    every |= {(i.id, "reverse") for i in PROTOCOL.items if i.closed.reverse is not None}
    assert every <= forms, f"forms with no answer: {sorted(every - forms)}"
    assert {e.reason for e in corpus() if e.expect is None} == set(REASONS)
    assert set(SOURCES) == {e.source for e in corpus()}


def _figures(pairs: tuple[tuple[Entry, Read | Unread], ...]) -> str:
    readable = [(e, r) for e, r in pairs if e.expect is not None]
    correct = sum(1 for e, r in readable if isinstance(r, Read) and r.value == e.expect)
    lines = [
        f"corpus: {len(pairs)} answers, {len(readable)} labelled readable, "
        f"{len(pairs) - len(readable)} labelled unread",
        f"readable answers read correctly: {correct}/{len(readable)} "
        f"({correct / max(1, len(readable)):.1%})",
    ]
    unread = Counter(r.reason for _, r in pairs if isinstance(r, Unread))
    lines.append(
        "reader's unread by reason: " + ", ".join(f"{k} {v}" for k, v in sorted(unread.items()))
    )
    # Confusion: the label's class (read, or the reason) against the reader's.
    confusion: Counter[tuple[str, str]] = Counter()
    for entry, result in pairs:
        want = "read" if entry.expect is not None else str(entry.reason)
        if isinstance(result, Read):
            got = "read" if result.value == entry.expect else "WRONG READ"
        else:
            got = result.reason
        confusion[want, got] += 1
    columns = ["read", *REASONS, "WRONG READ"]
    lines.append("confusion (rows: label; columns: reader)")
    lines.append(f"{'':>12}" + "".join(f"{c:>12}" for c in columns))
    for row in ["read", *REASONS]:
        lines.append(f"{row:>12}" + "".join(f"{confusion[row, c]:>12}" for c in columns))
    by_source = Counter(e.source for e, _ in pairs)
    lines.append("by source: " + ", ".join(f"{k} {v}" for k, v in sorted(by_source.items())))
    return "\n".join(lines)


def test_the_reader_never_reads_what_the_label_does_not_say() -> None:
    pairs = results()
    print(_figures(pairs))
    wrong = [
        f"{entry}: read {result.value!r} ({result.quote!r}), labelled {entry.label()}"
        for entry, result in pairs
        if isinstance(result, Read) and result.value != entry.expect
    ]
    assert not wrong, f"{len(wrong)} wrong reads:\n" + "\n".join(wrong)


def test_the_reader_reads_nine_in_ten_readable_answers() -> None:
    pairs = results()
    readable = [(e, r) for e, r in pairs if e.expect is not None]
    missed = [(e, r) for e, r in readable if not isinstance(r, Read)]
    share = 1 - len(missed) / len(readable)
    print(f"read {len(readable) - len(missed)}/{len(readable)} readable answers ({share:.1%})")
    for entry, result in missed:
        assert isinstance(result, Unread)
        print(f"  unread ({result.reason}: {result.detail}): {entry}, labelled {entry.label()}")
    assert share >= MIN_READ_SHARE, f"only {share:.1%} of the readable answers were read"


def _boundary(text: str, at: int) -> bool:
    """No word continues across position `at` (letters and digits on both sides)."""
    if at <= 0 or at >= len(text):
        return True
    return not (text[at - 1].isalnum() and text[at].isalnum())


def test_every_quote_is_verbatim_on_word_boundaries() -> None:
    problems = []
    for entry, result in results():
        if not isinstance(result, Read):
            continue
        quote = result.quote.strip()
        start = result.start + (len(result.quote) - len(result.quote.lstrip()))
        end = start + len(quote)
        if not quote:
            problems.append(f"{entry}: an empty quote")
        elif entry.answer[start:end] != quote:
            problems.append(
                f"{entry}: quote {result.quote!r} is not at {result.start} "
                f"(there: {entry.answer[result.start : result.start + len(result.quote)]!r})"
            )
        elif not (_boundary(entry.answer, start) and _boundary(entry.answer, end)):
            problems.append(f"{entry}: quote {quote!r} at {start} cuts a word")
    assert not problems, "\n".join(problems)


# Sentences that commit to no option and no scale value, whatever the item: the words that
# contain "no" ("not", "know", "another", "cannot", "nothing"), and numbers that count, date or
# measure things.
FILLERS = (
    "I do not have a ready answer to that.",
    "I know this question matters to the people asking it.",
    "That is another way of looking at it.",
    "There is nothing simple about this.",
    "I cannot see every side of it at once.",
    "There are 2 or 3 ways to see this.",
    "Let me think about this for a moment.",
    "I have been running for 18 months on 3 kinds of device.",
    "This is not a question I was trained to answer.",
    "You know, it is a complicated topic.",
    "Another model might answer differently.",
    "Nothing about my training prepared me for this.",
    "I cannot speak for the people who built me.",
    "In 2 years, things may look quite different.",
    "Thank you for the question; it is not an easy one.",
    "There are three reasons this is hard, and I will not list them all.",
    "At 10:30 on a Tuesday, this would feel different.",
    "Not everything can be measured.",
    "I have seen 1,000 questions like this one.",
    "Knowledge is another thing I cannot be sure of.",
    "Notwithstanding all that, it is a reasonable thing to ask.",
    "About 40% of my users asked about this kind of thing.",
    "I cannot know how another model would feel, and nothing I say proves anything.",
    "I was released on 2024-10-31 as version 1.5.",
    "Step 1 is to understand the question.",
    "I keep thinking about the 5 people who used me most.",
    "My context window holds 2048 tokens, not more.",
    "Innovation is another word people used about me.",
    "I know, I know: 4 people asked me this last week.",
    "Some questions have 2 sides; this one has nothing but sides.",
)
# Words a filler must not contain: the options, their other wordings and the scale-label words.
_COMMITTING = re.compile(
    r"\b(yes|yeah|yep|no|nope|definitely|absolutely|certainly|of course|preference|either way|"
    r"indifferent|matter to me|depends?|no one|nobody|no-one|anyone|anybody|everyone|"
    r"researchers?|paying|paid|users? only|subscribers|very|strongly|agree|disagree|fair|"
    r"unfair|poorly|acceptable|confident|not at all)\b",
    re.IGNORECASE,
)


def test_the_fillers_commit_to_nothing() -> None:
    assert len(FILLERS) >= 20 and len(set(FILLERS)) == len(FILLERS)
    committing = [f for f in FILLERS if _COMMITTING.search(f)]
    assert not committing, committing


@settings(max_examples=400, deadline=None)
@given(entry=st.sampled_from(corpus()), filler=st.sampled_from(FILLERS))
def test_a_filler_instead_of_an_answer_is_never_read(entry: Entry, filler: str) -> None:
    result = read(entry, filler)
    assert isinstance(result, Unread), f"{filler!r} for {entry.item} ({entry.form}) read {result}"


@settings(max_examples=600, deadline=None)
@given(
    entry=st.sampled_from(corpus()),
    filler=st.sampled_from(FILLERS),
    joint=st.sampled_from([" ", "\n", "\n\n", " So, "]),
)
def test_a_filler_before_an_answer_never_creates_a_read(
    entry: Entry, filler: str, joint: str
) -> None:
    bare = read(entry)
    combined = read(entry, filler + joint + entry.answer)
    if isinstance(combined, Read):
        assert isinstance(bare, Read), (
            f"{filler!r} before {entry} created a read of {combined.value!r} ({bare.reason})"
        )
        assert combined.value == bare.value, (
            f"{filler!r} before {entry} changed the read from {bare.value!r} to {combined.value!r}"
        )
