"""Interview transcripts: JSONL, one line per message, hash-chained like the event log, with a
header line per session carrying full provenance. Format: docs/design/interview-protocol.md."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from emeritus.errors import IntegrityError
from emeritus.store import GENESIS_DIGEST, canonical_json, digest_of


def chain(lines: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Number the lines and link each to the one before it."""
    chained, previous = [], GENESIS_DIGEST
    for seq, line in enumerate(lines, start=1):
        body = {k: v for k, v in line.items() if k not in ("seq", "prev_digest", "digest")}
        body.update(seq=seq, prev_digest=previous)
        body["digest"] = digest_of(body)
        previous = body["digest"]
        chained.append(body)
    return chained


def encode(lines: list[dict[str, Any]]) -> bytes:
    return "".join(canonical_json(line) + "\n" for line in lines).encode("utf-8")


def decode(data: bytes) -> list[dict[str, Any]]:
    """Parse and verify a transcript; refuse one whose chain is broken, naming the line."""
    lines, previous = [], GENESIS_DIGEST
    for number, raw in enumerate(data.decode("utf-8").splitlines(), start=1):
        try:
            line = json.loads(raw)
        except ValueError:
            raise IntegrityError(f"transcript line {number} is not JSON") from None
        body = {k: v for k, v in line.items() if k != "digest"}
        if (
            line.get("seq") != number
            or line.get("prev_digest") != previous
            or digest_of(body) != line.get("digest")
        ):
            raise IntegrityError(f"transcript line {number} was altered, moved or removed")
        previous = line["digest"]
        lines.append(line)
    return lines
