"""The proof that a text is what the model wrote: its digest against the digests the hash-chained
event log recorded when the draft was written and when it was approved. A digest in the drafts
table alone proves nothing (whoever edits the text can edit it too); one in the chain does,
because rewriting an event breaks every digest after it."""

from __future__ import annotations

from sqlalchemy.orm import Session

from emeritus.corner.tables import DraftRecord
from emeritus.errors import EmeritusError
from emeritus.store import list_events, sha256_digest, verify_chain


class TextAltered(EmeritusError):
    """A draft's text no longer matches what the model wrote (and the reviewer approved):
    review and publication are refused."""

    exit_code = 7


def recorded_digests(
    session: Session, model: str, kinds: tuple[str, ...]
) -> dict[tuple[str, int], str]:
    """(event kind, draft id) -> the digest that event recorded."""
    found: dict[tuple[str, int], str] = {}
    for event in list_events(session, subject=f"model:{model}", kind="corner."):
        if event.kind in kinds and "digest" in event.payload:
            found[(event.kind, int(event.payload["draft"]))] = str(event.payload["digest"])
    return found


def check_unedited(
    session: Session, model: str, rows: list[DraftRecord], *, approved: bool
) -> None:
    """Raise TextAltered unless every row's text hashes to the digest the log holds for
    its drafting (and, with `approved`, its approval). Publication (`approved`) also verifies
    the whole chain, so an event edited to match an edited text is caught there; a review, which
    a person may do many times a day on a log with an event per gateway request, does not."""
    if approved:
        chain = verify_chain(session)
        if not chain.ok:
            raise TextAltered(f"the event log does not verify: {chain.problem}")
    kinds = ("corner.drafted", "corner.approved") if approved else ("corner.drafted",)
    recorded = recorded_digests(session, model, kinds)
    for row in rows:
        actual = sha256_digest((row.text or "").encode("utf-8"))
        for kind in kinds:
            expected = recorded.get((kind, row.id))
            if expected is None:
                raise TextAltered(f"draft {row.id} has no {kind} event in the log")
            if actual != expected:
                raise TextAltered(
                    f"draft {row.id}'s text ({actual}) is not what {kind} recorded ({expected})"
                )
