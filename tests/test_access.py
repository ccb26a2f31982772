"""Access control: principals, policies and forms, applications (a rejection blocks re-applying),
grants, keys (shown once, stored hashed), and the gate: every denial path, quota and rate limit
with Retry-After, exactly one usage row per admitted request, one quota shared by threads."""

from __future__ import annotations

import secrets
import threading
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from emeritus.access import (
    DENIALS_EVENT,
    Applications,
    ApplicationState,
    DenialReason,
    Gate,
    Grants,
    KeyRecord,
    Keys,
    Policies,
    PrincipalRecord,
    Principals,
    check_terms,
    hash_key,
    usage_totals,
)
from emeritus.errors import Conflict, InvalidInput, NotFound
from emeritus.lifecycle import Availability, Registry
from emeritus.store import Store, list_events, utc_now

MODEL, HEIR = "old-model", "new-model"
FORM = {
    "approval": "manual",
    "tiers": ["research"],
    "fields": [
        {"name": "affiliation", "label": "Institution", "type": "text", "max_length": 50},
        {"name": "field", "type": "select", "options": ["welfare", "history"]},
        {"name": "until", "type": "date", "required": False},
        {"name": "terms", "type": "checkbox"},
    ],
    "grant": {"days": 30, "tokens": 1000, "period": "day", "requests_per_minute": 5},
    "price": {"prompt": 1.0, "completion": 2.0},
}
GOOD = {"affiliation": "Uni", "field": "welfare", "terms": True}


@pytest.fixture
def world(store: Store) -> Store:
    """Two models, the old one retired with restricted availability; a researcher, a customer."""
    registry = Registry(store)
    registry.add(MODEL)
    registry.add(HEIR)
    now = utc_now()
    registry.deprecate(
        MODEL,
        retire_at=now + timedelta(days=61),
        successor=HEIR,
        availability_after=Availability.RESTRICTED,
        now=now,
    )
    registry.tick(now=now + timedelta(days=62))
    Principals(store).add("rita", tier="research", contact="rita@uni.example")
    Principals(store).add("paul", tier="paid")
    Policies(store).set(MODEL, FORM)
    return store


