"""What every route of the gateway shares: the running gateway, bearer tokens, the operator check
and OpenAI-shaped errors."""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from emeritus.access import Gate
from emeritus.gateway.metrics import Metrics
from emeritus.lifecycle import Registry
from emeritus.runtime.pool import ModelPool
from emeritus.store import Store


@dataclass
class Gateway:
    store: Store
    pool: ModelPool
    admin_key: str | None
    default_tier: str = "research"

    def __post_init__(self) -> None:
        self.gate = Gate(self.store)
        self.registry = Registry(self.store)
        self.metrics = Metrics(lambda: len(self.pool.loaded()))


def current(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def error(status: int, message: str, code: str, **headers: str) -> JSONResponse:
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    return JSONResponse(body, status_code=status, headers=headers or None)


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
