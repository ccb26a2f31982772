"""Access applications (submit, check) and the operator's endpoints (decide applications, grant,
revoke, create keys, read usage), which need the operator key."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from emeritus.access import (
    Applications,
    ApplicationState,
    Decision,
    Grants,
    Keys,
    Principals,
    check_terms,
    usage_totals,
)
from emeritus.errors import InvalidInput, NotFound
from emeritus.gateway.common import Admin, Current, bearer, error, refusal
from emeritus.gateway.schemas import (
    ApplicationRequest,
    DecisionRequest,
    GrantRequest,
    KeyRequest,
    RevokeRequest,
    TierRequest,
)

router = APIRouter()


@router.post("/v1/access/applications", status_code=201, response_model=None)
def apply(
    body: ApplicationRequest, request: Request, gateway: Current
) -> Response | dict[str, Any]:
    """Apply for access to a model, as the principal whose key authenticates the request (a
    newcomer, who holds no key yet, signs up and applies in the console)."""
    key = bearer(request)
    scope = gateway.gate.visible_models(key)  # the gate's key check: its refusals, its counts
    if isinstance(scope, Decision):
        return refusal(gateway, scope)
    assert key is not None
    try:
        applicant = Keys(gateway.store).holder(key)
    except NotFound:  # revoked or expired since the gate looked
        return error(401, "invalid API key", "unknown_key", **{"WWW-Authenticate": "Bearer"})
    if body.principal is not None and body.principal != applicant:
        return error(
            403,
            f"this key is {applicant}'s: a principal applies only in its own name",
            "principal_mismatch",
        )
    submitted = Applications(gateway.store).submit(applicant, body.model, body.answers)
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


@router.post("/v1/admin/principals/{name}/tier")
def admin_set_tier(name: str, body: TierRequest, _: Admin, gateway: Current) -> dict[str, Any]:
    """Move a principal to a tier: what a billing system calls (docs/design/chat.md)."""
    principal, changed = Principals(gateway.store).set_tier(name, body.tier, actor="operator")
    return {**principal.to_dict(), "changed": changed}


@router.post("/v1/admin/keys", status_code=201)
def admin_create_key(body: KeyRequest, _: Admin, gateway: Current) -> dict[str, Any]:
    made = Keys(gateway.store).create(body.principal, body.models, days=body.days, label=body.label)
    return {"key": made.key, **made.info.to_dict()}


@router.get("/v1/admin/usage")
def admin_usage(_: Admin, gateway: Current) -> list[dict[str, Any]]:
    return [t.to_dict() for t in usage_totals(gateway.store)]
