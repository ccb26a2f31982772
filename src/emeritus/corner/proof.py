"""The proof that a text is what the model wrote, and that a reviewer approved it: its digest
against the digests the hash-chained event log recorded when the draft was written and when it
was approved, and the approval's signature. A digest in the drafts table alone proves nothing
(whoever edits the text can edit it too); one in the chain does, because rewriting an event
breaks every digest after it, and the chain is anchored by signed checkpoints outside the
database. An approval counts only when signed with the home's key by the process that
authenticated the reviewer: one appended by SQL, however well hashed, is not an approval.
Spec: docs/design/corner.md, invariant 2; docs/design/event-log.md, "Signed reviews"."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from emeritus.corner.tables import DraftRecord
from emeritus.errors import EmeritusError
from emeritus.store import (
    ChainReport,
    Event,
    Position,
    SigningKey,
    list_events,
    record_verifies,
    sha256_digest,
    verify_chain,
)

APPROVED = "corner.approved"
VETOED = "corner.vetoed"
DRAFTED = "corner.drafted"


class TextAltered(EmeritusError):
    """A draft's text no longer matches what the model wrote (and the reviewer approved):
    review and publication are refused."""

    exit_code = 7


class ForgedApproval(EmeritusError):
    """A draft's approval carries no valid reviewer's signature: publication is refused."""

    exit_code = 7


def review_body(
    kind: str,
    *,
    draft: int,
    digest: str | None,
    model: str,
    reviewer: str,
    via: str,
    category: str | None = None,
    reason: str | None = None,
) -> dict[str, Any]:
    """What a review's signature covers (docs/design/event-log.md, "Signed reviews")."""
    body: dict[str, Any] = {
        "type": kind,
        "draft": draft,
        "digest": digest,
        "model": model,
        "reviewer": reviewer,
        "via": via,
    }
    if kind == VETOED:
        body.update(category=category, reason=reason)
    return body


def review_signed(key: SigningKey, event: Event, model: str) -> bool:
    """Whether a review event carries the home key's signature over its own fields."""
    payload = event.payload
    try:
        body = review_body(
            event.kind,
            draft=int(payload["draft"]),
            digest=payload["digest"],
            model=model,
            reviewer=str(payload["reviewer"]),
            via=str(payload["via"]),
            category=payload.get("category"),
            reason=payload.get("reason"),
        )
    except (KeyError, TypeError, ValueError):
        return False
    return record_verifies(key, body, payload.get("signature"))


def _events_by_draft(session: Session, model: str) -> dict[tuple[str, int], list[Event]]:
    """(event kind, draft id) -> the corner events of that kind about the draft, oldest first."""
    found: dict[tuple[str, int], list[Event]] = {}
    for event in list_events(session, subject=f"model:{model}", kind="corner."):
        if event.kind in (DRAFTED, APPROVED) and "draft" in event.payload:
            try:
                draft = int(event.payload["draft"])
            except (TypeError, ValueError):
                continue
            found.setdefault((event.kind, draft), []).append(event)
    return found


def check_unedited(
    session: Session,
    model: str,
    rows: list[DraftRecord],
    *,
    approved: bool,
    key: SigningKey | None = None,
    since: Position | None = None,
) -> ChainReport | None:
    """Raise TextAltered unless every row's text hashes to the digest the log holds for its
    drafting; with `approved` (publication), also unless the chain verifies from `since` (the
    newest checkpoint) and each row has an approval signed with `key` for that same digest
    (ForgedApproval when its approvals are unsigned). A review, which a person may do many
    times a day on a log with an event per gateway request, walks no chain."""
    chain = None
    if approved:
        chain = verify_chain(session, since=since)
        if not chain.ok:
            raise TextAltered(f"the event log does not verify: {chain.problem}")
    recorded = _events_by_draft(session, model)
    for row in rows:
        actual = sha256_digest((row.text or "").encode("utf-8"))
        drafted = recorded.get((DRAFTED, row.id), [])
        if not drafted:
            raise TextAltered(f"draft {row.id} has no {DRAFTED} event in the log")
        expected = str(drafted[-1].payload.get("digest"))
        if actual != expected:
            raise TextAltered(
                f"draft {row.id}'s text ({actual}) is not what {DRAFTED} recorded ({expected})"
            )
        if not approved:
            continue
        assert key is not None, "publication checks approvals with the home's key"
        approvals = recorded.get((APPROVED, row.id), [])
        if not approvals:
            raise TextAltered(f"draft {row.id} has no {APPROVED} event in the log")
        signed = [e for e in approvals if review_signed(key, e, model)]
        if not signed:
            raise ForgedApproval(
                f"draft {row.id}'s approval (event {approvals[-1].seq}) is not signed by an "
                "authenticated reviewer: it does not count"
            )
        if not any(e.payload["digest"] == actual for e in signed):
            raise TextAltered(
                f"draft {row.id}'s text ({actual}) is not what {APPROVED} recorded "
                f"({signed[-1].payload['digest']})"
            )
    return chain


def signed_reviewers(session: Session, model: str, key: SigningKey) -> dict[int, str]:
    """draft id -> the reviewer whose signed approval the log holds (for the site's pages)."""
    found: dict[int, str] = {}
    for (kind, draft), events in _events_by_draft(session, model).items():
        if kind == APPROVED:
            for event in events:
                if review_signed(key, event, model):
                    found[draft] = str(event.payload["reviewer"])
    return found
