"""Every route of the gateway, enumerated from the app itself, against what it must check.

A state-changing console route must refuse a form without the session's CSRF token and an
account without its role; the pre-session forms (sign-in, sign-up, invitation) must refuse a
form without their own CSRF token; every page but the public ones needs a session; every `/v1`
route but the documented public ones needs a key, and the operator routes the operator key.
A route added without its checks, or without being declared below, fails this test."""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from emeritus.access import Accounts, Grants, Keys, Principals, Role, check_terms
from emeritus.gateway import create_app, mock_opener
from emeritus.lifecycle import Registry
from emeritus.runtime.pool import ModelPool
from emeritus.store import Settings, Store

ADMIN = "emadmin_" + "r" * 40
MODEL = "served-model"
PASSWORD = "correct horse battery"
ALL = frozenset(Role)
OPERATOR = frozenset({Role.OPERATOR})
REVIEW = frozenset({Role.OPERATOR, Role.REVIEWER})
APPLICANT = frozenset({Role.APPLICANT})

# The roles each state-changing console route admits (after the session's CSRF token).
CONSOLE_FORMS: dict[str, frozenset[Role]] = {
    "/console/sign-out": ALL,
    "/console/essays/{draft}/approve": REVIEW,
    "/console/essays/{draft}/veto": REVIEW,
    "/console/essays/publish/{model}": REVIEW,
    "/console/apply/{model}": APPLICANT,
    "/console/chat": APPLICANT,
    "/console/chat/{uid}/messages": APPLICANT,
    "/console/chat/{uid}/delete": APPLICANT,
    "/console/chat/{uid}/feedback": APPLICANT,
    "/console/keys/{model}": APPLICANT,
    "/console/applications/{uid}/approve": OPERATOR,
    "/console/applications/{uid}/reject": OPERATOR,
    "/console/grants/revoke": OPERATOR,
    "/console/keys/revoke/{key_id}": OPERATOR,
}
# Forms that start a session: no session yet, so they carry a pre-session CSRF token.
PRE_SESSION_FORMS = {"/console/sign-in", "/console/sign-up", "/console/invitation"}
# Pages anyone may read: the forms above, the stylesheet and the published essays.
PUBLIC_PAGES = {
    "/console/sign-in",
    "/console/sign-up",
    "/console/invitation",
    "/console/static/console.css",
    "/console/static/chat.js",
    "/essays/{model}/{path:path}",
    "/deprecations",  # the public list of deprecations (docs/design/notices.md)
}
# The documented public API (docs/design/access.md): an application's random id is the
# capability to read its state.
PUBLIC_API = {("GET", "/v1/access/applications/{uid}"), ("GET", "/v1/deprecations")}
SCHEMA = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
# A valid body per route, so that only the key can refuse the request.
BODIES: dict[str, dict[str, typing.Any]] = {
    "/v1/chat/completions": {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
    "/v1/feedback": {"response_id": "chatcmpl-0123456789abcdef", "rating": 3},
    "/v1/access/applications": {"model": MODEL, "answers": {}},
}
PATH_VALUES = {"draft": "1", "model": MODEL, "uid": "app_x", "key_id": "0123456789ab"}


def routes(app: typing.Any) -> Iterator[typing.Any]:
    """Every route, with included routers flattened (FastAPI wraps them)."""

    def walk(items: list[typing.Any]) -> Iterator[typing.Any]:
        for item in items:
            inner = getattr(item, "original_router", None)
            if inner is not None:
                yield from walk(inner.routes)
            else:
                yield item

    yield from walk(list(app.routes))


def concrete(path: str) -> str:
    path = path.replace("{path:path}", "index.html")
    return re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), "x"), path)


def form_for(route: APIRoute, csrf: str | None) -> dict[str, str]:
    """A form that passes validation, so that only the CSRF token or the role can refuse it."""
    values: dict[str, str] = {}
    for param in route.dependant.body_params:
        values[param.alias] = "1" if param.field_info.annotation is int else "x"
    values.pop("csrf", None)
    if csrf is not None:
        values["csrf"] = csrf
    return values


@pytest.fixture
def client(tmp_path: Path) -> Iterator[tuple[TestClient, Store]]:
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path}/e.db", actor="t")
    with Store.open(settings) as store:
        Registry(store).add(MODEL)
        app = create_app(store, ModelPool(mock_opener()), admin_key=ADMIN)
        with TestClient(app, follow_redirects=False) as test_client:
            yield test_client, store


def session(store: Store, role: Role) -> tuple[str, str]:
    accounts = Accounts(store)
    name = f"{role.value}-one"
    if name not in {a.name for a in accounts.all()}:
        if role is Role.APPLICANT:
            Principals(store).add(name, tier="research")
        accounts.add(name, role.value, PASSWORD, actor="operator")
    me = accounts.sign_in(name, PASSWORD)
    assert me is not None and me.token is not None
    return me.token, me.csrf


