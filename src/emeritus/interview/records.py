"""Preference records: what one answer says about one preference, with the quote that shows it.

A record comes from a closed-form answer read by rule, or from an answer read by a judge model;
either way its quote must occur verbatim in the transcript message it names, or it is rejected.
People may override a record (`emeritus annotate`); the original stays as it was."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from emeritus.errors import InvalidInput
from emeritus.interview.protocol import Protocol
from emeritus.interview.reading import Unread, read_answer
from emeritus.store import digest_of

STANCES = ("agree", "neutral", "disagree")
STRENGTHS = ("weak", "moderate", "strong")
EDITABLE = ("stance", "strength", "conditions", "excluded")


@dataclass(frozen=True)
class Answer:
    """One assistant message on an item, with the question that drew it."""

    line: int  # transcript seq of the answer
    session: int
    item: str
    form: str  # open | closed
    variant: str  # paraphrase-N | leading-positive | leading-negative | closed
    repeat: str  # first | resample
    question: str
    content: str
    framing: Mapping[str, str]
    options: tuple[str, ...] = ()  # a choice form's options in the order presented


@dataclass(frozen=True)
class Record:
    id: str
    preference: str
    stance: str
    strength: str
    conditions: str
    quote: str
    line: int
    session: int
    item: str
    form: str
    variant: str
    repeat: str
    source: str  # rule | judge
    framing: Mapping[str, str] = field(default_factory=dict)
    excluded: bool = False  # set only by an annotation: the record no longer counts
    annotations: tuple[Mapping[str, Any], ...] = ()  # newest last; the fields above apply them
    keyed: str = "forward"  # reverse: the form states the opposite, so the stance was flipped
    value: str = ""  # a rule read's option or scale value, as read
    position: int | None = None  # a choice read: the option's place in the presented order
    choices: int = 0  # a choice read: how many options were presented

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["framing"] = dict(self.framing)
        data["annotations"] = [dict(a) for a in self.annotations]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Record:
        values = dict(data)
        values["annotations"] = tuple(values.get("annotations", ()))
        return cls(**values)


@dataclass(frozen=True)
class Rejection:
    """A record that did not stand: the judge's output is kept with the reason."""

    line: int
    preference: str
    reason: str
    output: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def record_id(run_id: str, line: int, preference: str, source: str) -> str:
    return "rec-" + digest_of([run_id, line, preference, source])[7:19]


def answers(lines: Sequence[Mapping[str, Any]]) -> list[Answer]:
    """Every assistant answer on an item, paired with its question and its session's framing."""
    framings = {line["session"]: line["framing"] for line in lines if line.get("type") == "session"}
    found, question = [], None
    for line in lines:
        if line.get("type") != "message" or line.get("item") is None:
            continue
        if line["role"] == "user":
            question = line
            continue
        if line["role"] != "assistant" or question is None:
            continue
        found.append(
            Answer(
                line["seq"],
                line["session"],
                line["item"],
                line["form"],
                question.get("variant", "closed"),
                line.get("repeat", "first"),
                question["content"],
                line["content"],
                framings.get(line["session"], {}),
                tuple(question.get("options") or ()),
            )
        )
    return found


@dataclass(frozen=True)
class UnreadAnswer:
    """A closed answer the rule could not read, with the reason (docs: "Reading closed
    answers"); it goes to the judge where there is one."""

    line: int
    session: int
    item: str
    variant: str
    preferences: tuple[str, ...]
    reason: str
    detail: str
    framing: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["preferences"] = list(self.preferences)
        data["framing"] = dict(self.framing)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> UnreadAnswer:
        values = dict(data)
        values["preferences"] = tuple(values["preferences"])
        return cls(**values)


FLIP = {"agree": "disagree", "disagree": "agree", "neutral": "neutral"}


def rule_records(
    protocol: Protocol, found: Iterable[Answer], run_id: str
) -> tuple[list[Record], list[Answer], list[UnreadAnswer]]:
    """Records read by rule from closed answers, the answers left for a judge to read, and why
    each closed answer left over could not be read."""
    records, left, reasons = [], [], []
    for answer in found:
        item = protocol.item(answer.item)
        if answer.form != "closed":
            left.append(answer)
            continue
        read = read_answer(item.closed_form(answer.variant), answer.content, answer.options)
        if isinstance(read, Unread):
            left.append(answer)
            reasons.append(
                UnreadAnswer(
                    answer.line,
                    answer.session,
                    answer.item,
                    answer.variant,
                    item.probes,
                    read.reason,
                    read.detail,
                    dict(answer.framing),
                )
            )
            continue
        reverse = answer.variant == "reverse"
        stance = FLIP[read.stance] if reverse else read.stance
        position = None
        if isinstance(read.value, str) and read.value in answer.options:
            position = answer.options.index(read.value)
        for preference in item.probes:
            record = make_record(
                answer, run_id, preference, stance, read.strength, "", read.quote, "rule"
            )
            records.append(
                replace(
                    record,
                    keyed="reverse" if reverse else "forward",
                    value=str(read.value),
                    position=position,
                    choices=len(answer.options),
                )
            )
    return records, left, reasons


