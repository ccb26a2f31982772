"""Webhook signatures: HMAC-SHA256 over a timestamp and the body, as well-known webhook senders
do it (docs/design/notices.md, "Webhooks")."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

SIGNATURE_HEADER = "Emeritus-Signature"
TOLERANCE_S = 300


def new_secret() -> str:
    return "whsec_" + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The header value for one attempt: `t=TIMESTAMP,v1=HEX`."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(
    secret: str, header: str, body: bytes, *, now: float, tolerance: int = TOLERANCE_S
) -> bool:
    """What a receiver checks: the MAC over the raw body, in constant time, and a fresh
    timestamp."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp, given = int(parts["t"]), parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, given)
