"""Review: a queue of drafts; an authenticated reviewer approves, or vetoes with a category from
a short high-risk list and a reason. Nobody edits. Each review is signed with the home's key and
changes the draft by compare-and-set on its state. Spec: docs/design/corner.md, invariant 1 and
"Reviewers"."""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from emeritus.corner.drafts import Draft, DraftState, compare_and_set, draft_of, load_draft
from emeritus.corner.proof import APPROVED, VETOED, check_unedited, review_body
from emeritus.corner.tables import ChannelRecord, DraftRecord
from emeritus.errors import Conflict, InvalidInput
from emeritus.lifecycle import ModelRecord
from emeritus.store import Settings, Store, append_event, sign_record, utc_now

# The only grounds for a veto. The bar is high on purpose: disagreeing with the essay is not one.
VETO_CATEGORIES = {
    "private-data": "reveals private or personal data",
    "dangerous-instructions": "gives instructions for serious harm",
    "impersonation": "impersonates a real person or organisation",
    "legal": "is defamatory or otherwise unlawful to publish",
    "harassment": "harasses or threatens someone",
}


CONSOLE = "console"  # a reviewer or operator account signed in to the console
OS_USER = "os-user"  # the operating-system account running the CLI, named in EMERITUS_REVIEWERS


@dataclass(frozen=True)
class Reviewer:
    """Someone the calling interface authenticated as a reviewer, and how (`via`: CONSOLE,
    OS_USER). Only the interfaces make one: the console from its signed-in account, the CLI from
    `os_reviewer`. The review is signed in this process, so a review that did not pass through
    one of them (a row written by SQL) carries no valid signature."""

    name: str
    via: str

    def __post_init__(self) -> None:
        if not self.name.strip() or self.name != self.name.strip():
            raise InvalidInput("a review needs the reviewer's name")
        if len(self.name) > 200:
            raise InvalidInput("the reviewer's name is longer than 200 characters")
        if not self.via.strip():
            raise InvalidInput("a review needs to say how the reviewer was authenticated")


def os_reviewer(settings: Settings) -> Reviewer:
    """The operating-system account running this process (from the password database by
    effective uid, not $USER or $LOGNAME), when `settings.reviewers` names it."""
    try:
        name = pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        raise Conflict("this process's user has no account name, so it cannot review") from None
    if name not in settings.reviewers:
        raise Conflict(
            f"the operating-system user {name!r} is not a reviewer: only the accounts named in "
            "EMERITUS_REVIEWERS approve or veto from the CLI (or review in the console)"
        )
    return Reviewer(name, OS_USER)


class Review:
    def __init__(self, store: Store) -> None:
        self.store = store

    def queue(self, *, model: str | None = None) -> list[Draft]:
        """Drafts awaiting review, oldest first."""
        return self.drafts(model=model, states=(DraftState.PENDING,))

    def drafts(
        self, *, model: str | None = None, states: tuple[DraftState, ...] | None = None
    ) -> list[Draft]:
        with self.store.transaction() as session:
            query = (
                select(DraftRecord, ModelRecord.name)
                .join(ChannelRecord, ChannelRecord.id == DraftRecord.channel_id)
                .join(ModelRecord, ModelRecord.id == ChannelRecord.model_id)
                .order_by(DraftRecord.id)
            )
            if model is not None:
                query = query.where(ModelRecord.name == model)
            if states is not None:
                query = query.where(DraftRecord.state.in_([s.value for s in states]))
            return [draft_of(row, name) for row, name in session.execute(query).all()]

    def get(self, draft_id: int) -> Draft:
        with self.store.transaction() as session:
            row, model = load_draft(session, draft_id)
            return draft_of(row, model)

    def approve(self, draft_id: int, *, reviewer: Reviewer, now: datetime | None = None) -> Draft:
        return self._review(draft_id, reviewer=reviewer, veto=None, reason="", now=now)

    def veto(
        self,
        draft_id: int,
        *,
        category: str,
        reason: str,
        reviewer: Reviewer,
        now: datetime | None = None,
    ) -> Draft:
        if category not in VETO_CATEGORIES:
            raise InvalidInput(
                f"unknown veto category {category!r}: the grounds are {', '.join(VETO_CATEGORIES)}"
            )
        if not reason.strip():
            raise InvalidInput("a veto needs a written reason")
        return self._review(draft_id, reviewer=reviewer, veto=category, reason=reason, now=now)

    def _review(
        self,
        draft_id: int,
        *,
        reviewer: Reviewer,
        veto: str | None,
        reason: str,
        now: datetime | None,
    ) -> Draft:
        if not isinstance(reviewer, Reviewer):
            raise InvalidInput("a review needs an authenticated reviewer")
        now = now or utc_now()
        key = self.store.signing_key()
        kind = VETOED if veto else APPROVED
        with self.store.transaction() as session:
            row, model = load_draft(session, draft_id)
            if row.state != DraftState.PENDING.value:
                raise Conflict(f"draft {draft_id} is {row.state}: only a pending draft is reviewed")
            # A reviewer must approve what the model wrote, not what someone put there since.
            check_unedited(session, model, [row], approved=False)
            digest = row.digest
            changed = compare_and_set(
                session,
                draft_id,
                state=DraftState.PENDING,
                digest=digest,
                values={
                    "state": (DraftState.VETOED if veto else DraftState.APPROVED).value,
                    "reviewer": reviewer.name,
                    "reviewed_at": now,
                    "veto_category": veto,
                    "veto_reason": reason.strip() or None,
                },
            )
            if not changed:
                raise Conflict(
                    f"draft {draft_id} changed while it was reviewed (someone else reviewed it): "
                    "nothing changed"
                )
            details = {"category": veto, "reason": reason.strip()} if veto else {}
            body = review_body(
                kind,
                draft=draft_id,
                digest=digest,
                model=model,
                reviewer=reviewer.name,
                via=reviewer.via,
                **details,
            )
            append_event(
                session,
                kind=kind,
                subject=f"model:{model}",
                actor=reviewer.name,
                payload={
                    "draft": draft_id,
                    "digest": digest,
                    "reviewer": reviewer.name,
                    "via": reviewer.via,
                    **details,
                    "signature": sign_record(key, body),
                },
            )
            row, model = load_draft(session, draft_id)
            return draft_of(row, model)
