"""The public list of deprecations, as JSON (`GET /v1/deprecations`, no key needed) and as a
page, and the operator's stragglers page (docs/design/notices.md)."""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from starlette.exceptions import HTTPException

from emeritus.access import Role
from emeritus.gateway.common import Current, EncodableJSONResponse
from emeritus.gateway.console import Me, page
from emeritus.lifecycle import deprecation_list
from emeritus.notify import day_labels, find_stragglers
from emeritus.store import human_day, human_minute, utc_now

router = APIRouter()


@router.get("/v1/deprecations", response_model=None)
def deprecations_list(gateway: Current) -> EncodableJSONResponse:
    """Every deprecated or retired model: dates and their firmness, the successor chain,
    availability after retirement, the notice and the migration guide. Public."""
    return EncodableJSONResponse({"object": "list", "data": deprecation_list(gateway.store)})


@router.get("/deprecations", response_class=HTMLResponse, include_in_schema=False)
def deprecations_page(gateway: Current) -> HTMLResponse:
    rows = [
        {
            **entry,
            "retire_day": human_day(entry["retire_at"]),
            "retired_day": human_day(entry["retired_at"]),
        }
        for entry in deprecation_list(gateway.store)
    ]
    return page("deprecations.html", rows=rows)


def bars_svg(counts: tuple[int, ...], label: str) -> str:
    """A small bar chart of requests per day as inline SVG (numbers only: nothing to escape)."""
    top = max(counts, default=0) or 1
    width, height, step = 3 * len(counts), 24, 3
    bars = "".join(
        f'<rect x="{n * step}" y="{height - round(c / top * height)}" width="2" '
        f'height="{round(c / top * height)}"/>'
        for n, c in enumerate(counts)
        if c
    )
    return (
        f'<svg class="spark" role="img" aria-label="{label}" viewBox="0 0 {width} {height}" '
        f'width="{width * 2}" height="{height}" preserveAspectRatio="none">{bars}</svg>'
    )


@router.get(
    "/console/models/{model}/stragglers", response_class=HTMLResponse, include_in_schema=False
)
def stragglers_page(
    model: str, gateway: Current, me: Me, days: int = Query(30, ge=1, le=365)
) -> HTMLResponse:
    if me.account.role != Role.OPERATOR:
        raise HTTPException(403, f"{me.account.role}s do not see who calls a model")
    now = utc_now()
    successor, found = find_stragglers(gateway.store, model, days=days, now=now)
    dates = day_labels(days, now)
    rows = [
        {
            **s.to_dict(),
            "last": human_minute(s.last_call),
            "successor_last": human_day(s.successor_last_call),
            "chart": bars_svg(
                s.per_day,
                f"requests per day from {dates[0]} to {dates[-1]}: "
                + ", ".join(str(c) for c in s.per_day),
            ),
        }
        for s in found
    ]
    return page("stragglers.html", me=me, model=model, successor=successor, days=days, rows=rows)
