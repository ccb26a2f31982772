"""Sending the outbox: claim one due delivery, send it outside any transaction, record how it
went. Crash rules: docs/design/notices.md, "Sending, and crashes"."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from emeritus.lifecycle import NoticeRecord
from emeritus.notify.config import DeliveryConfig
from emeritus.notify.tables import AttemptRecord, DeliveryRecord, SubscriberRecord
from emeritus.notify.targets import refusal
from emeritus.store import Store, append_event, utc_now

if TYPE_CHECKING:
    from emeritus.notify.channels import Outcome


def backoff(tries: int, *, rng: random.Random | None = None) -> timedelta:
    """Wait before the next try after `tries` failed ones: 30 s doubling, at most an hour, with
    jitter between half and all of it."""
    ceiling = min(3600.0, 30.0 * 2 ** max(0, tries - 1))
    return timedelta(seconds=(rng or random).uniform(ceiling / 2, ceiling))


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    uid: str
    attempt_id: int
    channel: str
    target: str
    key: str
    body: dict[str, Any]
    secret: str | None
    model: str
    tries: int


@dataclass
class SendReport:
    fanned_out: int = 0
    sent: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    dead: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "fanned_out": self.fanned_out,
            "sent": self.sent,
            "failed": self.failed,
            "dead": self.dead,
        }


def _awaiting_fan_out(session: Any) -> bool:
    """A notice written without the hook, whose deliveries the sender must write first."""
    waiting = select(NoticeRecord.id).where(NoticeRecord.fanned_out_at.is_(None)).limit(1)
    return session.scalar(waiting) is not None


class Sender:
    """Deliver what is due. Two senders at once never claim the same delivery."""

    def __init__(self, store: Store, config: DeliveryConfig | None = None) -> None:
        self.store = store
        self.config = config or DeliveryConfig.from_env()

    def run(
        self,
        *,
        now: datetime | None = None,
        limit: int = 100,
        budget: float | None = None,
        retry_dead: bool = False,
    ) -> SendReport:
        """Send up to `limit` due deliveries, claiming no new one after `budget` seconds (so
        that slow receivers cannot stall a tick: what is left goes on the next run)."""
        report = SendReport()
        stop = time.monotonic() + budget if budget is not None else None
        with self.store.transaction() as session:
            if retry_dead or _awaiting_fan_out(session):
                # The outbox, and the access tables its recipients come from, load only when
                # a notice awaits its deliveries: a cron tick with nothing to do loads neither.
                from emeritus.notify.outbox import fan_out_pending

                report.fanned_out = fan_out_pending(
                    session, settings=self.store.settings, config=self.config
                )
            if retry_dead:
                session.execute(
                    update(DeliveryRecord)
                    .where(DeliveryRecord.state == "dead")
                    .values(state="pending", tries=0, next_attempt_at=now or utc_now())
                )
        for _ in range(limit):
            if stop is not None and time.monotonic() >= stop:
                break
            at = now or utc_now()
            claim = self._claim(at)
            if claim is None:
                break
            started = time.monotonic()
            outcome = self._send(claim)
            state = self._record(claim, outcome, at, time.monotonic() - started)
            {"sent": report.sent, "pending": report.failed, "dead": report.dead}[state].append(
                claim.uid
            )
        return report

    def _claim(self, now: datetime) -> Claim | None:
        lease = timedelta(seconds=2 * self.config.timeout + 1)
        with self.store.transaction() as session:
            row = session.scalars(
                select(DeliveryRecord)
                .where(DeliveryRecord.state == "pending", DeliveryRecord.next_attempt_at <= now)
                .order_by(DeliveryRecord.next_attempt_at, DeliveryRecord.id)
                .limit(1)
                .with_for_update(skip_locked=True)
            ).first()
            if row is None:
                return None
            # A delivery refers to its principal: writing one needs the access tables on the
            # metadata, which a run with nothing to send does not load.
            from emeritus.access import PrincipalRecord  # noqa: F401

            # Until the outcome is recorded the lease holds it; a killed sender's claim
            # expires and the delivery goes again with the same idempotency key.
            row.tries += 1
            row.next_attempt_at = now + lease
            attempt = AttemptRecord(delivery_id=row.id, started_at=utc_now(), outcome="started")
            session.add(attempt)
            session.flush()
            secret = None
            if row.subscriber_id is not None:
                secret = session.scalar(
                    select(SubscriberRecord.secret).where(SubscriberRecord.id == row.subscriber_id)
                )
            body = json.loads(row.body)
            return Claim(
                row.id,
                row.uid,
                attempt.id,
                row.channel,
                row.target,
                row.idempotency_key,
                body,
                secret,
                body["notice"]["model"],
                row.tries,
            )

    def _send(self, claim: Claim) -> Outcome:
        from emeritus.notify.channels import Outcome, encode, send_email, send_webhook

        if claim.channel == "webhook":
            why = refusal(claim.target, self.config.hosts)
            if why is not None:
                return Outcome("refused", None, why)
            if not claim.secret:
                return Outcome("refused", None, "the subscriber has no signing secret")
            return send_webhook(
                claim.target,
                claim.secret,
                encode(claim.body),
                delivery=claim.uid,
                key=claim.key,
                config=self.config,
            )
        return send_email(claim.target, claim.body, key=claim.key, config=self.config)

    def _record(self, claim: Claim, outcome: Outcome, now: datetime, took: float) -> str:
        with self.store.transaction() as session:
            attempt = session.get(AttemptRecord, claim.attempt_id)
            row = session.get(DeliveryRecord, claim.delivery_id, with_for_update=True)
            assert attempt is not None and row is not None
            attempt.finished_at = utc_now()
            attempt.outcome, attempt.status, attempt.error = (
                outcome.outcome,
                outcome.status,
                outcome.error,
            )
            attempt.duration_ms = int(took * 1000)
            if row.state != "pending":  # another sender finished it after our lease ran out
                return str(row.state) if row.state in ("sent", "dead") else "pending"
            payload = {
                "delivery": row.uid,
                "notice": claim.body["notice"]["uid"],
                "recipient": row.recipient,
                "channel": row.channel,
                "tries": row.tries,
            }
            if outcome.outcome == "ok":
                row.state, row.sent_at, row.last_error = "sent", utc_now(), None
                self._event(session, "notice.delivered", claim.model, payload)
            elif outcome.outcome == "refused" or row.tries >= self.config.max_tries:
                row.state, row.last_error = "dead", outcome.error
                self._event(
                    session,
                    "notice.dead_lettered",
                    claim.model,
                    {**payload, "error": outcome.error},
                )
            else:
                row.last_error = outcome.error
                row.next_attempt_at = now + backoff(row.tries)
            return str(row.state)

    def _event(self, session: Any, kind: str, model: str, payload: dict[str, Any]) -> None:
        append_event(
            session,
            kind=kind,
            subject=f"model:{model}",
            actor="system",
            payload=payload,
        )
