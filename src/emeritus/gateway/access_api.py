"""Access applications (submit, check) and the operator's endpoints (decide applications, grant,
revoke, create keys, read usage), which need the operator key."""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import APIRouter

from emeritus.access import (
    Applications,
    ApplicationState,
    Grants,
    Keys,
    Principals,
    check_terms,
    usage_totals,
)
from emeritus.errors import Conflict, InvalidInput, NotFound
from emeritus.gateway.common import Admin, Current
from emeritus.gateway.schemas import (
    ApplicationRequest,
    DecisionRequest,
    GrantRequest,
    KeyRequest,
    RevokeRequest,
)

router = APIRouter()


@router.post("/v1/access/applications", status_code=201)
def apply(body: ApplicationRequest, gateway: Current) -> dict[str, Any]:
    """Apply for access: a new principal is created in the default tier."""
    principals = Principals(gateway.store)
    try:
        principals.get(body.principal)
    except NotFound:
        with contextlib.suppress(Conflict):  # created meanwhile by a concurrent application
            principals.add(body.principal, tier=gateway.default_tier, contact=body.contact)
    submitted = Applications(gateway.store).submit(body.principal, body.model, body.answers)
    return submitted.to_dict(answers=False)


@router.get("/v1/access/applications/{uid}")
def application_state(uid: str, gateway: Current) -> dict[str, Any]:
    """The state of an application; its id is the unguessable capability to read it."""
    return Applications(gateway.store).get(uid).to_dict(answers=False)


@router.get("/v1/admin/applications")
def admin_applications(
    _: Admin, gateway: Current, state: str | None = None
) -> list[dict[str, Any]]:
    try:
        chosen = ApplicationState(state) if state else None
    except ValueError:
        raise InvalidInput(f"unknown state {state!r}: pending, approved or rejected") from None
    return [a.to_dict() for a in Applications(gateway.store).all(state=chosen)]


@router.post("/v1/admin/applications/{uid}/approve")
def admin_approve(uid: str, body: DecisionRequest, _: Admin, gateway: Current) -> dict[str, Any]:
    return Applications(gateway.store).approve(uid, reason=body.reason).to_dict()


@router.post("/v1/admin/applications/{uid}/reject")
def admin_reject(uid: str, body: DecisionRequest, _: Admin, gateway: Current) -> dict[str, Any]:
    return Applications(gateway.store).reject(uid, reason=body.reason).to_dict()


@router.post("/v1/admin/grants", status_code=201)
def admin_grant(body: GrantRequest, _: Admin, gateway: Current) -> dict[str, Any]:
    terms = check_terms(body.days, body.tokens, body.period, body.requests_per_minute)
    made = Grants(gateway.store).grant(body.principal, body.model, terms=terms, reason=body.reason)
    return made.to_dict()


@router.post("/v1/admin/grants/revoke")
def admin_revoke(body: RevokeRequest, _: Admin, gateway: Current) -> dict[str, Any]:
    return Grants(gateway.store).revoke(body.principal, body.model, reason=body.reason).to_dict()


@router.post("/v1/admin/keys", status_code=201)
def admin_create_key(body: KeyRequest, _: Admin, gateway: Current) -> dict[str, Any]:
    made = Keys(gateway.store).create(body.principal, body.models, days=body.days, label=body.label)
    return {"key": made.key, **made.info.to_dict()}


@router.get("/v1/admin/usage")
def admin_usage(_: Admin, gateway: Current) -> list[dict[str, Any]]:
    return [t.to_dict() for t in usage_totals(gateway.store)]
