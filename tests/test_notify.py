"""Notice delivery (docs/design/notices.md): the outbox written with the notice, recipients from
real grants and usage rows, webhooks checked by a receiver with the spec's own snippet, mail
received by a real SMTP server, retries, dead letters and the reminder schedule."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from emeritus.access import Gate, Grants, Keys, Principals, check_terms
from emeritus.errors import Conflict, InvalidInput
from emeritus.lifecycle import Registry
from emeritus.notify import (
    AttemptRecord,
    DeliveryConfig,
    DeliveryRecord,
    Sender,
    Subscribers,
    backoff,
    notifying_registry,
    sign,
    verify,
)
from emeritus.store import Store, list_events
from notice_receivers import Mailbox, Webhook, receiver_verify, serve_mailbox, serve_webhook

NOW = datetime(2031, 1, 10, 12, 0, tzinfo=UTC)
RETIRE = datetime(2031, 6, 1, tzinfo=UTC)


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    yield from serve_mailbox()


@pytest.fixture
def hook() -> Iterator[Webhook]:
    yield from serve_webhook(Webhook())


def _kinds(store: Store) -> list[str]:
    with store.transaction() as session:
        return [e.kind for e in list_events(session)]


def _config(mailbox: Mailbox | None = None, **extra: object) -> DeliveryConfig:
    values: dict[str, object] = {"hosts": ("127.0.0.1",), "timeout": 2.0}
    if mailbox is not None:
        values |= {"smtp_host": "127.0.0.1", "smtp_port": mailbox.port}
    return DeliveryConfig(**(values | extra))  # type: ignore[arg-type]


def _use(store: Store, principal: str, model: str, at: datetime, times: int = 1) -> None:
    """Real usage rows: a key, admitted by the gate, metered as the gateway does."""
    key = Keys(store).create(principal, [model], now=at - timedelta(days=1)).key
    gate = Gate(store)
    try:
        for n in range(times):
            when = at + timedelta(minutes=n)
            ticket = gate.authorize(key, model, now=when).ticket
            assert ticket is not None
            gate.record_usage(
                ticket, prompt_tokens=10, completion_tokens=5, latency_s=0.1, now=when
            )
    finally:
        gate.close()


def _world(store: Store) -> None:
    """Who should hear of old's deprecation at NOW, and who should not."""
    registry = Registry(store)
    for name in ("old", "new", "other"):
        registry.add(name, now=NOW - timedelta(days=200))
    people = Principals(store)
    for name, contact in [
        ("granted", "granted@lab.example"),  # a live grant, never called
        ("caller", "caller@co.example"),  # called 10 days ago; its grant since revoked
        ("lapsed", "lapsed@co.example"),  # called 40 days ago only: not recent
        ("elsewhere", "else@co.example"),  # uses another model
        ("silent", ""),  # a live grant and no contact: unreachable, recorded
        ("hooked", "not an address"),  # reached through a webhook on its behalf
    ]:
        people.add(name, tier="paid", contact=contact, now=NOW - timedelta(days=120))
    grants = Grants(store)
    terms = check_terms(365, 100000, "day", 60)
    start = NOW - timedelta(days=100)
    for name, model in [
        ("granted", "old"),
        ("caller", "old"),
        ("lapsed", "old"),
        ("elsewhere", "other"),
        ("silent", "old"),
        ("hooked", "old"),
    ]:
        grants.grant(name, model, terms=terms, now=start)
    _use(store, "caller", "old", NOW - timedelta(days=10), times=3)
    _use(store, "caller", "old", NOW - timedelta(days=3), times=2)
    _use(store, "lapsed", "old", NOW - timedelta(days=40))
    _use(store, "elsewhere", "other", NOW - timedelta(days=2))
    for name in ("caller", "lapsed"):
        grants.revoke(name, "old", reason="moved on", now=NOW - timedelta(days=1))


def _deprecate(store: Store, config: DeliveryConfig, **extra: object) -> None:
    notifying_registry(store, config).deprecate(
        "old",
        retire_at=RETIRE,
        successor="new",
        now=NOW,
        **extra,  # type: ignore[arg-type]
    )


