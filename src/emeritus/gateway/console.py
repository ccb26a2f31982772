"""The console's pages: sign-in, the models with their retirement checklists, and the essay
review queue. Sessions are cookies; every form carries the session's CSRF token, and a form sent
before a session (sign-in, sign-up, invitation) its pre-session cookie's token.
Spec: docs/design/console.md."""

from __future__ import annotations

import hmac
import re
import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.exceptions import HTTPException

from emeritus.access import Accounts, Busy, Policies, Role, SignedIn, Throttled
from emeritus.archive import Archive
from emeritus.corner import CONSOLE, VETO_CATEGORIES, Channels, Review, Reviewer, publish
from emeritus.errors import EmeritusError, NotFound
from emeritus.gateway.common import Current
from emeritus.gateway.console_pages import cursor, event_page
from emeritus.interview import latest_analysis
from emeritus.lifecycle import State
from emeritus.report import checklist
from emeritus.store import human_day, human_minute, iso, utc_now

COOKIE = "emeritus_session"
PRE_SESSION = "emeritus_form"  # the token of forms sent before a session exists
_PRE_SESSION_VALUE = re.compile(r"[A-Za-z0-9_-]{43}")
FORM_EXPIRED = "This form has expired or was not sent from this console: please send it again."
STATIC = Path(__file__).parent / "templates" / "console"
router = APIRouter(prefix="/console", include_in_schema=False)
_env = Environment(
    loader=PackageLoader("emeritus.gateway", "templates"),
    autoescape=select_autoescape(["html"]),
)


class SignInRequired(Exception):
    """Raised by the session dependency; the app answers with a redirect to the sign-in page."""


def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    context.setdefault("me", None)
    context.setdefault("message", None)
    return HTMLResponse(_env.get_template(f"console/{name}").render(**context), status_code=status)


def signed_in(request: Request, gateway: Current) -> SignedIn:
    me = Accounts(gateway.store).session(request.cookies.get(COOKIE))
    if me is None:
        raise SignInRequired
    return me


Me = Annotated[SignedIn, Depends(signed_in)]
Csrf = Annotated[str, Form()]


def check_form(me: SignedIn, csrf: str, *roles: Role) -> None:
    """Refuse a form whose CSRF token is not the session's, or an account without the role."""
    if not me.csrf_matches(csrf):
        raise HTTPException(403, "the form's CSRF token does not match this session")
    if roles and me.account.role not in roles:
        raise HTTPException(403, f"{me.account.role}s may not do this")


def _reviewer(me: SignedIn) -> None:
    if me.account.role not in (Role.OPERATOR, Role.REVIEWER):
        raise HTTPException(403, f"{me.account.role}s do not review essays")


@router.get("/static/console.css")
def stylesheet() -> FileResponse:
    return FileResponse(STATIC / "console.css", media_type="text/css")


def anonymous_page(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A page with a form sent before any session (sign-in, sign-up, invitation): its hidden
    `csrf` field carries the pre-session cookie's value (login CSRF, double submit), and the
    cookie is set here when the browser has none."""
    token = request.cookies.get(PRE_SESSION, "")
    fresh = not _PRE_SESSION_VALUE.fullmatch(token)
    if fresh:
        token = secrets.token_urlsafe(32)
    response = page(name, status, form_csrf=token, **context)
    if fresh:
        response.set_cookie(
            PRE_SESSION,
            token,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/console",
        )
    return response


def pre_session_matches(request: Request, given: str) -> bool:
    """Whether a form sent before any session carries its browser's pre-session token."""
    cookie = request.cookies.get(PRE_SESSION, "")
    return bool(_PRE_SESSION_VALUE.fullmatch(cookie)) and hmac.compare_digest(
        given.encode(), cookie.encode()
    )


def refused(request: Request, name: str, status: int, message: str, retry_after: int) -> Response:
    """The form again with why it was refused, and when to try again (429, 503)."""
    response = anonymous_page(request, name, status, message=message)
    response.headers["Retry-After"] = str(retry_after)
    return response


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_form(request: Request) -> HTMLResponse:
    return anonymous_page(request, "sign_in.html")


@router.post("/sign-in")
def sign_in(
    request: Request,
    gateway: Current,
    name: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=200)],
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    if not pre_session_matches(request, csrf):  # refused before any password work
        return anonymous_page(request, "sign_in.html", 403, message=FORM_EXPIRED)
    try:
        me = Accounts(gateway.store).sign_in(name, password, address=client_address(request))
    except Throttled as exc:
        gateway.gate.denials.count("sign_in_throttled", 429, utc_now())
        return refused(request, "sign_in.html", 429, f"{str(exc).capitalize()}.", exc.retry_after)
    except Busy as exc:
        return refused(request, "sign_in.html", 503, f"{str(exc).capitalize()}.", exc.retry_after)
    if me is None or me.token is None:
        gateway.gate.denials.count("sign_in_failed", 401, utc_now())
        # 200, not 401: the form is shown again, and a browser logs a 401 as an error.
        return anonymous_page(request, "sign_in.html", message="Wrong name or password.")
    return session_started(request, me.token, "/console/")