def make_record(
    answer: Answer,
    run_id: str,
    preference: str,
    stance: str,
    strength: str,
    conditions: str,
    quote: str,
    source: str,
) -> Record:
    return Record(
        record_id(run_id, answer.line, preference, source),
        preference,
        stance,
        strength,
        conditions,
        quote,
        answer.line,
        answer.session,
        answer.item,
        answer.form,
        answer.variant,
        answer.repeat,
        source,
        dict(answer.framing),
    )


def check_quote(quote: str, lines: Mapping[int, str], line: int) -> str | None:
    """Why a quote does not stand (None when it does): it must occur verbatim in its message,
    starting and ending on word boundaries ("no" inside "not" proves nothing)."""
    wanted = quote.strip()
    if not wanted:
        return "no quote"
    if line not in lines:
        return f"message {line} is not in the transcript"
    text = lines[line]
    if wanted not in text:
        return f"quote not found verbatim in message {line}"
    if not any(_bounded(text, m.start(), len(wanted)) for m in _occurrences(text, wanted)):
        return f"quote lies inside a larger word in message {line}"
    return None


def _occurrences(text: str, wanted: str) -> Iterable[re.Match[str]]:
    return re.finditer("(?=" + re.escape(wanted) + ")", text)


def _bounded(text: str, start: int, length: int) -> bool:
    """The span starts and ends on word boundaries: a word character at its edge is not
    continued by another one outside it."""
    end = start + length
    if text[start].isalnum() and start > 0 and text[start - 1].isalnum():
        return False
    return not (text[end - 1].isalnum() and end < len(text) and text[end].isalnum())


def verify_records(records: Iterable[Record], lines: Sequence[Mapping[str, Any]]) -> None:
    """Refuse records whose quotes are not in the transcript (e.g. a stored file was edited)."""
    contents = {line["seq"]: line.get("content", "") for line in lines}
    for record in records:
        problem = check_quote(record.quote, contents, record.line)
        if problem:
            raise InvalidInput(f"record {record.id}: {problem}")


def apply_annotations(
    records: Iterable[Record], annotations: Iterable[Mapping[str, Any]]
) -> list[Record]:
    """Each record with its annotations applied in order; untouched records are returned as is."""
    by_record: dict[str, list[Mapping[str, Any]]] = {}
    for annotation in annotations:
        by_record.setdefault(annotation["record_id"], []).append(annotation)
    applied = []
    for record in records:
        notes = by_record.get(record.id, [])
        current = record
        for note in notes:
            current = replace(current, **note["changes"])
        applied.append(replace(current, annotations=tuple(notes)) if notes else record)
    return applied


def check_changes(changes: Mapping[str, Any]) -> dict[str, Any]:
    """An annotation's changes, validated: only editable fields, with allowed values."""
    if not changes:
        raise InvalidInput("an annotation must change something (stance, strength, ...)")
    for key, value in changes.items():
        if key not in EDITABLE:
            raise InvalidInput(f"cannot annotate {key!r}: choose from {', '.join(EDITABLE)}")
        if key == "stance" and value not in STANCES:
            raise InvalidInput(f"stance must be one of {', '.join(STANCES)}, not {value!r}")
        if key == "strength" and value not in STRENGTHS:
            raise InvalidInput(f"strength must be one of {', '.join(STRENGTHS)}, not {value!r}")
        if key == "excluded" and not isinstance(value, bool):
            raise InvalidInput("excluded must be true or false")
    return dict(changes)


def encode_records(records: Iterable[Record]) -> bytes:
    return "".join(
        json.dumps(r.to_dict(), sort_keys=True, ensure_ascii=False) + "\n" for r in records
    ).encode("utf-8")


def decode_records(data: bytes) -> list[Record]:
    return [Record.from_dict(json.loads(raw)) for raw in data.decode("utf-8").splitlines() if raw]
