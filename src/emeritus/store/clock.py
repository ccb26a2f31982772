"""Timezone-aware time: every timestamp emeritus stores or compares is UTC-aware."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from emeritus.errors import InvalidInput


def utc_now() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """Return `value` in UTC; a naive value (as SQLite hands back) is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def parse_when(text: str, *, what: str = "date") -> datetime:
    """Parse `YYYY-MM-DD` (00:00 UTC that day) or an ISO 8601 time with an offset or `Z`."""
    raw = text.strip()
    try:
        if len(raw) == 10:
            return datetime.combine(date.fromisoformat(raw), time(0), tzinfo=UTC)
        parsed = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidInput(
            f"bad {what} {text!r}: expected YYYY-MM-DD or an ISO 8601 time"
        ) from None
    if parsed.tzinfo is None:
        raise InvalidInput(f"bad {what} {text!r}: a time needs a UTC offset, e.g. Z or +00:00")
    return parsed.astimezone(UTC)


def iso(value: datetime) -> str:
    """Canonical text for a time: UTC, microseconds, `Z` suffix."""
    return as_utc(value).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# Times for people: the one place that decides how a time reads in a table, a page or a message.
# Machines get `iso()`; both helpers accept an `iso()` string too (a time already in JSON).


def human_day(value: datetime | str | None, *, missing: str = "-") -> str:
    """`YYYY-MM-DD`, the UTC day; `missing` for no time."""
    if value is None:
        return missing
    return (value if isinstance(value, str) else iso(value))[:10]


def human_minute(value: datetime | str | None, *, missing: str = "-", zone: bool = False) -> str:
    """`YYYY-MM-DD HH:MM` in UTC, with ` UTC` after it when `zone`; `missing` for no time."""
    if value is None:
        return missing
    text = (value if isinstance(value, str) else iso(value))[:16].replace("T", " ")
    return text + " UTC" if zone else text
