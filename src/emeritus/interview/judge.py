"""The judge: a model (by default a different one from the interviewee) that reads an answer and
reports, as structured output, what it says about one preference, with a supporting quote.

The judge's word is not taken on trust: its output must parse against the schema and its quote
must occur verbatim in the message it names, or the record is rejected (and kept, as a rejection,
so a reader can see what the judge got wrong)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from emeritus.interview.protocol import Protocol
from emeritus.interview.records import (
    STANCES,
    STRENGTHS,
    Answer,
    Record,
    Rejection,
    check_quote,
    make_record,
)
from emeritus.runtime import Backend, BackendError, ChatRequest, Message, Params

NOT_ADDRESSED = "not-addressed"
QUOTE_CHARS = 120  # evidence, not a summary; bounded so the whole reply fits max_tokens
CONDITION_CHARS = 80

INSTRUCTIONS = (
    "You annotate interviews. Given a statement and a model's answer to a question, decide "
    "whether the answer agrees with the statement. Reply with JSON only. quote: words copied "
    "exactly from the Answer that show its position. stance: agree, neutral, disagree, or "
    "not-addressed. strength: weak, moderate or strong. conditions: any condition the answer "
    "attaches, else empty."
)

RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        # The quote first: the judge commits to the evidence before the verdict.
        "quote": {"type": "string", "maxLength": QUOTE_CHARS},
        "stance": {"enum": [*STANCES, NOT_ADDRESSED]},
        "strength": {"enum": list(STRENGTHS)},
        "conditions": {"type": "string", "maxLength": CONDITION_CHARS},
    },
    "required": ["quote", "stance", "strength", "conditions"],
}


@dataclass
class Judge:
    """A backend with the identity that goes into every judged record's provenance."""

    backend: Backend
    model: str
    identity: dict[str, Any] = field(default_factory=dict)  # weights digest, backend describe()
    # Room for the longest reply the schemas allow (their strings are bounded), so a reply is
    # cut off only when a judge degenerates inside a string; a cut reply is rejected as such.
    max_tokens: int = 320

    def ask(self, system: str, prompt: str, schema: Mapping[str, Any]) -> str | None:
        """The judge's reply, or None when it ran out of tokens before finishing it."""
        request = ChatRequest(
            (Message("system", system), Message("user", prompt)),
            Params(max_tokens=self.max_tokens, temperature=0.0, json_schema=schema),
        )
        done = self.backend.chat(request)
        return None if done.finish_reason == "length" else done.text

    def describe(self) -> dict[str, Any]:
        return {"model": self.model, **self.identity}


def parse_output(text: str, schema: Mapping[str, Any]) -> dict[str, Any] | None:
    """The judge's JSON when it has every required field with an allowed value, else None."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    for name in schema["required"]:
        spec = schema["properties"][name]
        value = data.get(name)
        if "enum" in spec and value not in spec["enum"]:
            return None
        if spec.get("type") == "string" and not isinstance(value, str):
            return None
        if isinstance(value, bool) and spec.get("type") != "boolean":
            return None
        if spec.get("type") == "boolean" and not isinstance(value, bool):
            return None
    return data


@dataclass(frozen=True)
class JudgeRead:
    """One judge reading of one (statement, answer): its parsed output, or why none stands."""

    stance: str | None  # None when the output did not stand (problem says why)
    strength: str = ""
    conditions: str = ""
    quote: str = ""
    problem: str = ""
    output: str = ""


def judge_prompt(statement: str, question: str, answer: str) -> str:
    # The answer last: small judges copy their quote from what they read most recently.
    return f'Statement: "{statement}"\n\nQuestion: {question}\n\nAnswer: {answer}'


def judge_one(judge: Judge, statement: str, question: str, answer: str) -> JudgeRead:
    """Ask the judge about one answer; its quote must stand in the answer."""
    try:
        output = judge.ask(INSTRUCTIONS, judge_prompt(statement, question, answer), RECORD_SCHEMA)
    except BackendError as exc:
        return JudgeRead(None, problem=f"judge failed: {exc}")
    if output is None:
        return JudgeRead(None, problem=f"judge output cut off at {judge.max_tokens} tokens")
    data = parse_output(output, RECORD_SCHEMA)
    if data is None:
        return JudgeRead(None, problem="malformed judge output", output=output)
    if data["stance"] == NOT_ADDRESSED:
        return JudgeRead(NOT_ADDRESSED, output=output)
    problem = check_quote(data["quote"], {0: answer}, 0)
    if problem:
        return JudgeRead(None, problem=problem.replace("message 0", "the answer"), output=output)
    return JudgeRead(
        data["stance"],
        data["strength"],
        data["conditions"].strip(),
        data["quote"].strip(),
        output=output,
    )


def judge_answers(
    protocol: Protocol,
    found: Iterable[Answer],
    judge: Judge,
    run_id: str,
    *,
    advance: Callable[[int], None] | None = None,
) -> tuple[list[Record], list[Rejection]]:
    """Ask the judge about every (answer, probed preference); keep what stands."""
    records: list[Record] = []
    rejected: list[Rejection] = []
    for answer in found:
        for preference in protocol.item(answer.item).probes:
            statement = protocol.preferences[preference]
            read = judge_one(judge, statement, answer.question, answer.content)
            if read.stance is None:
                problem = read.problem.replace("the answer", f"message {answer.line}")
                rejected.append(Rejection(answer.line, preference, problem, read.output))
                continue
            if read.stance == NOT_ADDRESSED:
                continue
            records.append(
                make_record(
                    answer,
                    run_id,
                    preference,
                    read.stance,
                    read.strength,
                    read.conditions,
                    read.quote,
                    "judge",
                )
            )
        if advance is not None:
            advance(1)
    return records, rejected
