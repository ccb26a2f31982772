"""The console's watch pages: archive health, usage and cost over time, safety signals and user
satisfaction. Read-only, for operators and reviewers; long tables come a page at a time.
Spec: docs/design/console.md."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse
from starlette.exceptions import HTTPException

from emeritus.access import (
    DENIALS_EVENT,
    DenialReason,
    Role,
    SignedIn,
    daily_usage,
    satisfaction,
    usage_totals,
)
from emeritus.archive import ARCHIVE_OWN_OBJECTS, Archive, status
from emeritus.errors import InvalidInput, NotFound
from emeritus.gateway.common import Current
from emeritus.gateway.console import Me, page
from emeritus.gateway.console_pages import PAGE_ROWS, cursor, event_page
from emeritus.interview import load_findings
from emeritus.report import CURRENCY, Chart, bar_chart, money_labels
from emeritus.store import human_day, human_minute, iso, list_events, utc_now

router = APIRouter(prefix="/console", include_in_schema=False)
USAGE_DAYS = 14
# Refusals worth a look: someone holding a bad key, or pushing past a quota.
WATCHED = {
    str(r)
    for r in (
        DenialReason.UNKNOWN_KEY,
        DenialReason.KEY_REVOKED,
        DenialReason.KEY_EXPIRED,
        DenialReason.QUOTA_EXCEEDED,
        DenialReason.RATE_LIMITED,
    )
}


def _watcher(me: SignedIn) -> None:
    if me.account.role not in (Role.OPERATOR, Role.REVIEWER):
        raise HTTPException(403, f"{me.account.role}s do not see the watch pages")


def _size(count: int) -> str:
    value, unit = float(count), "B"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            break
        value /= 1000
    return f"{value:,.0f} B" if unit == "B" else f"{value:,.1f} {unit}"


@router.get("/archive", response_class=HTMLResponse)
def archive_page(gateway: Current, me: Me) -> HTMLResponse:
    _watcher(me)
    with gateway.store.transaction() as session:
        events = list_events(session, kind="archive.")
    failed = Counter(
        e.subject.removeprefix("model:")
        for e in events
        if e.kind in ("archive.fixity_checked", "archive.verified") and not e.payload.get("ok")
    )
    repairs = Counter(
        e.subject.removeprefix("model:") for e in events if e.kind == "archive.repaired"
    )
    objects = [
        {
            "model": held.model,
            "is_model": held.model not in ARCHIVE_OWN_OBJECTS,  # the archive's own, no page
            "head": held.head,
            "size": _size(held.size),
            "complete": held.complete_copies,
            "copies": [c.to_dict() for c in held.copies],
            "last_full": human_day(held.last_full_check_at) if held.last_full_check_at else None,
            "ndsa": held.ndsa_level,
            "failed": failed[held.model],
            "repairs": repairs[held.model],
            "problems": any(c.last_problem for c in held.copies),
        }
        for held in status(Archive(gateway.store))
    ]
    return page("archive.html", me=me, objects=objects)


def _amount(total: float, money: bool) -> str:
    return money_labels([total])[0] if money else f"{total:g}"


def _usage_charts(gateway: Current) -> list[Chart]:
    """Requests and estimated cost per day and model, the last USAGE_DAYS days up to today."""
    today = utc_now()
    days = [iso(today - timedelta(days=n))[:10] for n in range(USAGE_DAYS - 1, -1, -1)]
    by_model = daily_usage(gateway.store, since=today - timedelta(days=USAGE_DAYS))
    charts: list[Chart] = []
    if not by_model:
        return charts
    for measure, unit in (("requests", "requests"), ("cost", "estimated cost")):
        series = {
            model: [per_day.get(d, {}).get(measure, 0) for d in days]
            for model, per_day in sorted(by_model.items())
        }
        money = measure == "cost"
        charts.append(
            bar_chart(
                f"{unit.capitalize()} per day, last {USAGE_DAYS} days (UTC)",
                [d[5:] for d in days],
                series,
                # Prices name no currency: CURRENCY is the sign for one that is not named.
                ylabel=f"{unit} ({CURRENCY}, the price's currency)" if money else unit,
                money=CURRENCY if money else None,
                whole=not money,
                alt=f"{unit} per day and model: "
                + "; ".join(f"{m} {_amount(sum(v), money)}" for m, v in series.items()),
            )
        )
    return charts


@router.get("/usage", response_class=HTMLResponse)
def usage_page(
    gateway: Current, me: Me, page_number: str | None = Query(None, alias="page")
) -> HTMLResponse:
    _watcher(me)
    try:
        number = cursor(page_number, "page") or 1
    except InvalidInput as exc:
        return page("usage.html", 400, me=me, message=str(exc), charts=[], totals=[], denials=[])
    charts = _usage_charts(gateway)
    totals = [
        t.to_dict()
        for t in usage_totals(gateway.store, limit=PAGE_ROWS + 1, offset=(number - 1) * PAGE_ROWS)
    ]
    return page(
        "usage.html",
        me=me,
        charts=charts,
        totals=totals[:PAGE_ROWS],
        number=number,
        later=number + 1 if len(totals) > PAGE_ROWS else None,
        denials=[t.to_dict() for t in gateway.gate.denials.totals()],
    )


def _interview_signals(gateway: Current) -> list[dict[str, Any]]:
    archive = Archive(gateway.store)
    found = []
    for info in gateway.registry.models():
        try:
            findings = load_findings(archive, info.name)
        except NotFound:  # not preserved, or never interviewed
            continue
        if findings is None:
            continue
        found += [{"model": info.name, **s.to_dict()} for s in findings.signals]
    return found


@router.get("/signals", response_class=HTMLResponse)
def signals_page(gateway: Current, me: Me, before: str | None = None) -> HTMLResponse:
    _watcher(me)
    try:
        seq = cursor(before, "before")
    except InvalidInput as exc:
        return page("signals.html", 400, me=me, message=str(exc))
    gateway_signals = [
        {"reason": t.reason, "count": t.count, "latest": human_minute(t.latest)}
        for t in gateway.gate.denials.totals()
        if t.reason in WATCHED
    ]
    with gateway.store.transaction() as session:
        minutes = event_page(session, before=seq, kind=DENIALS_EVENT)
    logged = [
        {
            "seq": e.seq,
            "minute": human_minute(str(e.payload.get("minute", ""))),
            "reason": e.payload.get("reason"),
            "status": e.payload.get("status"),
            "count": e.payload.get("count"),
            "keys": e.payload.get("keys") or {},
            "models": e.payload.get("models") or {},
        }
        for e in reversed(minutes.events)  # newest first
    ]
    return page(
        "signals.html",
        me=me,
        interview_signals=_interview_signals(gateway),
        gateway_signals=gateway_signals,
        logged=logged,
        older=minutes.older,
        newest=minutes.newest,
        satisfaction=satisfaction(gateway.store),
    )
