"""The model registry and its lifecycle transitions. Rules: docs/design/lifecycle.md.

Every method runs in one transaction: the change, its event and its notice are committed together,
or, when a rule refuses, nothing is written at all.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from emeritus.errors import Conflict, InvalidInput, NotFound
from emeritus.lifecycle.models import ModelInfo, registered_models, require_model
from emeritus.lifecycle.notices import (
    Notice,
    compose_availability,
    compose_cancellation,
    compose_deprecation,
    compose_postponement,
    compose_reminder,
    compose_retirement,
    compose_successor_change,
    write_notices,
)
from emeritus.lifecycle.reminders import due_threshold, schedule_of
from emeritus.lifecycle.states import (
    Availability,
    State,
    check_name,
    check_notice,
    check_transition,
)
from emeritus.lifecycle.tables import FactsRecord, ModelRecord, NoticeRecord
from emeritus.store import Store, append_event, canonical_json, iso, sha256_digest, utc_now


def _subject(name: str) -> str:
    return f"model:{name}"


# Called inside the transaction that writes a notice: notice delivery's outbox hangs here, so a
# notice is never committed without its deliveries (docs/design/notices.md).
NoticeHook = Callable[[Session, NoticeRecord], None]


class Registry:
    """Register models and move them through their lifecycle."""

    def __init__(self, store: Store, *, on_notice: NoticeHook | None = None) -> None:
        self.store = store
        self.settings = store.settings
        self.on_notice = on_notice

    # -- reading -----------------------------------------------------------------------------

    def get(self, name: str) -> ModelInfo:
        with self.store.transaction() as session:
            return ModelInfo.from_record(require_model(session, name))

    def models(self, *, state: State | None = None) -> list[ModelInfo]:
        return registered_models(self.store, state=state)

    def notices(self, *, model: str | None = None) -> list[Notice]:
        with self.store.transaction() as session:
            query = select(NoticeRecord).order_by(NoticeRecord.published_at, NoticeRecord.id)
            if model is not None:
                query = query.where(NoticeRecord.model_id == require_model(session, model).id)
            return [Notice.from_record(r) for r in session.scalars(query).unique()]

    def publish_notices(self, *, feed_path: Path | None = None) -> list[Path]:
        """(Re)render every notice and the Atom feed under the home's notices directory."""
        return write_notices(
            self.notices(),
            self.settings.notices_dir,
            public_url=self.settings.public_url,
            feed_path=feed_path,
        )

    # -- changing ----------------------------------------------------------------------------

    def add(
        self,
        name: str,
        *,
        family: str = "",
        version: str = "",
        description: str = "",
        release_date: date | None = None,
        now: datetime | None = None,
    ) -> ModelInfo:
        check_name(name)
        now = now or utc_now()
        with self.store.transaction() as session:
            if session.scalar(select(ModelRecord.id).where(ModelRecord.name == name)) is not None:
                raise Conflict(f"model {name!r} is already registered")
            record = ModelRecord(
                name=name,
                family=family,
                version=version,
                description=description,
                release_date=release_date,
                state=State.ACTIVE.value,
                created_at=now,
            )
            session.add(record)
            session.flush()
            info = ModelInfo.from_record(record)
            self._event(session, "model.registered", name, info.to_dict())
            return info

    def deprecate(
        self,
        name: str,
        *,
        retire_at: datetime,
        successor: str | None = None,
        notice_days: int | None = None,
        force: bool = False,
        reason: str | None = None,
        availability_after: Availability = Availability.NONE,
        tentative: bool = False,
        now: datetime | None = None,
    ) -> ModelInfo:
        now = now or utc_now()
        notice_days = self.settings.notice_days if notice_days is None else notice_days
        if notice_days < 0:
            raise InvalidInput(f"--notice-days must not be negative, not {notice_days}")
        with self.store.transaction() as session:
            record = require_model(session, name, lock=True)
            check_transition(State(record.state), State.DEPRECATED)
            check_notice(
                announced=now,
                retire_at=retire_at,
                notice_days=notice_days,
                force=force,
                reason=reason,
            )
            heir = self._successor(session, record, successor) if successor else None
            record.state = State.DEPRECATED.value
            record.announced_at, record.retire_at = now, retire_at
            record.successor = heir
            record.availability_after = availability_after.value
            record.retire_firm = not tentative
            session.flush()
            short = (retire_at - now).total_seconds() < notice_days * 86400
            self._event(
                session,
                "lifecycle.deprecated",
                name,
                {
                    "from": State.ACTIVE.value,
                    "to": State.DEPRECATED.value,
                    "announced_at": iso(now),
                    "retire_at": iso(retire_at),
                    "successor": successor,
                    "notice_days_required": notice_days,
                    "availability_after": availability_after.value,
                    "firm": not tentative,
                    "forced": short,
                    "reason": reason if short else None,
                },
            )
            title, body = compose_deprecation(
                record, public_url=self.settings.public_url, reason=reason if short else None
            )
            self._notice(session, record, "deprecation", title, body, now)
            self._tell_predecessors(session, record, now)
            return ModelInfo.from_record(record)

    def postpone(
        self,
        name: str,
        *,
        to: datetime,
        reason: str,
        tentative: bool | None = None,
        notice_days: int | None = None,
        force: bool = False,
        now: datetime | None = None,
    ) -> ModelInfo:
        """Move a deprecated model's retirement date, with one notice. The notice-period rule
        applies only when the date moves earlier; `tentative` None keeps the date's firmness."""
        if not reason.strip():
            raise InvalidInput("moving a retirement date needs a --reason")
        now = now or utc_now()
        notice_days = self.settings.notice_days if notice_days is None else notice_days
        with self.store.transaction() as session:
            record = require_model(session, name, lock=True)
            if record.state != State.DEPRECATED.value or record.retire_at is None:
                raise Conflict(f"{name} is {record.state}: only a deprecated model's date moves")
            previous = record.retire_at
            if to == previous and (tentative is None or tentative != record.retire_firm):
                raise Conflict(f"{name} already retires on {iso(previous)}")
            if to <= now:
                raise InvalidInput(f"the new retirement date {iso(to)} is not in the future")
            if to < previous:
                check_notice(
                    announced=now,
                    retire_at=to,
                    notice_days=notice_days,
                    force=force,
                    reason=reason,
                )
            record.retire_at = to
            if tentative is not None:
                record.retire_firm = not tentative
            session.flush()
            self._event(
                session,
                "lifecycle.postponed",
                name,
                {
                    "from_retire_at": iso(previous),
                    "retire_at": iso(to),
                    "firm": bool(record.retire_firm),
                    "reason": reason,
                },
            )
            title, body = compose_postponement(
                record, previous=previous, public_url=self.settings.public_url, reason=reason
            )
            self._notice(session, record, "postponement", title, body, now)
            return ModelInfo.from_record(record)

    def remind(self, *, now: datetime | None = None) -> list[Notice]:
        """Issue the reminders due before each deprecated model's retirement (thresholds in
        `EMERITUS_NOTICE_REMINDERS`); idempotent per (schedule, threshold)."""
        now = now or utc_now()
        issued = []
        with self.store.transaction() as session:
            due = session.scalars(
                select(ModelRecord)
                .where(ModelRecord.state == State.DEPRECATED.value, ModelRecord.retire_at > now)
                .order_by(ModelRecord.retire_at, ModelRecord.name)
                .with_for_update(of=ModelRecord)
            ).unique()
            for record in list(due):
                schedule = schedule_of(session, record)
                days = due_threshold(session, record, schedule, now, self.settings.reminder_days)
                if days is None:
                    continue
                title, body = compose_reminder(record, public_url=self.settings.public_url, now=now)
                notice = self._notice(
                    session,
                    record,
                    "reminder",
                    title,
                    body,
                    now,
                    actor="system",
                    schedule=schedule,
                    threshold=days,
                )
                issued.append(Notice.from_record(notice))
        return issued

    def cancel(self, name: str, *, reason: str, now: datetime | None = None) -> ModelInfo:
        if not reason.strip():
            raise InvalidInput("cancelling a deprecation needs a --reason")
        now = now or utc_now()
        with self.store.transaction() as session:
            record = require_model(session, name, lock=True)
            check_transition(State(record.state), State.ACTIVE)
            before = ModelInfo.from_record(record).to_dict()
            record.state = State.ACTIVE.value
            record.announced_at = record.retire_at = None
            record.successor, record.availability_after = None, None
            record.retire_firm = True
            session.flush()
            self._event(
                session,
                "lifecycle.deprecation_cancelled",
                name,
                {
                    "from": State.DEPRECATED.value,
                    "to": State.ACTIVE.value,
                    "reason": reason,
                    "cancelled_retire_at": before["retire_at"],
                    "cancelled_successor": before["successor"],
                },
            )
            title, body = compose_cancellation(record, reason=reason)
            self._notice(session, record, "cancellation", title, body, now)
            return ModelInfo.from_record(record)

    def retire(
        self,
        name: str,
        *,
        availability: Availability | None = None,
        force: bool = False,
        reason: str | None = None,
        now: datetime | None = None,
    ) -> tuple[ModelInfo, bool]:
        """Retire a deprecated model whose date has come (earlier only with force and a reason),
        or change a retired model's availability. Returns the model and whether anything changed."""
        now = now or utc_now()
        with self.store.transaction() as session:
            record = require_model(session, name, lock=True)
            if record.state == State.RETIRED.value:
                if availability is None or availability.value == record.availability:
                    return ModelInfo.from_record(record), False
                self._change_availability(session, record, availability, now)
                return ModelInfo.from_record(record), True
            check_transition(State(record.state), State.RETIRED)
            assert record.retire_at is not None
            early = now < record.retire_at
            if early and not force:
                raise Conflict(
                    f"{name} retires on {iso(record.retire_at)}: not yet reached "
                    "(use --force with --reason to retire it early)"
                )
            if early and not (reason and reason.strip()):
                raise InvalidInput("--force needs --reason: an early retirement must be explained")
            self._retire(
                session,
                record,
                availability,
                now=now,
                at=now if early else record.retire_at,
                reason=reason if early else None,
            )
            return ModelInfo.from_record(record), True

    def tick(self, *, now: datetime | None = None) -> list[ModelInfo]:
        """Retire every deprecated model whose retirement time has passed. Idempotent."""
        now = now or utc_now()
        with self.store.transaction() as session:
            due = session.scalars(
                select(ModelRecord)
                .where(ModelRecord.state == State.DEPRECATED.value, ModelRecord.retire_at <= now)
                .order_by(ModelRecord.retire_at, ModelRecord.name)
                .with_for_update(of=ModelRecord)
            ).unique()
            retired = []
            for record in due:
                assert record.retire_at is not None
                self._retire(
                    session, record, None, now=now, at=record.retire_at, reason=None, actor="system"
                )
                retired.append(ModelInfo.from_record(record))
            return retired

    def facts(self, name: str) -> dict[str, Any]:
        """The operator's facts about a model (empty if none were recorded)."""
        with self.store.transaction() as session:
            record = require_model(session, name)
            row = session.scalar(select(FactsRecord).where(FactsRecord.model_id == record.id))
            return dict(json.loads(row.facts)) if row else {}

    def set_facts(self, name: str, facts: dict[str, Any], *, now: datetime | None = None) -> None:
        """Replace the facts: a mapping of names to text, numbers, booleans or dates."""
        if not isinstance(facts, dict) or not facts:
            raise InvalidInput("facts must be a non-empty mapping of names to values")
        clean: dict[str, Any] = {}
        for key, given in facts.items():
            if not isinstance(key, str) or not key.replace("_", "").isalnum():
                raise InvalidInput(f"bad fact name {key!r}: letters, digits and '_'")
            value = given.isoformat() if isinstance(given, date) else given
            if not isinstance(value, str | int | float | bool):
                raise InvalidInput(f"fact {key!r} must be text, a number, a boolean or a date")
            clean[key] = value
        now = now or utc_now()
        with self.store.transaction() as session:
            record = require_model(session, name, lock=True)
            row = session.scalar(select(FactsRecord).where(FactsRecord.model_id == record.id))
            if row is None:
                row = FactsRecord(model_id=record.id, facts="{}", updated_at=now)
                session.add(row)
            row.facts, row.updated_at = canonical_json(clean), now
            self._event(session, "model.facts_recorded", name, {"facts": clean})

    # -- internals ---------------------------------------------------------------------------

    def _successor(self, session: Session, record: ModelRecord, name: str) -> ModelRecord:
        if name == record.name:
            raise Conflict(f"{name} cannot be its own successor")
        heir = (
            session.scalars(select(ModelRecord).where(ModelRecord.name == name))
            .unique()
            .one_or_none()
        )
        if heir is None:
            raise NotFound(
                f"unknown successor {name!r}: register it first with `emeritus models add`"
            )
        if heir.state != State.ACTIVE.value:
            raise Conflict(f"successor {name} is {heir.state}: a successor must be an active model")
        return heir

    def _retire(
        self,
        session: Session,
        record: ModelRecord,
        availability: Availability | None,
        *,
        now: datetime,
        at: datetime,
        reason: str | None,
        actor: str | None = None,
    ) -> None:
        chosen = availability or Availability(record.availability_after or Availability.NONE)
        record.state = State.RETIRED.value
        record.retired_at = at
        record.availability = chosen.value
        session.flush()
        self._event(
            session,
            "lifecycle.retired",
            record.name,
            {
                "from": State.DEPRECATED.value,
                "to": State.RETIRED.value,
                "retired_at": iso(at),
                "availability": chosen.value,
                "early": reason is not None,
                "reason": reason,
            },
            actor=actor,
        )
        title, body = compose_retirement(record, public_url=self.settings.public_url)
        self._notice(session, record, "retirement", title, body, now, actor=actor)

    def _change_availability(
        self, session: Session, record: ModelRecord, availability: Availability, now: datetime
    ) -> None:
        previous = record.availability or Availability.NONE.value
        record.availability = availability.value
        session.flush()
        self._event(
            session,
            "lifecycle.availability_changed",
            record.name,
            {"from": previous, "to": availability.value},
        )
        title, body = compose_availability(record, previous=previous)
        self._notice(session, record, "availability", title, body, now)

    def _notice(
        self,
        session: Session,
        record: ModelRecord,
        kind: str,
        title: str,
        body: str,
        now: datetime,
        *,
        actor: str | None = None,
        schedule: NoticeRecord | None = None,
        threshold: int | None = None,
    ) -> NoticeRecord:
        uid = str(uuid.uuid4())
        notice = NoticeRecord(
            uid=uid,
            model_id=record.id,
            kind=kind,
            title=title,
            body=body,
            published_at=now,
            schedule_id=schedule.id if schedule else None,
            threshold_days=threshold,
        )
        notice.model = record
        session.add(notice)
        session.flush()
        self._event(
            session,
            "notice.published",
            record.name,
            {
                "uid": uid,
                "kind": kind,
                "title": title,
                "body_digest": sha256_digest(body.encode("utf-8")),
            },
            actor=actor,
        )
        if self.on_notice is not None:
            self.on_notice(session, notice)
        return notice

    def _tell_predecessors(self, session: Session, record: ModelRecord, now: datetime) -> None:
        """A model just deprecated may be the successor of others: their users hear of it."""
        before = session.scalars(
            select(ModelRecord)
            .where(
                ModelRecord.successor_id == record.id,
                ModelRecord.state.in_((State.DEPRECATED.value, State.RETIRED.value)),
            )
            .order_by(ModelRecord.name)
        ).unique()
        for model in before:
            title, body = compose_successor_change(model, public_url=self.settings.public_url)
            self._notice(session, model, "successor", title, body, now)

    def _event(
        self,
        session: Session,
        kind: str,
        name: str,
        payload: dict[str, Any],
        *,
        actor: str | None = None,
    ) -> None:
        # The event's own time is the wall clock; `now` (settable for tests and the demo) is the
        # logical time of the change and appears in the payload.
        append_event(
            session,
            kind=kind,
            subject=_subject(name),
            actor=actor or self.settings.actor,
            payload=payload,
        )