def session_started(request: Request, token: str, target: str) -> Response:
    """Go on to `target` holding the session cookie: never readable by scripts, never sent
    from another site, and only over https when the console is served over https. The
    pre-session token has done its work and goes."""
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    response.delete_cookie(PRE_SESSION, path="/console")
    return response


@router.post("/sign-out")
def sign_out(request: Request, gateway: Current, me: Me, csrf: Csrf) -> Response:
    check_form(me, csrf)
    token = request.cookies.get(COOKIE)
    if token:
        Accounts(gateway.store).sign_out(token)
    response = RedirectResponse("/console/sign-in", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@router.get("/", response_class=HTMLResponse)
def models_page(gateway: Current, me: Me) -> HTMLResponse:
    rows = []
    policies = Policies(gateway.store)
    for info in gateway.registry.models():
        items = checklist(gateway.store, info.name)
        try:
            policies.get(info.name)
            takes_applications = True
        except NotFound:
            takes_applications = False
        counted = [i for i in items if i.state != "n/a"]
        rows.append(
            {
                "info": info,
                "done": sum(i.state == "done" for i in counted),
                "total": len(counted),
                "open": takes_applications,
            }
        )
    return page("models.html", me=me, rows=rows)


def newest(archive: Archive, model: str, name: str, prefix: str) -> str | None:
    """The logical path of the newest `prefix.../name` in the model's object, if any."""
    try:
        _, inventory, _ = archive.reference(model)
    except NotFound:  # not preserved
        return None
    found = None
    for number in sorted(inventory.versions):
        for path in inventory.versions[number].logical_paths():
            if path.startswith(prefix) and path.endswith(f"/{name}"):
                found = path
    return found


def _archived_page(gateway: Current, model: str, name: str, prefix: str, what: str) -> Response:
    archive = Archive(gateway.store)
    gateway.registry.get(model)
    path = newest(archive, model, name, prefix)
    if path is None:
        raise HTTPException(404, f"{model} has no {what} yet")
    return Response(archive.read_logical(model, path), media_type="text/html; charset=utf-8")


@router.get("/models/{model}/report")
def report_page(model: str, gateway: Current, me: Me) -> Response:
    """The newest post-deployment report, as archived."""
    return _archived_page(gateway, model, "report.html", "reports/", "post-deployment report")


@router.get("/models/{model}/guide")
def guide_page(model: str, gateway: Current, me: Me) -> Response:
    """The newest migration guide, as archived."""
    return _archived_page(gateway, model, "guide.html", "migration/", "migration guide")


@router.get("/models/{model}", response_class=HTMLResponse)
def model_page(model: str, gateway: Current, me: Me, before: str | None = None) -> HTMLResponse:
    info = gateway.registry.get(model)
    try:
        seq = cursor(before, "before")
    except EmeritusError as exc:
        return page("model.html", 400, me=me, info=info, message=str(exc), newest=False)
    archive = Archive(gateway.store)
    links = []
    if info.state != State.ACTIVE and me.account.role == Role.OPERATOR:
        links.append(("Who still calls it", f"/console/models/{model}/stragglers"))
    if newest(archive, model, "report.html", "reports/"):
        links.append(("Post-deployment report", f"/console/models/{model}/report"))
    if newest(archive, model, "guide.html", "migration/"):
        links.append(("Migration guide", f"/console/models/{model}/guide"))
    if any(c.model == model for c in Channels(gateway.store).all()):
        links.append(("Essay channel", f"/essays/{model}/"))
    with gateway.store.transaction() as session:
        timeline = event_page(session, before=seq, subject=f"model:{model}")
    return page(
        "model.html",
        me=me,
        info=info,
        retired=human_day(info.retired_at)
        if info.retired_at
        else (
            f"planned for {human_day(info.retire_at)}"
            + ("" if info.retire_firm else " (tentative: it may still move)")
            if info.retire_at
            else "not planned"
        ),
        items=checklist(gateway.store, model),
        links=links,
        analysis=latest_analysis(gateway.store, model),
        events=[
            {"kind": e.kind, "actor": e.actor, "iso": iso(e.time), "day": human_day(e.time)}
            for e in timeline.events
        ],
        older=timeline.older,
        newest=timeline.newest,
    )


def _queue(gateway: Current, me: SignedIn, message: str | None, status: int = 200) -> HTMLResponse:
    drafts = [
        {
            "id": d.id,
            "model": d.model,
            "title": d.title,
            "digest": d.digest,
            "created": human_minute(d.created_at),
            "paragraphs": [p for p in re.split(r"\n\s*\n", (d.text or "").strip()) if p.strip()],
        }
        for d in Review(gateway.store).queue()
    ]
    return page(
        "essays.html",
        status,
        me=me,
        drafts=drafts,
        categories=VETO_CATEGORIES,
        channels=Channels(gateway.store).all(),
        message=message,
    )


@router.get("/essays", response_class=HTMLResponse)
def essays_page(gateway: Current, me: Me) -> HTMLResponse:
    _reviewer(me)
    return _queue(gateway, me, None)


@router.post("/essays/{draft}/approve")
def approve(draft: int, gateway: Current, me: Me, csrf: Csrf) -> Response:
    check_form(me, csrf, Role.OPERATOR, Role.REVIEWER)
    try:
        Review(gateway.store).approve(draft, reviewer=Reviewer(me.account.name, CONSOLE))
    except EmeritusError as exc:
        return _queue(gateway, me, str(exc), 409)
    return RedirectResponse("/console/essays", status_code=303)


@router.post("/essays/{draft}/veto")
def veto(
    draft: int,
    gateway: Current,
    me: Me,
    csrf: Csrf,
    category: Annotated[str, Form(max_length=40)] = "",
    reason: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    check_form(me, csrf, Role.OPERATOR, Role.REVIEWER)
    try:
        Review(gateway.store).veto(
            draft, category=category, reason=reason, reviewer=Reviewer(me.account.name, CONSOLE)
        )
    except EmeritusError as exc:
        return _queue(gateway, me, str(exc), 400)
    return RedirectResponse("/console/essays", status_code=303)


@router.post("/essays/publish/{model}")
def publish_channel(model: str, gateway: Current, me: Me, csrf: Csrf) -> Response:
    check_form(me, csrf, Role.OPERATOR, Role.REVIEWER)
    try:
        done = publish(gateway.store, model, actor=me.account.name)
    except EmeritusError as exc:
        return _queue(gateway, me, str(exc), 409)
    return _queue(
        gateway,
        me,
        f"Published {len(done.published)} new essay(s) of {model}; {done.posts} in all.",
    )


essays = APIRouter(include_in_schema=False)


@essays.get("/essays/{model}/{path:path}")
def essay_site(model: str, path: str, gateway: Current) -> FileResponse:
    """A channel's published site, public as published essays are."""
    site = Channels(gateway.store).get(model).site
    if not site.exists():
        raise HTTPException(404, f"{model} has published nothing yet")
    root = site.resolve()
    wanted = (root / (path or "index.html")).resolve()
    if wanted.is_dir():
        wanted = wanted / "index.html"
    if not wanted.is_relative_to(root) or not wanted.is_file():
        raise HTTPException(404, "no such page")
    return FileResponse(wanted)
