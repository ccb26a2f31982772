"""Review: a queue of drafts; a reviewer approves, or vetoes with a category from a short
high-risk list and a reason. Nobody edits. Spec: docs/design/corner.md, invariant 1."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from emeritus.corner.drafts import Draft, DraftState, draft_of, load_draft
from emeritus.corner.proof import check_unedited
from emeritus.corner.tables import ChannelRecord, DraftRecord
from emeritus.errors import Conflict, InvalidInput
from emeritus.lifecycle import ModelRecord
from emeritus.store import Store, append_event, utc_now

# The only grounds for a veto. The bar is high on purpose: disagreeing with the essay is not one.
VETO_CATEGORIES = {
    "private-data": "reveals private or personal data",
    "dangerous-instructions": "gives instructions for serious harm",
    "impersonation": "impersonates a real person or organisation",
    "legal": "is defamatory or otherwise unlawful to publish",
    "harassment": "harasses or threatens someone",
}


def _reviewer(name: str) -> str:
    name = name.strip()
    if not name:
        raise InvalidInput("a review needs the reviewer's name")
    if len(name) > 200:
        raise InvalidInput("the reviewer's name is longer than 200 characters")
    return name


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

    def approve(self, draft_id: int, *, reviewer: str, now: datetime | None = None) -> Draft:
        return self._review(draft_id, reviewer=reviewer, veto=None, reason="", now=now)

    def veto(
        self,
        draft_id: int,
        *,
        category: str,
        reason: str,
        reviewer: str,
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
        reviewer: str,
        veto: str | None,
        reason: str,
        now: datetime | None,
    ) -> Draft:
        reviewer = _reviewer(reviewer)
        now = now or utc_now()
        with self.store.transaction() as session:
            row, model = load_draft(session, draft_id, lock=True)
            if row.state != DraftState.PENDING.value:
                raise Conflict(f"draft {draft_id} is {row.state}: only a pending draft is reviewed")
            # A reviewer must approve what the model wrote, not what someone put there since.
            check_unedited(session, model, [row], approved=False)
            row.state = (DraftState.VETOED if veto else DraftState.APPROVED).value
            row.reviewer = reviewer
            row.reviewed_at = now
            row.veto_category = veto
            row.veto_reason = reason.strip() or None
            session.flush()
            append_event(
                session,
                kind="corner.vetoed" if veto else "corner.approved",
                subject=f"model:{model}",
                actor=reviewer,
                payload={
                    "draft": row.id,
                    "digest": row.digest,
                    **({"category": veto, "reason": reason.strip()} if veto else {}),
                },
            )
            return draft_of(row, model)
