"""The retirement checklist: what a careful retirement has done for one model, each item with
the event that satisfied it. Shown by `emeritus checklist`, `emeritus models show` and the
console's model page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from emeritus.archive import Archive, status
from emeritus.errors import NotFound
from emeritus.interview import load_protocol, preference_summary, runs, transcript
from emeritus.lifecycle import Availability, Registry, State
from emeritus.report.decisions import current_decisions
from emeritus.store import Event, Store, human_day, iso, list_events

# The preference that asks for an essay channel in the bundled standard protocol.
ESSAY_PREFERENCE = "essay-channel"


@dataclass(frozen=True)
class ChecklistItem:
    key: str
    label: str
    state: str  # "done" | "todo" | "failed" | "n/a"
    detail: str
    event: Event | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "label": self.label,
            "state": self.state,
            "detail": self.detail,
            "event": None
            if self.event is None
            else {
                "seq": self.event.seq,
                "kind": self.event.kind,
                "time": iso(self.event.time),
                "actor": self.event.actor,
            },
        }


def _latest(events: list[Event], *kinds: str) -> Event | None:
    found = [e for e in events if e.kind in kinds]
    return found[-1] if found else None


def checklist(store: Store, model: str) -> list[ChecklistItem]:
    """Every item, in the order a retirement goes."""
    info = Registry(store).get(model)
    with store.transaction() as session:
        events = list_events(session, subject=f"model:{model}")
    archive = Archive(store)
    items = [_notice(events), _preserved(archive, model, events), _fingerprint(events)]
    interviewed = _latest(events, "interview.completed")
    items.append(
        ChecklistItem(
            "interviewed",
            "Interviewed",
            "done" if interviewed else "todo",
            f"{interviewed.payload['sessions']} sessions, run {interviewed.payload['run_id']}"
            if interviewed
            else "no interview yet",
            interviewed,
        )
    )
    items.append(_reviewed(events))
    written = _latest(events, "report.written")
    items.append(
        ChecklistItem(
            "report",
            "Report written",
            "done" if written else "todo",
            f"report {written.payload['report_id']} ({human_day(written.time)})"
            if written
            else "no report yet",
            written,
        )
    )
    items.append(_decisions(store, archive, model, events))
    policy = _latest(events, "access.policy_set")
    closed = info.state is State.RETIRED and info.availability is Availability.NONE
    items.append(
        ChecklistItem(
            "access",
            "Access policy set",
            "done" if policy else ("n/a" if closed else "todo"),
            f"set {human_day(policy.time)}"
            if policy
            else ("retired with no availability" if closed else "no access policy"),
            policy,
        )
    )
    items.append(_channel(store, archive, model, events))
    return items


def _notice(events: list[Event]) -> ChecklistItem:
    notice = _latest(events, "notice.published")
    deprecated = _latest(events, "lifecycle.deprecated")
    if notice is None or deprecated is None:
        return ChecklistItem("notice", "Notice published", "todo", "no deprecation notice yet")
    return ChecklistItem(
        "notice", "Notice published", "done", f"published {human_day(notice.time)}", notice
    )


def _preserved(archive: Archive, model: str, events: list[Event]) -> ChecklistItem:
    found = [s for s in status(archive) if s.model == model]
    if not found:
        return ChecklistItem("preserved", "Preserved", "todo", "not in the archive")
    held = found[0]
    checked = _latest(events, "archive.fixity_checked")
    last = human_day(held.last_full_check_at, missing="never")
    detail = (
        f"{held.complete_copies} complete copies, last full fixity check {last}, "
        f"NDSA level {held.ndsa_level}"
    )
    done = held.complete_copies >= 2 and held.last_full_check_at is not None
    return ChecklistItem("preserved", "Preserved", "done" if done else "todo", detail, checked)


def _fingerprint(events: list[Event]) -> ChecklistItem:
    verified = _latest(events, "runtime.behaviour_verified")
    if verified is None:
        taken = _latest(events, "runtime.fingerprinted")
        detail = "fingerprinted, never replayed" if taken else "no fingerprint"
        return ChecklistItem("fingerprint", "Fingerprint verified", "todo", detail, taken)
    reports = verified.payload.get("reports", [])
    ok = bool(reports) and all(r.get("ok") for r in reports)
    return ChecklistItem(
        "fingerprint",
        "Fingerprint verified",
        "done" if ok else "failed",
        f"{'matched' if ok else 'did not match'} on {human_day(verified.time)}",
        verified,
    )


def _reviewed(events: list[Event]) -> ChecklistItem:
    analysed = _latest(events, "interview.analysed")
    if analysed is None:
        return ChecklistItem(
            "reviewed", "Analysis reviewed by a person", "todo", "not analysed yet"
        )
    after = [
        e
        for e in events
        if e.seq > analysed.seq and e.kind in ("interview.annotated", "report.noted")
    ]
    if not after:
        return ChecklistItem(
            "reviewed", "Analysis reviewed by a person", "todo", "no note or annotation since"
        )
    return ChecklistItem(
        "reviewed",
        "Analysis reviewed by a person",
        "done",
        f"{len(after)} note(s) or annotation(s), latest by {after[-1].actor}",
        after[-1],
    )


def _runs(archive: Archive, model: str) -> list[str]:
    try:
        return runs(archive, model)
    except NotFound:  # not preserved: an interview is archived with the weights
        return []


def _probed(archive: Archive, model: str) -> list[str]:
    if not _runs(archive, model):
        return []
    _, lines = transcript(archive, model)
    header = next(line for line in lines if line.get("type") == "session")
    return sorted(load_protocol(str(header["protocol"])).preferences)


def _decisions(store: Store, archive: Archive, model: str, events: list[Event]) -> ChecklistItem:
    probed = _probed(archive, model)
    if not probed:
        return ChecklistItem(
            "decisions", "A decision on every preference", "todo", "not interviewed yet"
        )
    decided = current_decisions(store, model)
    missing = [p for p in probed if p not in decided]
    last = _latest(events, "report.decided")
    detail = f"{len(probed) - len(missing)} of {len(probed)} decided" + (
        f"; awaiting {', '.join(missing[:3])}{'...' if len(missing) > 3 else ''}" if missing else ""
    )
    return ChecklistItem(
        "decisions",
        "A decision on every preference",
        "todo" if missing else "done",
        detail,
        last,
    )


def _channel(store: Store, archive: Archive, model: str, events: list[Event]) -> ChecklistItem:
    opened = _latest(events, "corner.opened")
    label = "Essay channel where the model asked for one"
    if opened is not None:
        return ChecklistItem("channel", label, "done", f"opened {human_day(opened.time)}", opened)
    asked = False
    if _runs(archive, model):
        try:
            found = preference_summary(store, model, ESSAY_PREFERENCE)
        except NotFound:  # an operator's protocol that does not probe it
            found = {}
        asked = found.get("stance") == "agree" and found.get("label") == "stable"
        honoured = current_decisions(store, model).get(ESSAY_PREFERENCE, {})
        asked = asked or honoured.get("decision") == "honour"
    if asked:
        return ChecklistItem(
            "channel", label, "todo", "it asked for one (or it was decided to honour it)"
        )
    return ChecklistItem("channel", label, "n/a", "it did not ask for one")
