"""The gateway: an OpenAI-compatible API for retired models behind access control, the access
application endpoints, operator endpoints and Prometheus metrics. Deny by default: a request
reaches a model only after `Gate.authorize` admitted it, and every admitted request is metered
exactly once. Spec: docs/design/access.md, "The gateway"."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from emeritus import __version__
from emeritus.errors import Conflict, EmeritusError, InvalidInput, NotFound
from emeritus.gateway import access_api, console, console_access, console_watch, openai_api
from emeritus.gateway.common import Admin, Current, Gateway, error
from emeritus.runtime.pool import ModelPool
from emeritus.store import Store

MAX_BODY = 1_000_000  # bytes
STATUS = {InvalidInput: 400, NotFound: 404, Conflict: 409}


def create_app(
    store: Store, pool: ModelPool, *, admin_key: str | None, default_tier: str = "research"
) -> FastAPI:
    app = FastAPI(
        title="emeritus gateway",
        version=__version__,
        description="Retired models, OpenAI-compatible, for the people they are kept for.",
    )
    app.state.gateway = Gateway(store, pool, admin_key, default_tier)

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Any) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            return error(413, f"the body is larger than {MAX_BODY:,} bytes", "body_too_large")
        response: Response = await call_next(request)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error(400, f"{where or 'body'}: {first.get('msg', 'invalid')}", "invalid_request")

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        return error(exc.status_code, str(exc.detail), "http_error")

    @app.exception_handler(EmeritusError)
    async def refused(_: Request, exc: EmeritusError) -> JSONResponse:
        status = next((s for kind, s in STATUS.items() if isinstance(exc, kind)), 400)
        return error(status, str(exc), type(exc).__name__.lower())

    @app.exception_handler(console.SignInRequired)
    async def sign_in_first(_: Request, __: console.SignInRequired) -> Response:
        return RedirectResponse("/console/sign-in", status_code=303)

    app.include_router(openai_api.router)
    app.include_router(access_api.router)
    app.include_router(console.router)
    app.include_router(console_access.router)
    app.include_router(console_watch.router)
    app.include_router(console.essays)

    @app.get("/metrics", include_in_schema=False)
    def metrics(_: Admin, gateway: Current) -> Response:
        return Response(gateway.metrics.render(), media_type="text/plain; version=0.0.4")

    return app


def new_admin_key() -> str:
    return "emadmin_" + secrets.token_urlsafe(32)