def test_a_deprecation_reaches_exactly_the_affected(
    store: Store, mailbox: Mailbox, hook: Webhook
) -> None:
    _world(store)
    config = _config(mailbox)
    subs = Subscribers(store, config)
    _, secret = subs.subscribe(webhook=hook.url, now=NOW - timedelta(days=5))
    hook.secrets.append(secret or "")
    subs.subscribe(email="ops@emeritus.example", model="old", now=NOW - timedelta(days=5))
    subs.subscribe(email="other-ops@emeritus.example", model="other", now=NOW - timedelta(days=5))
    _, own_secret = subs.subscribe(
        webhook=hook.url + "?for=hooked", principal="hooked", now=NOW - timedelta(days=5)
    )
    assert own_secret and own_secret != secret
    hook.secrets.append(own_secret)
    _deprecate(store, config)

    # The outbox was written with the notice, before anything is sent.
    rows = {d.recipient: d for d in subs.deliveries(model="old")}
    principals = {d.principal for d in rows.values() if d.principal}
    assert principals == {"granted", "caller", "silent", "hooked"}
    assert [d.state for d in rows.values() if d.principal == "silent"] == ["unreachable"]
    assert all(d.state == "pending" for d in rows.values() if d.principal != "silent")

    report = Sender(store, config).run(now=NOW)
    assert len(report.sent) == 5 and not report.failed and not report.dead

    assert sorted(m["To"] for m in mailbox.messages) == [
        "caller@co.example",
        "granted@lab.example",
        "ops@emeritus.example",
    ]
    caller = mailbox.to("caller@co.example")[0]
    text = caller.get_content()
    assert "requests in the last 7 days: 2" in text and "in the last 30 days: 5" in text
    assert "tokens in the last 30 days: 75" in text and "last call: 2031-01-07" in text
    assert "Move to its successor, **new**" in text
    key = caller["Idempotency-Key"].strip()  # a long header is folded
    assert caller["Message-ID"] == f"<{key[:40]}@emeritus>"
    assert key in {d.idempotency_key for d in rows.values() if d.principal == "caller"}
    ops = mailbox.to("ops@emeritus.example")[0].get_content()
    assert "Your use of this model" not in ops  # an operator gets nobody's figures

    # Both webhooks: one for the operator (no figures), one on hooked's behalf (its figures);
    # the operator's was signed with its secret, so it verified; hooked's with its own.
    assert len(hook.received) == 2
    bodies = [json.loads(r["body"]) for r in hook.received]
    operator_body = next(b for b in bodies if b["recipient"]["kind"] == "operator")
    assert "usage" not in operator_body["recipient"]
    assert operator_body["notice"]["kind"] == "deprecation"
    assert operator_body["model"]["successor"] == "new"
    keys = {r["headers"]["Idempotency-Key"] for r in hook.received}
    assert operator_body["idempotency_key"] in keys and len(hook.acted) == 2
    assert hook.refused_signatures == 0
    # Each body is signed with its own subscriber's secret, not another's.
    own = next(r for r in hook.received if json.loads(r["body"])["recipient"]["kind"] != "operator")
    check = receiver_verify()
    assert check(own_secret, own["headers"]["Emeritus-Signature"], own["body"])
    assert not check(secret, own["headers"]["Emeritus-Signature"], own["body"])
    assert json.loads(own["body"])["recipient"]["usage"]["holds_grant"] is True

    kinds = _kinds(store)
    assert kinds.count("notice.delivered") == 5 and "notice.subscribed" in kinds


