"""The console's access pages: applicants create an account, apply for a model with its form,
follow their applications and create API keys once approved; operators decide applications.
Spec: docs/design/console.md, docs/design/access.md."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from emeritus.access import (
    Accounts,
    Applications,
    ApplicationState,
    Approval,
    Busy,
    Grants,
    Invitations,
    Keys,
    Policies,
    Principals,
    Role,
    SignedIn,
    Throttled,
)
from emeritus.errors import Conflict, EmeritusError, NotFound
from emeritus.gateway.common import Current
from emeritus.gateway.console import (
    FORM_EXPIRED,
    Csrf,
    Me,
    anonymous_page,
    check_form,
    client_address,
    page,
    pre_session_matches,
    refused,
    session_started,
)
from emeritus.store import as_utc, human_day, human_minute, utc_now

router = APIRouter(prefix="/console", include_in_schema=False)


def _when(value: Any) -> str:
    return human_minute(value) if value else ""


@router.get("/sign-up", response_class=HTMLResponse)
def sign_up_form(request: Request) -> HTMLResponse:
    return anonymous_page(request, "sign_up.html")


@router.post("/sign-up")
def sign_up(
    request: Request,
    gateway: Current,
    name: Annotated[str, Form(max_length=100)],
    contact: Annotated[str, Form(max_length=200)],
    password: Annotated[str, Form(max_length=200)],
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """A new principal and its applicant account, never an account for a name in use."""
    if not pre_session_matches(request, csrf):
        return anonymous_page(request, "sign_up.html", 403, message=FORM_EXPIRED)
    try:
        me = Accounts(gateway.store).sign_up(
            name,
            password,
            tier=gateway.default_tier,
            contact=contact,
            address=client_address(request),
        )
    except Throttled as exc:
        message = f"Too many sign-ups from this address; try again in {exc.retry_after} seconds."
        return refused(request, "sign_up.html", 429, message, exc.retry_after)
    except Busy as exc:
        return refused(request, "sign_up.html", 503, f"{str(exc).capitalize()}.", exc.retry_after)
    except EmeritusError as exc:
        return anonymous_page(request, "sign_up.html", 400, message=_sentence(str(exc)))
    assert me.token is not None
    return session_started(request, me.token, "/console/applications")


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


@router.get("/invitation", response_class=HTMLResponse)
def invitation_form(request: Request) -> HTMLResponse:
    return anonymous_page(request, "invitation.html")


@router.post("/invitation")
def accept_invitation(
    request: Request,
    gateway: Current,
    code: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=200)],
    csrf: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    """The account an operator's invitation code stands for, bound to its principal."""
    if not pre_session_matches(request, csrf):
        return anonymous_page(request, "invitation.html", 403, message=FORM_EXPIRED)
    try:
        me = Invitations(gateway.store).redeem(code, password)
    except Busy as exc:
        return refused(
            request, "invitation.html", 503, f"{str(exc).capitalize()}.", exc.retry_after
        )
    except EmeritusError as exc:
        return anonymous_page(request, "invitation.html", 400, message=_sentence(str(exc)))
    assert me.token is not None
    target = "/console/applications" if me.account.role is Role.APPLICANT else "/console/"
    return session_started(request, me.token, target)


def _apply_page(
    gateway: Current, me: SignedIn, model: str, status: int, message: str | None
) -> HTMLResponse:
    policy = Policies(gateway.store).get(model)
    approval = (
        "Applications for this model are approved automatically."
        if policy.approval is Approval.AUTO
        else "An operator reads each application and approves or rejects it."
    )
    return page(
        "apply.html",
        status,
        me=me,
        model=model,
        fields=policy.fields,
        approval=approval,
        message=message,
    )


@router.get("/apply/{model}", response_class=HTMLResponse)
def apply_form(model: str, gateway: Current, me: Me) -> HTMLResponse:
    return _apply_page(gateway, me, model, 200, None)


@router.post("/apply/{model}")
async def apply(model: str, request: Request, gateway: Current, me: Me) -> Response:
    form = await request.form()
    check_form(me, str(form.get("csrf", "")), Role.APPLICANT)
    policy = Policies(gateway.store).get(model)
    answers: dict[str, Any] = {}
    for field in policy.fields:
        value = form.get(field.name)
        if field.type == "checkbox":
            answers[field.name] = value == "true"
        elif isinstance(value, str) and value != "":
            answers[field.name] = value
    with contextlib.suppress(Conflict):  # an applicant account an operator made, no principal yet
        Principals(gateway.store).add(me.account.name, tier=gateway.default_tier)
    try:
        Applications(gateway.store).submit(me.account.name, model, answers)
    except EmeritusError as exc:
        return _apply_page(gateway, me, model, 400, str(exc))
    return RedirectResponse("/console/applications", status_code=303)


def _own(
    gateway: Current,
    me: SignedIn,
    key: Any = None,
    message: str | None = None,
    status: int = 200,
) -> HTMLResponse:
    try:
        mine = Applications(gateway.store).all(principal=me.account.name)
    except NotFound:  # an account an operator made, not yet a principal: nothing applied for
        mine = []
    rows = [
        {
            "model": a.model,
            "state": str(a.state),
            "submitted": _when(a.submitted_at),
            "reason": a.reason,
        }
        for a in mine
    ]
    shown = None
    if key is not None:
        shown = {
            "key": key.key,
            "info": key.info.to_dict(),
            "expires": human_day(key.info.expires_at),
        }
    return page("applications.html", status, me=me, applications=rows, key=shown, message=message)


