"""When a channel owes an essay: cron expressions (UTC) and the keywords that name common ones."""

from __future__ import annotations

from datetime import UTC, datetime

from croniter import croniter

from emeritus.errors import InvalidInput
from emeritus.store import as_utc

KEYWORDS = {
    "daily": "0 9 * * *",
    "weekly": "0 9 * * 1",
    "monthly": "0 9 1 * *",
}


def parse_cadence(value: str) -> str:
    """The five-field cron expression a keyword or an expression stands for."""
    text = " ".join(value.split())
    expression = KEYWORDS.get(text.lower(), text)
    if len(expression.split()) != 5 or not croniter.is_valid(expression):
        raise InvalidInput(
            f"cadence {value!r} is neither a five-field cron expression nor one of "
            f"{', '.join(KEYWORDS)}"
        )
    return expression


def latest_slot(expression: str, *, after: datetime, now: datetime) -> datetime | None:
    """The latest due time in (after, now], or None when none has come yet."""
    after, now = as_utc(after), as_utc(now)
    if now <= after:
        return None
    # croniter's get_prev is exclusive of its start: step from just past `now`.
    previous: datetime = croniter(expression, now).get_prev(datetime)
    if croniter.match(expression, now):
        previous = now.replace(second=0, microsecond=0)
    previous = as_utc(previous)
    return previous if previous > after else None


def next_slot(expression: str, *, now: datetime) -> datetime:
    following: datetime = croniter(expression, as_utc(now)).get_next(datetime)
    return following.astimezone(UTC)