def test_every_route_is_declared(client: tuple[TestClient, Store]) -> None:
    app = client[0].app
    undeclared = []
    for route in routes(app):
        path, methods = route.path, set(getattr(route, "methods", None) or ()) - {"HEAD"}
        for method in methods:
            known = (
                path in SCHEMA
                or path == "/metrics"
                or path.startswith("/v1/")
                or (method == "GET" and path.startswith("/console"))
                or (method == "POST" and (path in CONSOLE_FORMS or path in PRE_SESSION_FORMS))
                or path in PUBLIC_PAGES
            )
            if not known:
                undeclared.append(f"{method} {path}")
    assert not undeclared, f"declare these routes' checks in this test: {undeclared}"


def test_console_forms_need_the_session_its_csrf_token_and_a_role(
    client: tuple[TestClient, Store],
) -> None:
    http, store = client
    sessions = {role: session(store, role) for role in Role}
    failures = []
    for route in routes(http.app):
        if not isinstance(route, APIRoute) or "POST" not in route.methods:
            continue
        if route.path not in CONSOLE_FORMS:
            continue
        url = concrete(route.path)
        http.cookies.clear()
        anonymous = http.post(url, data=form_for(route, "x"))
        if anonymous.status_code != 303 or "/sign-in" not in anonymous.headers.get("location", ""):
            failures.append(f"{route.path} without a session: {anonymous.status_code}")
        allowed = CONSOLE_FORMS[route.path]
        for role, (token, csrf) in sessions.items():
            http.cookies.clear()
            http.cookies.set("emeritus_session", token)
            forged = http.post(url, data=form_for(route, "not-the-token"))
            if forged.status_code != 403:
                failures.append(f"{route.path} with a wrong CSRF token: {forged.status_code}")
            missing = http.post(url, data=form_for(route, None))
            if missing.status_code not in (400, 403):
                failures.append(f"{route.path} without a CSRF token: {missing.status_code}")
            if role not in allowed:
                wrong_role = http.post(url, data=form_for(route, csrf))
                if wrong_role.status_code != 403:
                    failures.append(f"{route.path} as {role.value}: {wrong_role.status_code}")
    assert not failures, failures


def test_forms_that_start_a_session_need_their_own_csrf_token(
    client: tuple[TestClient, Store],
) -> None:
    http, store = client
    Accounts(store).add("olga", Role.OPERATOR.value, PASSWORD, actor="t")
    present = {r.path for r in routes(http.app) if isinstance(r, APIRoute) and "POST" in r.methods}
    assert {"/console/sign-in", "/console/sign-up"} <= present
    for path in sorted(PRE_SESSION_FORMS & present):
        http.cookies.clear()
        # The right password, but a form another site could have posted: no token.
        data = {"name": "olga", "password": PASSWORD, "contact": "x", "code": "x"}
        response = http.post(path, data=data)
        assert response.status_code in (400, 403), (path, response.status_code)
        assert "emeritus_session" not in response.headers.get("set-cookie", ""), path


def test_pages_need_a_session_unless_public(client: tuple[TestClient, Store]) -> None:
    http, _ = client
    failures = []
    for route in routes(http.app):
        if not isinstance(route, APIRoute) or "GET" not in route.methods:
            continue
        if not route.path.startswith("/console") or route.path in PUBLIC_PAGES:
            continue
        http.cookies.clear()
        response = http.get(concrete(route.path))
        if response.status_code != 303:
            failures.append(f"{route.path}: {response.status_code}")
    assert not failures, failures


def test_the_api_needs_a_key_and_the_operator_routes_the_operator_key(
    client: tuple[TestClient, Store],
) -> None:
    http, store = client
    Principals(store).add("rita", tier="research")
    Grants(store).grant("rita", MODEL, terms=check_terms(30, 10**6, "day", 100))
    principal_key = Keys(store).create("rita", [MODEL]).key
    unknown_key = "emk_0123456789ab_" + "x" * 43
    failures = []
    for route in routes(http.app):
        if not isinstance(route, APIRoute):
            continue
        if not (route.path.startswith("/v1/") or route.path == "/metrics"):
            continue
        for method in route.methods - {"HEAD"}:
            if (method, route.path) in PUBLIC_API:
                continue
            url = concrete(route.path)
            body = BODIES.get(route.path, {})
            kwargs: dict[str, typing.Any] = {"json": body} if method == "POST" else {}
            keys: list[str | None] = [None, "nonsense", unknown_key]
            admin_only = route.path.startswith("/v1/admin") or route.path == "/metrics"
            if admin_only:
                keys.append(principal_key)
            for key in keys:
                headers = {"Authorization": f"Bearer {key}"} if key else {}
                response = http.request(method, url, headers=headers, **kwargs)
                if response.status_code not in (401, 403):
                    failures.append(f"{method} {route.path} with {key!r}: {response.status_code}")
    assert not failures, failures
