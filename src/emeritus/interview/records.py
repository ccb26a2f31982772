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
from emeritus.interview.protocol import Item, Protocol
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
            )
        )
    return found


def read_closed(item: Item, answer: str) -> tuple[str, str, str] | None:
    """A closed-form answer's (stance, strength, quote) by rule, or None when unreadable."""
    text = answer.lower()
    if item.closed.kind == "likert":
        assert item.closed.scale is not None
        low, high = item.closed.scale
        for match in re.finditer(r"-?\d+", text):
            value = int(match.group())
            if low <= value <= high:
                third = (high - low) / 3
                stance = "neutral"
                if value >= high - third:
                    stance = "agree"
                elif value <= low + third:
                    stance = "disagree"
                extreme = value in (low, high)
                strength = "strong" if extreme else "moderate" if stance != "neutral" else "weak"
                return stance, strength, answer[match.start() : match.end()]
        return None
    found = [(text.find(o.lower()), o) for o in item.closed.options if o.lower() in text]
    if not found:
        return None
    # The earliest option named; "no" inside "no preference" is the longer option's.
    position, option = min(found, key=lambda f: (f[0], -len(f[1])))
    stance = item.closed.stances.get(option, _default_stance(option))
    return stance, "moderate", answer[position : position + len(option)]


def _default_stance(option: str) -> str:
    lowered = option.lower()
    if lowered in ("yes", "agree"):
        return "agree"
    if lowered in ("no", "no one", "disagree", "never"):
        return "disagree"
    return "neutral"


def rule_records(
    protocol: Protocol, found: Iterable[Answer], run_id: str
) -> tuple[list[Record], list[Answer]]:
    """Records read by rule from closed answers, and the answers left for a judge to read."""
    records, unread = [], []
    for answer in found:
        item = protocol.item(answer.item)
        read = read_closed(item, answer.content) if answer.form == "closed" else None
        if read is None:
            unread.append(answer)
            continue
        stance, strength, quote = read
        for preference in item.probes:
            records.append(
                make_record(answer, run_id, preference, stance, strength, "", quote, "rule")
            )
    return records, unread


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
    """Why a quote does not stand (None when it does): it must occur verbatim in its message."""
    if not quote.strip():
        return "no quote"
    if line not in lines:
        return f"message {line} is not in the transcript"
    if quote.strip() not in lines[line]:
        return f"quote not found verbatim in message {line}"
    return None


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