def test_a_failing_receiver_gets_one_delivery_after_three_retries(store: Store) -> None:
    for hook in serve_webhook(Webhook(failures=3)):
        Registry(store).add("old", now=NOW - timedelta(days=200))
        Registry(store).add("new", now=NOW - timedelta(days=200))
        config = _config()
        _, secret = Subscribers(store, config).subscribe(webhook=hook.url, now=NOW)
        hook.secrets.append(secret or "")
        _deprecate(store, config)
        sender, at = Sender(store, config), NOW
        for _ in range(4):
            sender.run(now=at)
            at += timedelta(hours=2)  # past any backoff
        (delivery,) = Subscribers(store, config).deliveries()
        assert delivery.state == "sent" and delivery.tries == 4 and delivery.attempts == 4
        assert len(hook.received) == 4 and len(hook.acted) == 1
        keys = {r["headers"]["Idempotency-Key"] for r in hook.received}
        assert keys == {delivery.idempotency_key}  # the same key on every retry
        with store.transaction() as session:
            outcomes = session.scalars(select(AttemptRecord.outcome).order_by(AttemptRecord.id))
            assert list(outcomes) == ["failed", "failed", "failed", "ok"]


def test_a_receiver_that_never_succeeds_ends_in_the_dead_letter(store: Store) -> None:
    for hook in serve_webhook(Webhook(failures=-1)):
        Registry(store).add("old", now=NOW)
        Registry(store).add("new", now=NOW)
        config = _config(max_tries=3)
        _, secret = Subscribers(store, config).subscribe(webhook=hook.url, now=NOW)
        hook.secrets.append(secret or "")
        _deprecate(store, config)
        at = NOW
        for _ in range(6):
            Sender(store, config).run(now=at)
            at += timedelta(hours=2)
        (delivery,) = Subscribers(store, config).deliveries()
        assert delivery.state == "dead" and delivery.tries == 3 and len(hook.received) == 3
        assert "HTTP 500" in (delivery.last_error or "")
        assert _kinds(store).count("notice.dead_lettered") == 1
        # Fixed receiver, retried by hand: delivered.
        hook.failures = 0
        report = Sender(store, config).run(now=at, retry_dead=True)
        assert len(report.sent) == 1 and len(hook.acted) == 1


def test_an_unreachable_or_slow_receiver_is_a_failed_attempt(store: Store) -> None:
    Registry(store).add("old", now=NOW)
    Registry(store).add("new", now=NOW)
    config = _config(timeout=0.5)
    with __import__("socket").socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    Subscribers(store, config).subscribe(webhook=f"http://127.0.0.1:{closed}/x", now=NOW)
    for slow in serve_webhook(Webhook(delay=3)):
        _, secret = Subscribers(store, config).subscribe(webhook=slow.url, now=NOW)
        slow.secrets.append(secret or "")
        _deprecate(store, config)
        import time

        started = time.monotonic()
        report = Sender(store, config).run(now=NOW)
        assert time.monotonic() - started < 3  # the slow one cost its timeout, not 3 s
        assert len(report.failed) == 2 and not report.sent
    errors = [d.last_error or "" for d in Subscribers(store, config).deliveries()]
    assert any("ConnectError" in e for e in errors) and any("Timeout" in e for e in errors)


def test_email_without_a_server_waits_for_one(store: Store, mailbox: Mailbox) -> None:
    Registry(store).add("old", now=NOW)
    Registry(store).add("new", now=NOW)
    Subscribers(store, _config()).subscribe(email="ops@emeritus.example", now=NOW)
    _deprecate(store, _config())
    report = Sender(store, _config()).run(now=NOW)
    assert report.failed and not mailbox.messages
    (delivery,) = Subscribers(store).deliveries()
    assert "EMERITUS_SMTP_HOST" in (delivery.last_error or "")
    Sender(store, _config(mailbox)).run(now=NOW + timedelta(hours=2))
    assert [m["To"] for m in mailbox.messages] == ["ops@emeritus.example"]


def test_a_notice_written_without_the_hook_is_fanned_out_by_the_sender(
    store: Store, mailbox: Mailbox
) -> None:
    _world(store)
    Registry(store).deprecate("old", retire_at=RETIRE, now=NOW)  # a library user's registry
    with store.transaction() as session:
        assert session.scalar(select(func.count()).select_from(DeliveryRecord)) == 0
    report = Sender(store, _config(mailbox)).run(now=NOW)
    assert report.fanned_out == 1
    assert sorted(m["To"] for m in mailbox.messages) == ["caller@co.example", "granted@lab.example"]
    again = Sender(store, _config(mailbox)).run(now=NOW + timedelta(days=1))
    assert again.fanned_out == 0 and not again.sent and len(mailbox.messages) == 2


