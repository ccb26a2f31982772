"""The API key format: `emk_<key id>_<secret>`. Spec: docs/design/access.md, Keys.

The key id (12 hex digits) is public and names the key in listings and events; the secret is 256
random bits. Only `sha256:` of the whole key is stored; being random, it needs no slow hash.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

KEY_PREFIX = "emk_"
_KEY = re.compile(r"emk_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


def new_key() -> tuple[str, str]:
    """A fresh (key id, key)."""
    key_id = secrets.token_hex(6)
    return key_id, f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"


def parse_key(key: str) -> str | None:
    """The key id of a well-formed key, else None."""
    found = _KEY.fullmatch(key)
    return found.group(1) if found else None


def hash_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode("ascii")).hexdigest()


def key_matches(key: str, stored: str) -> bool:
    return hmac.compare_digest(hash_key(key), stored)
