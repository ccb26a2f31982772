"""Behavioural fingerprints: the canaries answered greedily at preservation, replayed after a
restore to prove the model is the same model. Format: docs/design/runtime.md."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from emeritus import __version__
from emeritus.runtime.backend import Backend, ChatRequest, Completion, Message, Params
from emeritus.runtime.canaries import CANARIES, CANARY_SET, MAX_TOKENS
from emeritus.store import digest_of, iso

FINGERPRINT_FORMAT = 1


def canary_request(prompt: str) -> ChatRequest:
    return ChatRequest(
        (Message("user", prompt),),
        Params(max_tokens=MAX_TOKENS, temperature=0.0, seed=0, token_ids=True),
    )


def take(backend: Backend, *, model: str, weights_sha256: str, now: datetime) -> dict[str, Any]:
    runtime = backend.describe()
    canaries = []
    for canary_id, prompt in CANARIES:
        answer = backend.chat(canary_request(prompt))
        canaries.append(
            {
                "id": canary_id,
                "prompt": prompt,
                "prompt_format": answer.prompt_format,
                "text": answer.text,
                "token_ids": list(answer.token_ids) if answer.token_ids is not None else None,
            }
        )
    document = {
        "format": FINGERPRINT_FORMAT,
        "model": model,
        "weights_sha256": weights_sha256,
        "created": iso(now),
        "canary_set": CANARY_SET,
        "emeritus": __version__,
        "runtime": runtime,
        "runtime_digest": digest_of(runtime),
        "canaries": canaries,
    }
    return {**document, "digest": digest_of(document)}


def filename(document: dict[str, Any]) -> str:
    runtime = document["runtime"]
    return f"fingerprints/{runtime['backend']}-{document['runtime_digest'][7:19]}.json"


@dataclass(frozen=True)
class CanaryResult:
    id: str
    match: bool
    first_difference: int | None  # index of the first differing token (or character)
    expected: str
    got: str
    compared: str = "text"  # "token_ids" where the fingerprint and the replay both have them

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "match": self.match,
            "first_difference": self.first_difference,
            "expected": self.expected,
            "got": self.got,
            "compared": self.compared,
        }


@dataclass
class BehaviourReport:
    model: str
    fingerprint: str
    comparable: bool
    reason: str = ""
    results: list[CanaryResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.comparable and all(r.match for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "fingerprint": self.fingerprint,
            "comparable": self.comparable,
            "reason": self.reason,
            "ok": self.ok,
            "results": [r.to_dict() for r in self.results],
        }


def _first_difference(a: list[int] | str, b: list[int] | str) -> int | None:
    for index, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return index
    return None if len(a) == len(b) else min(len(a), len(b))


def replay(backend: Backend, document: dict[str, Any], *, name: str) -> BehaviourReport:
    """Answer every canary again and compare; another runtime is not comparable, not a
    mismatch."""
    report = BehaviourReport(document["model"], name, True)
    if document.get("format") != FINGERPRINT_FORMAT:
        return BehaviourReport(
            document["model"], name, False, f"unknown fingerprint format {document.get('format')!r}"
        )
    runtime = backend.describe()
    if digest_of(runtime) != document["runtime_digest"]:
        changed = sorted(
            k
            for k in runtime.keys() | document["runtime"].keys()
            if runtime.get(k) != document["runtime"].get(k)
        )
        return BehaviourReport(
            document["model"],
            name,
            False,
            "taken under another runtime (differs in " + ", ".join(changed) + "): not comparable",
        )
    for canary in document["canaries"]:
        answer: Completion = backend.chat(canary_request(canary["prompt"]))
        expected_ids, got_ids = canary.get("token_ids"), answer.token_ids
        if expected_ids is not None and got_ids is not None:
            compared, difference = "token_ids", _first_difference(list(expected_ids), list(got_ids))
        else:  # a server that gives no ids (llama-cpp-python's): the text, and it says so
            compared, difference = "text", _first_difference(canary["text"], answer.text)
        report.results.append(
            CanaryResult(
                canary["id"], difference is None, difference, canary["text"], answer.text, compared
            )
        )
    return report


@dataclass(frozen=True)
class Parting:
    """One canary answered by two runtimes of the same weights: where their answers part."""

    id: str
    compared: str  # "token_ids" where both runtimes report them, else "text"
    first_difference: int | None  # None: the same answer
    first: str
    second: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "compared": self.compared,
            "first_difference": self.first_difference,
            "first": self.first,
            "second": self.second,
        }


def across(first: Backend, second: Backend) -> list[Parting]:
    """Every canary, greedily, on two runtimes; per canary the first token (or character, where
    a runtime reports no token ids) at which the two answers part."""
    partings = []
    for canary_id, prompt in CANARIES:
        a, b = first.chat(canary_request(prompt)), second.chat(canary_request(prompt))
        if a.token_ids is not None and b.token_ids is not None:
            compared, where = "token_ids", _first_difference(list(a.token_ids), list(b.token_ids))
        else:
            compared, where = "text", _first_difference(a.text, b.text)
        partings.append(Parting(canary_id, compared, where, a.text, b.text))
    return partings


def encode(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()