@router.get("/applications", response_class=HTMLResponse)
def own_applications(gateway: Current, me: Me) -> Response:
    if me.account.role is not Role.APPLICANT:
        return RedirectResponse("/console/applications/review", status_code=303)
    return _own(gateway, me)


@router.post("/keys/{model}")
def create_key(model: str, gateway: Current, me: Me, csrf: Csrf) -> Response:
    """A key for a model the applicant holds a live grant for, shown once."""
    check_form(me, csrf, Role.APPLICANT)
    try:
        live = Grants(gateway.store).all(principal=me.account.name, model=model, live_at=utc_now())
    except NotFound:  # no such model, or an account that never became a principal
        live = []
    if not live:
        message = (
            f"You hold no live grant for {model}: apply for access, and create a key once "
            "your application is approved."
        )
        return _own(gateway, me, message=message, status=403)
    try:
        made = Keys(gateway.store).create(
            me.account.name, [model], label="console", actor=me.account.name
        )
    except EmeritusError as exc:
        return _own(gateway, me, message=str(exc), status=400)
    response = _own(gateway, me, key=made)
    response.headers["Cache-Control"] = "no-store"  # the key is shown once, not cached
    return response


def _review(
    gateway: Current, me: SignedIn, message: str | None = None, status: int = 200
) -> HTMLResponse:
    rows = [
        {
            "uid": a.uid,
            "principal": a.principal,
            "model": a.model,
            "submitted": _when(a.submitted_at),
            "answers": a.answers,
        }
        for a in Applications(gateway.store).all(state=ApplicationState.PENDING)
    ]
    return page("review_applications.html", status, me=me, applications=rows, message=message)


@router.get("/applications/review", response_class=HTMLResponse)
def review_applications(gateway: Current, me: Me) -> HTMLResponse:
    if me.account.role is not Role.OPERATOR:
        return page(
            "models.html", 403, me=me, rows=[], message="Only operators decide applications."
        )
    return _review(gateway, me)


@router.post("/applications/{uid}/approve")
def approve_application(uid: str, gateway: Current, me: Me, csrf: Csrf) -> Response:
    check_form(me, csrf, Role.OPERATOR)
    try:
        Applications(gateway.store).approve(
            uid, reason=f"approved in the console by {me.account.name}", actor=me.account.name
        )
    except EmeritusError as exc:
        return _review(gateway, me, str(exc), 409)
    return RedirectResponse("/console/applications/review", status_code=303)


@router.post("/applications/{uid}/reject")
def reject_application(
    uid: str,
    gateway: Current,
    me: Me,
    csrf: Csrf,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    check_form(me, csrf, Role.OPERATOR)
    try:
        Applications(gateway.store).reject(uid, reason=reason, actor=me.account.name)
    except EmeritusError as exc:
        return _review(gateway, me, str(exc), 400)
    return RedirectResponse("/console/applications/review", status_code=303)


def _access(
    gateway: Current, me: SignedIn, message: str | None = None, status: int = 200
) -> HTMLResponse:
    now = utc_now()
    grants = [
        {
            "principal": g.principal,
            "model": g.model,
            "expires": human_day(g.expires_at),
            "quota": f"{g.token_quota:,} tokens a {g.period}, {g.requests_per_minute}/min",
        }
        for g in Grants(gateway.store).all(live_at=now)
    ]
    keys = [
        {
            "key_id": k.key_id,
            "principal": k.principal,
            "models": k.models,
            "expires": human_day(k.expires_at),
        }
        for k in Keys(gateway.store).all()
        if k.revoked_at is None and as_utc(k.expires_at) > now
    ]
    return page("access.html", status, me=me, grants=grants, keys=keys, message=message)


@router.get("/access", response_class=HTMLResponse)
def access_page(gateway: Current, me: Me) -> HTMLResponse:
    if me.account.role is not Role.OPERATOR:
        return page("models.html", 403, me=me, rows=[], message="Only operators manage access.")
    return _access(gateway, me)


@router.post("/grants/revoke")
def revoke_grant(
    gateway: Current,
    me: Me,
    csrf: Csrf,
    principal: Annotated[str, Form(max_length=100)],
    model: Annotated[str, Form(max_length=100)],
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    check_form(me, csrf, Role.OPERATOR)
    try:
        Grants(gateway.store).revoke(principal, model, reason=reason, actor=me.account.name)
    except EmeritusError as exc:
        return _access(gateway, me, str(exc), 400)
    return _access(gateway, me, f"Revoked the grant of {principal} for {model}.")


@router.post("/keys/revoke/{key_id}")
def revoke_key(
    key_id: str,
    gateway: Current,
    me: Me,
    csrf: Csrf,
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    check_form(me, csrf, Role.OPERATOR)
    try:
        Keys(gateway.store).revoke(key_id, reason=reason, actor=me.account.name)
    except EmeritusError as exc:
        return _access(gateway, me, str(exc), 400)
    return _access(gateway, me, f"Revoked key {key_id}.")
