"""Access events on the shared hash-chained log: subjects, and a guard against secrets."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from emeritus.store import Event, Store, append_event


def audit(
    session: Session,
    store: Store,
    kind: str,
    subject: str,
    payload: dict[str, Any],
    *,
    actor: str | None = None,
) -> Event:
    """Append an `access.*` event inside the caller's transaction."""
    return append_event(
        session,
        kind=f"access.{kind}",
        subject=subject[:200],
        actor=actor or store.settings.actor,
        payload=payload,
    )


def model_subject(name: str) -> str:
    return f"model:{name}"


def principal_subject(name: str) -> str:
    return f"principal:{name}"