def test_forms_refuse_bad_answers_and_bad_policies(world: Store) -> None:
    apps = Applications(world)
    for answers, message in [
        ({**GOOD, "affiliation": ""}, "field 'affiliation' is required"),
        ({**GOOD, "field": "chemistry"}, "'chemistry' is not one of welfare, history"),
        ({**GOOD, "terms": False}, "field 'terms' must be checked"),
        ({**GOOD, "until": "next year"}, "field 'until' takes a date"),
        ({**GOOD, "affiliation": "x" * 51}, "longer than 50 characters"),
        ({**GOOD, "ssn": "1"}, "unknown form fields: 'ssn'"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            apps.submit("rita", MODEL, answers)
    with pytest.raises(Conflict, match="open to the research tier"):
        apps.submit("paul", MODEL, GOOD)
    with pytest.raises(NotFound, match="takes no access applications"):
        apps.submit("rita", HEIR, GOOD)
    policies = Policies(world)
    for document, message in [
        ({"approval": "sometimes"}, "unknown approval mode"),
        ({"fields": [{"name": "x", "type": "color"}]}, "type must be one of"),
        ({"grant": {"period": "fortnight"}}, "unknown quota period"),
        ({"grant": {"tokens": 0}}, "grant tokens must be a positive integer"),
        ({"colour": "red"}, "unknown policy keys: colour"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            policies.set(HEIR, document)
    assert apps.all() == []
    with pytest.raises(NotFound):
        policies.get(HEIR)  # nothing half-written


def test_a_rejected_applicant_cannot_reapply_until_reset(world: Store) -> None:
    apps = Applications(world)
    first = apps.submit("rita", MODEL, GOOD)
    assert first.state is ApplicationState.PENDING
    with pytest.raises(Conflict, match="already has a pending application"):
        apps.submit("rita", MODEL, GOOD)
    with pytest.raises(InvalidInput, match="needs a --reason"):
        apps.reject(first.uid, reason=" ")
    apps.reject(first.uid, reason="not a research use")
    with pytest.raises(Conflict, match="must reset it before a new one"):
        apps.submit("rita", MODEL, GOOD)
    apps.reset(first.uid, reason="appealed")
    second = apps.submit("rita", MODEL, GOOD)
    approved = apps.approve(second.uid)
    assert approved.state is ApplicationState.APPROVED
    [grant] = Grants(world).all(principal="rita")
    assert grant.model == MODEL
    with pytest.raises(Conflict, match="already holds a live grant"):
        apps.submit("rita", MODEL, GOOD)
    with world.transaction() as session:
        applied = [e for e in list_events(session, kind="access.applied")]
    # Answers may be personal data: the event names the fields only.
    assert all("Uni" not in str(e.payload) for e in applied)
    assert {e.actor for e in applied} == {"rita"}  # the applicant acts


def test_automatic_approval_grants_at_once(world: Store) -> None:
    Policies(world).set(MODEL, {**FORM, "approval": "auto"})
    application = Applications(world).submit("rita", MODEL, GOOD)
    assert application.state is ApplicationState.APPROVED
    [grant] = Grants(world).all(principal="rita", live_at=utc_now())
    assert grant.token_quota == 1000 and grant.requests_per_minute == 5


def test_keys_are_shown_once_and_stored_hashed(world: Store) -> None:
    keys = Keys(world)
    with pytest.raises(Conflict, match="no live grant for old-model"):
        keys.create("rita", [MODEL])  # a key only for a model its holder may use
    Grants(world).grant("rita", MODEL, terms=check_terms(30, 1000, "day", 5))
    made = keys.create("rita", [MODEL], days=10, label="laptop")
    assert made.key.startswith("emk_" + made.info.key_id + "_")
    with world.transaction() as session:
        stored = session.execute(sa.text("SELECT secret_hash FROM access_keys")).scalar_one()
        assert stored == hash_key(made.key) and made.key not in str(list_events(session))
    assert [k.key_id for k in keys.all(principal="rita")] == [made.info.key_id]
    with pytest.raises(InvalidInput, match="1 to 366 days"):
        keys.create("rita", [MODEL], days=400)
    with pytest.raises(NotFound, match="unknown model"):
        keys.create("rita", ["nope"])
    with pytest.raises(InvalidInput, match="needs a --reason"):
        keys.revoke(made.info.key_id, reason="")
    keys.revoke(made.info.key_id, reason="lost laptop")
    with pytest.raises(Conflict, match="already revoked"):
        keys.revoke(made.info.key_id, reason="again")


def grant_rita(store: Store, **terms: int) -> str:
    values = {"days": 30, "tokens": 1000, "requests_per_minute": 5, **terms}
    Grants(store).grant(
        "rita",
        MODEL,
        terms=check_terms(values["days"], values["tokens"], "day", values["requests_per_minute"]),
    )
    return Keys(store).create("rita", [MODEL]).key


def legacy_key(store: Store, principal: str, model: str) -> str:
    """A key as one made before keys needed a grant could be: straight into the table."""
    key_id = secrets.token_hex(6)
    key = f"emk_{key_id}_{secrets.token_urlsafe(32)}"
    now = utc_now()
    with store.transaction() as session:
        holder = session.scalars(
            sa.select(PrincipalRecord).where(PrincipalRecord.name == principal)
        ).one()
        session.add(
            KeyRecord(
                key_id=key_id,
                principal_id=holder.id,
                label="legacy",
                secret_hash=hash_key(key),
                models=f'["{model}"]',
                created_at=now,
                expires_at=now + timedelta(days=30),
            )
        )
    return key


def test_every_denial_path(world: Store) -> None:
    gate = Gate(world)
    key = grant_rita(world)
    Grants(world).grant("paul", HEIR, terms=check_terms(30, 1000, "day", 5))
    other = Keys(world).create("paul", [HEIR]).key

    def reason(k: str | None, model: str = MODEL, **kw: object) -> DenialReason | None:
        decision = gate.authorize(k, model, **kw)  # type: ignore[arg-type]
        return decision.reason

    assert reason(None) is DenialReason.MISSING_KEY
    assert reason("not-a-key") is DenialReason.UNKNOWN_KEY
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert reason(forged) is DenialReason.UNKNOWN_KEY  # right id, wrong secret: the same answer
    assert reason(key, "never-registered") is DenialReason.MODEL_NOT_FOUND
    assert reason(other, MODEL) is DenialReason.MODEL_NOT_FOUND  # outside its scope: as if unknown
    assert gate.authorize(key, MODEL).allowed
    Grants(world).revoke("rita", MODEL, reason="purpose ended")
    assert reason(key) is DenialReason.KEY_REVOKED  # revoking the grant revoked its keys
    # Keys made before keys needed a grant (or revocations revoked them) meet these two.
    assert reason(legacy_key(world, "rita", MODEL)) is DenialReason.GRANT_REVOKED
    assert reason(legacy_key(world, "paul", MODEL)) is DenialReason.NO_GRANT
    Grants(world).reset("rita", MODEL, reason="new purpose")
    granted = grant_rita(world)
    later = utc_now() + timedelta(days=31)
    assert reason(granted, now=later) is DenialReason.GRANT_EXPIRED  # the key lives 90 days
    assert reason(granted, now=utc_now() + timedelta(days=91)) is DenialReason.KEY_EXPIRED
    Keys(world).revoke(granted.split("_")[1], reason="leaked")
    assert reason(granted) is DenialReason.KEY_REVOKED
    Registry(world).retire(MODEL, availability=Availability.NONE)
    fresh = Keys(world).create("rita", [MODEL]).key
    retired = gate.authorize(fresh, MODEL)
    assert retired.status == 410 and retired.successor == HEIR
    assert retired.error_body()["error"]["successor"] == HEIR
    gate.close()  # refusals are counted, and logged per minute and reason
    with world.transaction() as session:
        denied = list_events(session, kind=DENIALS_EVENT)
    assert sum(e.payload["count"] for e in denied) == 12
    assert len(denied) <= 2 * len(DenialReason)  # the calls may straddle a minute
    assert {e.payload["reason"] for e in denied} == {str(r) for r in DenialReason} - {
        "rate_limited",
        "quota_exceeded",
    }
    assert all(k not in str(e.payload) for e in denied for k in (key, granted, fresh))


def test_rate_limit_and_quota_answer_429_with_retry_after(world: Store) -> None:
    gate = Gate(world)
    key = grant_rita(world, tokens=1000, requests_per_minute=3)
    minute = int(utc_now().timestamp()) // 60 * 60
    start = datetime.fromtimestamp(minute + 65, tz=utc_now().tzinfo)  # 5 s into a minute
    for second in range(3):
        ticket = gate.authorize(key, MODEL, now=start + timedelta(seconds=second)).ticket
        assert ticket is not None
        gate.record_usage(ticket, prompt_tokens=10, completion_tokens=5, latency_s=0.01)
    limited = gate.authorize(key, MODEL, now=start + timedelta(seconds=10))
    assert limited.status == 429 and limited.reason is DenialReason.RATE_LIMITED
    assert limited.retry_after == 45  # the minute started 15 s ago... it ends 45 s later
    next_minute = start + timedelta(seconds=60)
    over = gate.authorize(key, MODEL, now=next_minute, reserve_tokens=2000)
    assert over.reason is DenialReason.QUOTA_EXCEEDED and over.retry_after is not None
    at = next_minute.timestamp()
    assert over.retry_after == int((at // 86400 + 1) * 86400 - at)  # the day's end, in UTC
    fits = gate.authorize(key, MODEL, now=next_minute, reserve_tokens=900)
    assert fits.allowed and fits.ticket is not None and fits.ticket.tokens_left == 1000 - 45 - 900
    usage = gate.record_usage(fits.ticket, prompt_tokens=100, completion_tokens=50, latency_s=0.2)
    assert usage.cost_micros == 100 * 1 + 50 * 2  # $1 and $2 per million tokens
    with pytest.raises(Conflict, match="already recorded"):
        gate.record_usage(fits.ticket, prompt_tokens=1, completion_tokens=1, latency_s=0.1)
    [total] = usage_totals(world, principal="rita")
    assert (total.requests, total.prompt_tokens, total.completion_tokens) == (4, 130, 65)


def test_one_quota_holds_under_concurrent_requests(world: Store) -> None:
    """Threads race for a quota of 10 requests' worth of tokens: exactly 10 are admitted."""
    gate = Gate(world)
    key = grant_rita(world, tokens=100, requests_per_minute=1000)
    admitted: list[bool] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(5):
            decision = gate.authorize(key, MODEL, reserve_tokens=10)
            with lock:
                admitted.append(decision.allowed)
            if decision.ticket is not None:
                gate.record_usage(
                    decision.ticket, prompt_tokens=4, completion_tokens=6, latency_s=0.0
                )

    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert admitted.count(True) == 10 and len(admitted) == 30
    [total] = usage_totals(world, principal="rita")
    assert total.requests == 10 and total.prompt_tokens + total.completion_tokens == 100
