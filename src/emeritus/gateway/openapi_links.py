"""OpenAPI links between the gateway's operations: what a client can do next with a response
(rate an answer, follow an application, decide it, revoke a grant). They document the API's
workflows, and schemathesis's stateful fuzzing follows them (tests/security)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI


def _ref(path: str, method: str) -> str:
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


# (path, method, status) of the response -> links by name.
LINKS: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {
    ("/v1/chat/completions", "post", "200"): {
        "RateTheAnswer": {
            "operationRef": _ref("/v1/feedback", "post"),
            "requestBody": {"response_id": "$response.body#/id", "rating": 4},
            "description": "Rate the response just received (1 to 5).",
        },
    },
    ("/v1/access/applications", "post", "201"): {
        "FollowTheApplication": {
            "operationRef": _ref("/v1/access/applications/{uid}", "get"),
            "parameters": {"path.uid": "$response.body#/id"},
            "description": "The application's state; its id is the capability to read it.",
        },
        "ApproveTheApplication": {
            "operationRef": _ref("/v1/admin/applications/{uid}/approve", "post"),
            "parameters": {"path.uid": "$response.body#/id"},
            "description": "An operator approves it (operator key).",
        },
        "RejectTheApplication": {
            "operationRef": _ref("/v1/admin/applications/{uid}/reject", "post"),
            "parameters": {"path.uid": "$response.body#/id"},
            "description": "An operator rejects it, with a reason (operator key).",
        },
    },
    ("/v1/admin/grants", "post", "201"): {
        "RevokeTheGrant": {
            "operationRef": _ref("/v1/admin/grants/revoke", "post"),
            "requestBody": {
                "principal": "$request.body#/principal",
                "model": "$request.body#/model",
                "reason": "revoked after a grant",
            },
            "description": "Revoke the grant just made (operator key).",
        },
        "MakeAKey": {
            "operationRef": _ref("/v1/admin/keys", "post"),
            "requestBody": {
                "principal": "$request.body#/principal",
                "models": ["$request.body#/model"],
            },
            "description": "A key for the principal just granted (operator key).",
        },
    },
}


def with_links(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with the links added to the responses that exist in it."""
    paths = schema.get("paths", {})
    for (path, method, status), links in LINKS.items():
        operation = paths.get(path, {}).get(method)
        if operation is None:
            continue
        response = operation.setdefault("responses", {}).setdefault(
            status, {"description": "Successful Response"}
        )
        response.setdefault("links", {}).update(links)
    return schema


def install(app: FastAPI) -> None:
    """Serve the app's OpenAPI schema with the links (computed once, as FastAPI does)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = with_links(generate())
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
