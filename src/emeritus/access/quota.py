"""Quota accounting on a grant row: requests per minute and tokens per period.

Windows are fixed and aligned to the Unix epoch (a `day` is a UTC day). Every function here runs
on a grant row the caller has locked (`SELECT ... FOR UPDATE` on PostgreSQL; SQLite's
`BEGIN IMMEDIATE` holds the whole database), so a check and its consumption are one atomic step
however many gateway processes share the database. Spec: docs/design/access.md, Quota accounting.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

MINUTE = 60


class Counters(Protocol):
    """A grant's limits and counters: its ORM row, or the same columns read as plain SQL."""

    token_quota: int
    period_s: int
    requests_per_minute: int
    period_start: int
    period_tokens: int
    minute_start: int
    minute_requests: int


@dataclass(frozen=True)
class Refusal:
    reason: str  # "rate_limited" or "quota_exceeded"
    retry_after: int  # whole seconds until the window that refused ends
    message: str


def _window(now: float, length: int) -> int:
    return int(now) // length * length


def admit(grant: Counters, now: datetime, reserve: int) -> Refusal | None:
    """Count one request and reserve `reserve` tokens, or refuse and consume nothing."""
    at = now.timestamp()
    minute = _window(at, MINUTE)
    if grant.minute_start != minute:
        grant.minute_start, grant.minute_requests = minute, 0
    period = _window(at, grant.period_s)
    if grant.period_start != period:
        grant.period_start, grant.period_tokens = period, 0
    if grant.minute_requests >= grant.requests_per_minute:
        return Refusal(
            "rate_limited",
            max(1, math.ceil(minute + MINUTE - at)),
            f"rate limit of {grant.requests_per_minute} requests per minute reached",
        )
    if (
        grant.period_tokens >= grant.token_quota
        or grant.period_tokens + reserve > grant.token_quota
    ):
        return Refusal(
            "quota_exceeded",
            max(1, math.ceil(period + grant.period_s - at)),
            f"token quota of {grant.token_quota} per period reached "
            f"({grant.period_tokens} used, {reserve} asked)",
        )
    grant.minute_requests += 1
    grant.period_tokens += reserve
    return None


def remaining(grant: Counters, now: datetime) -> int:
    """Tokens left in the period that `now` falls in (a new period starts full)."""
    if grant.period_start != _window(now.timestamp(), grant.period_s):
        return grant.token_quota
    return tokens_left(grant)


def tokens_left(grant: Counters) -> int:
    return max(0, grant.token_quota - grant.period_tokens)


# Replace a request's reservation (`:change` = used - reserved) by what it used, if its period
# is still the current one (a reservation from an ended period lapsed with it); never below 0.
# One statement, as plain SQL: it runs on every metered request (docs/design/access.md).
SETTLE = (
    "UPDATE access_grants SET period_tokens = CASE WHEN period_tokens + :change < 0 THEN 0 "
    "ELSE period_tokens + :change END WHERE id = :grant AND period_start = :period"
)
