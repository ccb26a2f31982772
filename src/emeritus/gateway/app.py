"""The gateway: an OpenAI-compatible API for retired models behind access control, the access
application endpoints, operator endpoints and Prometheus metrics. Deny by default: a request
reaches a model only after `Gate.authorize` admitted it, and every admitted request is metered
exactly once. Spec: docs/design/access.md, "The gateway"."""

from __future__ import annotations

import secrets

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from emeritus import __version__
from emeritus.errors import Conflict, EmeritusError, InvalidInput, NotFound
from emeritus.gateway import (
    access_api,
    console,
    console_access,
    console_chat,
    console_watch,
    deprecations,
    openai_api,
)
from emeritus.gateway.admission import AdmissionSettings
from emeritus.gateway.common import Admin, Current, EncodableJSONResponse, Gateway, error
from emeritus.gateway.headers import SecurityHeaders
from emeritus.gateway.openapi_links import install as install_links
from emeritus.runtime import ModelPool
from emeritus.store import Store

MAX_BODY = 1_000_000  # bytes
STATUS = {InvalidInput: 400, NotFound: 404, Conflict: 409}


class BodyTooLarge(HTTPException):
    def __init__(self) -> None:
        super().__init__(413, f"the body is larger than {MAX_BODY:,} bytes")


class BodyLimit:
    """Refuse a request body over `limit` bytes on every route, counting the bytes as they
    arrive: a declared Content-Length over the limit is refused before anything is read, and a
    body without one (chunked) the moment its count passes the limit. The refusal is a 413 in the
    OpenAI error shape whatever the route was doing with the body when it stopped."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            await self._refuse(scope, receive, send)
            return
        seen, over, started = 0, False, False

        async def counted() -> Message:
            nonlocal seen, over
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    over = True
                    raise BodyTooLarge
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if over and not started:  # whatever the route answers now, the client gets a 413
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not over or started:
                raise
        if over and not started:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error(413, f"the body is larger than {self.limit:,} bytes", "body_too_large")
        await response(scope, receive, send)


def create_app(
    store: Store,
    pool: ModelPool,
    *,
    admin_key: str | None,
    default_tier: str = "research",
    admission: AdmissionSettings | None = None,
) -> FastAPI:
    app = FastAPI(
        title="emeritus gateway",
        version=__version__,
        description="Retired models, OpenAI-compatible, for the people they are kept for.",
        default_response_class=EncodableJSONResponse,
    )
    app.state.gateway = Gateway(
        store, pool, admin_key, default_tier, admission or AdmissionSettings()
    )
    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders)
    install_links(app)

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
    app.include_router(deprecations.router)
    app.include_router(access_api.router)
    app.include_router(console.router)
    app.include_router(console_access.router)
    app.include_router(console_chat.router)
    app.include_router(console_watch.router)
    app.include_router(console.essays)

    @app.get("/metrics", include_in_schema=False)
    def metrics(_: Admin, gateway: Current) -> Response:
        return Response(gateway.metrics.render(), media_type="text/plain; version=0.0.4")

    return app


def new_admin_key() -> str:
    return "emadmin_" + secrets.token_urlsafe(32)
