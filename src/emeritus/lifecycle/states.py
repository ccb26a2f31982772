"""Lifecycle states, availabilities, and the pure rules about moving between them.

The rules live here, free of the database, so they read as a specification
(docs/design/lifecycle.md) and are tested directly.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum

from emeritus.errors import Conflict, InvalidInput
from emeritus.store import human_minute


class State(StrEnum):
    ACTIVE = "active"
    DEPRECATED = "deprecated"
    RETIRED = "retired"


class Availability(StrEnum):
    """Who a retired model still answers."""

    NONE = "none"
    RESTRICTED = "restricted"
    PUBLIC = "public"

    @classmethod
    def parse(cls, text: str) -> Availability:
        try:
            return cls(text)
        except ValueError:
            choices = ", ".join(a.value for a in cls)
            raise InvalidInput(f"unknown availability {text!r}: choose one of {choices}") from None


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidInput(
            f"bad model name {name!r}: use letters, digits, '.', '_' and '-' "
            "(at most 100 characters, starting with a letter or digit)"
        )
    return name


def check_notice(
    *, announced: datetime, retire_at: datetime, notice_days: int, force: bool, reason: str | None
) -> None:
    """Refuse a retirement time in the past, or closer than the notice period without --force."""
    if retire_at <= announced:
        raise Conflict(f"retirement date {human_minute(retire_at, zone=True)} is not in the future")
    if retire_at - announced >= timedelta(days=notice_days):
        return
    given = (retire_at - announced) / timedelta(days=1)
    if not force:
        raise Conflict(
            f"notice too short: {given:.1f} days until retirement, at least "
            f"{notice_days} required (use --force with --reason to override)"
        )
    if not reason or not reason.strip():
        raise InvalidInput("--force needs --reason: a short notice must be explained")


def check_transition(current: State, target: State) -> None:
    """Only active → deprecated → retired, and the cancellation deprecated → active."""
    allowed = {
        (State.ACTIVE, State.DEPRECATED),
        (State.DEPRECATED, State.ACTIVE),
        (State.DEPRECATED, State.RETIRED),
    }
    if (current, target) in allowed:
        return
    hint = {
        (State.ACTIVE, State.RETIRED): ": deprecate it first, with notice",
        (State.DEPRECATED, State.DEPRECATED): ": it is already deprecated",
        (State.ACTIVE, State.ACTIVE): ": it is already active",
    }.get(
        (current, target),
        ": a retired model never changes state" if current is State.RETIRED else "",
    )
    raise Conflict(f"illegal transition {current} → {target}{hint}")