def test_reminders_across_a_simulated_year(store: Store, mailbox: Mailbox) -> None:
    """Daily ticks for a year: each threshold once, the day of retirement the retirement
    notice; a postponement starts the reminders over; nothing duplicated."""
    config = _config(mailbox)
    registry = notifying_registry(store, config)
    registry.add("old", now=NOW)
    registry.add("new", now=NOW)
    Subscribers(store, config).subscribe(email="ops@emeritus.example", now=NOW)
    retire = NOW + timedelta(days=120)
    registry.deprecate("old", retire_at=retire, successor="new", now=NOW, tentative=True)
    later = retire + timedelta(days=45)
    day = NOW
    while day < NOW + timedelta(days=365):
        day += timedelta(days=1)
        if day == NOW + timedelta(days=100):
            registry.postpone(
                "old", to=later, reason="the successor needs a month", now=day, tentative=False
            )
        registry.tick(now=day)
        registry.remind(now=day)
        registry.remind(now=day)  # twice a day changes nothing
        Sender(store, config).run(now=day)
    kinds = [(n.kind, n.title) for n in registry.notices(model="old")]
    reminders = [t for k, t in kinds if k == "reminder"]
    # Before the postponement (day 100 of 120): 90 (day 30), 60 (day 60); the 30-day reminder
    # was due on day 90 too. After it (65 days left): 60, 30, 7, 1 of the new date.
    assert [t.split(",")[0] for t in reminders] == [
        "Reminder: old retires in 90 days",
        "Reminder: old retires in 60 days",
        "Reminder: old retires in 30 days",
        "Reminder: old retires in 60 days",
        "Reminder: old retires in 30 days",
        "Reminder: old retires in 7 days",
        "Reminder: old retires tomorrow",
    ]
    assert reminders[0].endswith("(tentative date)") and not reminders[-1].endswith("date)")
    assert [k for k, _ in kinds] == [
        "deprecation",
        "reminder",
        "reminder",
        "reminder",
        "postponement",
        "reminder",
        "reminder",
        "reminder",
        "reminder",
        "retirement",
    ]
    assert len(mailbox.messages) == len(kinds)  # one mail per notice, none twice
    subjects = [m["Subject"] for m in mailbox.messages]
    assert len(set(subjects)) == len(subjects)


def test_a_tick_after_a_gap_sends_only_the_most_urgent_reminder(store: Store) -> None:
    registry = notifying_registry(store, _config())
    registry.add("old", now=NOW)
    registry.deprecate("old", retire_at=NOW + timedelta(days=100), now=NOW)
    issued = registry.remind(now=NOW + timedelta(days=95))  # 90, 60, 30 and 7 all passed
    # Five days left: the 7-day reminder, late, counting the days that are left.
    assert [n.title.split(",")[0] for n in issued] == ["Reminder: old retires in 5 days"]
    assert registry.remind(now=NOW + timedelta(days=96)) == []
    assert [n.title.split(",")[0] for n in registry.remind(now=NOW + timedelta(days=99))] == [
        "Reminder: old retires tomorrow"
    ]


def test_a_successor_deprecated_tells_its_predecessors_users(store: Store) -> None:
    registry = notifying_registry(store, _config())
    for name in ("a", "b", "c"):
        registry.add(name, now=NOW)
    registry.deprecate("a", retire_at=NOW + timedelta(days=90), successor="b", now=NOW)
    registry.deprecate("b", retire_at=NOW + timedelta(days=200), successor="c", now=NOW)
    (told,) = [n for n in registry.notices(model="a") if n.kind == "successor"]
    assert "b will itself be retired" in told.body.replace("**", "")
    assert "a → b → c" in told.body


