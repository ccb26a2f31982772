"""What every route of the gateway shares: the running gateway, bearer tokens, the operator check,
OpenAI-shaped errors and a JSON response that every input can be encoded in."""

from __future__ import annotations

import hmac
import json
import re
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from emeritus.access import Decision, Gate
from emeritus.gateway.admission import Admission, AdmissionSettings
from emeritus.gateway.metrics import Metrics
from emeritus.lifecycle import Registry
from emeritus.runtime import ModelPool
from emeritus.store import Store


@dataclass
class Gateway:
    store: Store
    pool: ModelPool
    admin_key: str | None
    default_tier: str = "research"
    admission_settings: AdmissionSettings = field(default_factory=AdmissionSettings)

    def __post_init__(self) -> None:
        self.gate = Gate(self.store)
        self.registry = Registry(self.store)
        self.metrics = Metrics(lambda: len(self.pool.loaded()))
        self.admission = Admission(self.pool, self.admission_settings, self.metrics)


def current(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


_SURROGATE = re.compile("[\ud800-\udfff]")


class EncodableJSONResponse(JSONResponse):
    """JSON in UTF-8 whatever the content: a lone surrogate (which JSON escapes can carry in but
    UTF-8 cannot carry out) becomes U+FFFD instead of an unencodable, unanswered response."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            return _SURROGATE.sub("\ufffd", text).encode("utf-8")


def error(status: int, message: str, code: str, **headers: str) -> JSONResponse:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    return EncodableJSONResponse(body, status_code=status, headers=headers or None)


def refusal(gateway: Gateway, decision: Decision) -> JSONResponse:
    """The gate's refusal as the client sees it: its status, Retry-After, WWW-Authenticate."""
    assert decision.reason is not None
    gateway.metrics.denials.labels(str(decision.reason)).inc()
    headers = {}
    if decision.retry_after is not None:
        headers["Retry-After"] = str(decision.retry_after)
    if decision.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return EncodableJSONResponse(
        decision.error_body(), status_code=decision.status, headers=headers
    )


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def require_admin(request: Request) -> None:
    """Operator endpoints need the operator key, compared in constant time."""
    given, expected = bearer(request), current(request).admin_key
    if expected is None or given is None:
        raise HTTPException(401, "an operator key is required (Authorization: Bearer)")
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise HTTPException(403, "not an operator key")


Admin = Annotated[None, Depends(require_admin)]
Current = Annotated[Gateway, Depends(current)]
