"""Long console pages, a page at a time: event lists by keyset (`?before=SEQ`, the first event of
the page shown, so a page never shifts as events are appended) and tables by number
(`?page=N`). Spec: docs/design/console.md, Pages."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from emeritus.errors import InvalidInput
from emeritus.store import Event, list_events

PAGE_ROWS = 50
_MAX_CURSOR = 10**15  # larger than any seq or page; bounds the integer a query string can ask for


def cursor(value: str | None, name: str) -> int | None:
    """A positive whole number from the query string, or None when absent; anything else is
    refused with one line naming the parameter."""
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit()) or not 0 < int(value) <= _MAX_CURSOR:
        shown = value if len(value) <= 20 else value[:20] + "..."
        raise InvalidInput(f"{name} must be a whole number from 1 on, not {shown!r}")
    return int(value)


@dataclass(frozen=True)
class EventPage:
    """At most PAGE_ROWS events, oldest first, and the cursor of the page before, if any."""

    events: list[Event]
    older: int | None  # ?before= for the previous (older) page
    newest: bool  # whether this is the newest page (no newer events to link to)


def event_page(
    session: Session,
    *,
    before: int | None,
    subject: str | None = None,
    kind: str | None = None,
) -> EventPage:
    """The newest PAGE_ROWS events before `before` (or of all) matching the filters."""
    rows = list_events(session, subject=subject, kind=kind, limit=PAGE_ROWS + 1, before_seq=before)
    more = len(rows) > PAGE_ROWS
    if more:
        rows = rows[1:]
    return EventPage(rows, rows[0].seq if more and rows else None, before is None)