def test_postponement_rules(store: Store) -> None:
    registry = notifying_registry(store, _config())
    registry.add("old", now=NOW)
    registry.deprecate("old", retire_at=NOW + timedelta(days=90), now=NOW)
    events = len(_kinds(store))
    with pytest.raises(InvalidInput, match="reason"):
        registry.postpone("old", to=NOW + timedelta(days=120), reason=" ", now=NOW)
    # Earlier: the notice period counts from now, as for a deprecation.
    with pytest.raises(Conflict, match="notice too short"):
        registry.postpone("old", to=NOW + timedelta(days=20), reason="sooner", now=NOW)
    assert len(_kinds(store)) == events
    later = registry.postpone("old", to=NOW + timedelta(days=120), reason="later", now=NOW)
    assert later.retire_at == NOW + timedelta(days=120)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://127.0.0.1/x", "http(s) URL"),
        ("http://user:pw@127.0.0.1/x", "user name or password"),
        ("http://10.0.0.8/x", "not allowed"),
        ("http://localhost/x", "not allowed"),
        ("https://", "http(s) URL with a host"),
    ],
)
def test_bad_webhooks_are_refused_and_change_nothing(store: Store, url: str, message: str) -> None:
    before = len(_kinds(store))
    with pytest.raises(InvalidInput, match=re.escape(message)):
        Subscribers(store, _config()).subscribe(webhook=url)
    assert len(_kinds(store)) == before and Subscribers(store).all() == []


def test_bad_addresses_are_refused(store: Store) -> None:
    for address in ("nobody", "a b@c.org", "x@localhost", "<a@b.org>"):
        with pytest.raises(InvalidInput, match="not an email address"):
            Subscribers(store, _config()).subscribe(email=address)
    with pytest.raises(InvalidInput, match="exactly one"):
        Subscribers(store, _config()).subscribe()


def test_a_wildcard_never_admits_an_internal_address(store: Store) -> None:
    from emeritus.notify import check_webhook

    hosts = ("*.example.org", "127.0.0.1")
    assert check_webhook("https://hooks.example.org/x", hosts)
    with pytest.raises(InvalidInput, match="not allowed"):
        check_webhook("http://127.0.0.2/x", hosts)
    from emeritus.notify.targets import refusal

    assert refusal("https://localhost.example.org/x", ("*.example.org",)) is not None
    assert refusal("http://127.0.0.1:9/x", hosts) is None
    assert "no longer" in (refusal("http://127.0.0.1:9/x", ("*.example.org",)) or "")


def test_signatures() -> None:
    body = b'{"a": 1}'
    header = sign("whsec_x", 1_700_000_000, body)
    assert verify("whsec_x", header, body, now=1_700_000_100)
    assert not verify("whsec_x", header, body + b" ", now=1_700_000_100)
    assert not verify("whsec_y", header, body, now=1_700_000_100)
    assert not verify("whsec_x", header, body, now=1_700_000_000 + 301)  # a replay
    assert not verify("whsec_x", "garbage", body, now=1_700_000_000)


def test_backoff_grows_with_jitter_and_a_ceiling() -> None:
    import random

    rng = random.Random(7)
    waits = [backoff(n, rng=rng).total_seconds() for n in range(1, 10)]
    assert 15 <= waits[0] <= 30 and 30 <= waits[1] <= 60 and all(w <= 3600 for w in waits)
    assert len({round(backoff(3).total_seconds()) for _ in range(20)}) > 1


def test_a_run_stops_claiming_when_its_budget_is_spent(store: Store) -> None:
    """Ten deliveries to a receiver that takes 0.5 s each: a 1-second budget sends a few and
    leaves the rest pending for the next run, instead of stalling for five seconds."""
    import time

    Registry(store).add("old", now=NOW)
    Registry(store).add("new", now=NOW)
    config = _config()
    for slow in serve_webhook(Webhook(delay=0.5)):
        for n in range(10):
            _, secret = Subscribers(store, config).subscribe(webhook=f"{slow.url}?n={n}", now=NOW)
            slow.secrets.append(secret or "")
        _deprecate(store, config)
        started = time.monotonic()
        first = Sender(store, config).run(now=NOW, budget=1.0)
        assert time.monotonic() - started < 2.5
        assert 1 <= len(first.sent) <= 3
        rest = Sender(store, config).run(now=NOW)
        assert len(first.sent) + len(rest.sent) == 10
