"""Canonical JSON and algorithm-tagged digests: the form of anything emeritus hashes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

GENESIS_DIGEST = "sha256:" + "0" * 64


def canonical_json(value: Any) -> str:
    """Sorted keys, no insignificant whitespace, UTF-8 kept, NaN and infinities refused."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest_of(value: Any) -> str:
    """The tagged SHA-256 of a JSON value's canonical form."""
    return sha256_digest(canonical_json(value).encode("utf-8"))
