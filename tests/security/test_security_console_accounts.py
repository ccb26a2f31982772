"""Console accounts that cannot be hijacked (issue 14, findings 1 and 8).

Attacks, each against the real gateway on loopback (SQLite and PostgreSQL): signing up under
the name of an existing principal to get its keys; learning which names exist from sign-up's
answer; signing a victim's browser in to the attacker's account (login CSRF); guessing
passwords without limit; flooding sign-in to exhaust memory with argon2 hashes; creating a key
from the console without a grant. Spec: docs/design/console.md."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import timedelta
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher
from typer.testing import CliRunner

from console_forms import form_token, send_form, sign_in
from emeritus.access import (
    Accounts,
    Grants,
    InvitationRecord,
    Invitations,
    Keys,
    Principals,
    SignInThrottleRecord,
    Throttled,
    check_terms,
    passwords,
)
from emeritus.cli import app
from emeritus.gateway import mock_opener, new_admin_key, running
from emeritus.lifecycle import Registry
from emeritus.store import Settings, Store, list_events, utc_now

PASSWORD = "correct horse battery"
MODEL = "kept-model"
COOKIE = "emeritus_session"
runner = CliRunner()


@pytest.fixture
def console(store: Store) -> Iterator[str]:
    Registry(store).add(MODEL, family="SmolLM2")
    with running(store, admin_key=new_admin_key(), opener=mock_opener()) as base:
        yield base.removesuffix("/v1") + "/console"


@pytest.fixture
def hashes(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How many argon2 hashes and verifications ran (the library's own methods, wrapped)."""
    counted = {"hash": 0, "verify": 0}
    for method in counted:
        real = getattr(PasswordHasher, method)

        def wrapper(self: PasswordHasher, *args: Any, _real: Any = real, _m: str = method) -> Any:
            counted[_m] += 1
            return _real(self, *args)

        monkeypatch.setattr(PasswordHasher, method, wrapper)
    return counted


def message(page: httpx.Response) -> str:
    found = re.search(r'<p class="message" role="alert">([^<]*)</p>', page.text)
    assert found, page.text[-500:]
    return found.group(1)


def sign_up(client: httpx.Client, name: str) -> httpx.Response:
    return send_form(
        client, "/sign-up", {"name": name, "contact": f"{name}@example.org", "password": PASSWORD}
    )


def test_sign_up_never_binds_to_an_existing_principal(
    store: Store, console: str, hashes: dict[str, int]
) -> None:
    principals = Principals(store)
    principals.add("carol", tier="paid", contact="carol@lab.example")
    Grants(store).grant("carol", MODEL, terms=check_terms(30, 100_000, "day", 60))
    Accounts(store).add("dave", "reviewer", PASSWORD)
    answers = {}
    for name in ("carol", "Carol", "dave", "DAVE"):
        with httpx.Client(base_url=console) as client:
            before = hashes["hash"]
            refused = sign_up(client, name)
            assert COOKIE not in client.cookies
            assert hashes["hash"] == before + 1  # the password work is done either way
            answers[name] = (refused.status_code, message(refused))
            assert client.get("/applications", follow_redirects=False).status_code == 303
    assert set(answers.values()) == {(400, "That name cannot be used; choose another.")}
    assert [a.name for a in Accounts(store).all()] == ["dave"]
    assert principals.get("carol").contact == "carol@lab.example"
    assert [p.name for p in principals.all()] == ["carol"]  # no "Carol", no "dave"
    assert Keys(store).all(principal="carol") == []
    with httpx.Client(base_url=console) as client:  # a free name: principal and account
        made = sign_up(client, "erin")
        assert made.status_code == 303 and made.headers["location"] == "/console/applications"
        assert COOKIE in client.cookies
    assert principals.get("erin").tier == "research"
    assert principals.get("erin").contact == "erin@example.org"
    with store.transaction() as session:
        added = [e for e in list_events(session, kind="access.account_added")]
    assert [(e.subject, e.actor) for e in added] == [
        ("account:dave", "tester"),
        ("account:erin", "erin"),
    ]


def _invite(database_url: str, *args: str) -> Any:
    return runner.invoke(
        app, ["access", "invite", *args], env={"EMERITUS_DATABASE_URL": database_url}
    )


def test_an_invitation_binds_its_principal_once_and_expires(
    store: Store, console: str, database_url: str
) -> None:
    Principals(store).add("carol", tier="paid")
    Principals(store).add("fay", tier="paid")
    shown = _invite(database_url, "carol", "--role", "applicant", "--days", "7")
    assert shown.exit_code == 0, shown.output
    code = shown.stdout.split()[0]
    assert code.startswith("emi_") and len(code) > 40
    with store.transaction() as session:
        rows = session.query(InvitationRecord).all()
        events = [e for e in list_events(session, kind="access.") if "invit" in e.kind]
    assert len(rows) == 1 and code not in rows[0].code_hash
    assert [e.kind for e in events] == ["access.invited"] and code not in str(events[0].payload)

    with httpx.Client(base_url=console) as client:
        used = send_form(client, "/invitation", {"code": code, "password": PASSWORD})
        assert used.status_code == 303 and used.headers["location"] == "/console/applications"
        assert "carol (applicant)" in client.get("/applications").text
    with httpx.Client(base_url=console) as client:  # the same code again
        again = send_form(client, "/invitation", {"code": code, "password": "another password 1"})
        assert again.status_code == 400 and COOKIE not in client.cookies
        assert message(again).startswith("That invitation code is unknown, used or expired")
    assert [a.name for a in Accounts(store).all()] == ["carol"]
    with httpx.Client(base_url=console) as client:
        assert sign_in(client, "carol", PASSWORD).status_code == 303
        assert sign_in(client, "carol", "another password 1").status_code == 200  # wrong
    assert _invite(database_url, "carol").exit_code == 4  # has an account now

    invitations = Invitations(store)
    expired = invitations.invite("fay", days=1, now=utc_now() - timedelta(days=2)).code
    dead = [expired, "emi_" + "A" * 43, "not-a-code"]
    dead.append(invitations.invite("fay").code)
    latest = invitations.invite("fay").code  # the one before stops working
    for code in dead:
        with httpx.Client(base_url=console) as client:
            refused = send_form(client, "/invitation", {"code": code, "password": PASSWORD})
            assert refused.status_code == 400 and COOKIE not in client.cookies
            assert message(refused).startswith("That invitation code is unknown, used or expired")
    with httpx.Client(base_url=console) as client:
        assert (
            send_form(client, "/invitation", {"code": latest, "password": PASSWORD}).status_code
            == 303
        )
    with store.transaction() as session:
        used_events = list_events(session, kind="access.invitation_used")
    assert [(e.subject, e.actor) for e in used_events] == [
        ("principal:carol", "carol"),
        ("principal:fay", "fay"),
    ]


def test_forms_before_a_session_need_their_token(
    store: Store, console: str, hashes: dict[str, int]
) -> None:
    """Login CSRF: another site cannot sign a victim's browser in to the attacker's account,
    nor sign up or redeem an invitation in it; refused before any password work."""
    Accounts(store).add("mallory", "applicant", PASSWORD)
    code = Invitations(store).invite(Principals(store).add("gil", tier="paid").name).code
    forms = {
        "/sign-in": {"name": "mallory", "password": PASSWORD},
        "/sign-up": {"name": "newbie", "contact": "n@example.org", "password": PASSWORD},
        "/invitation": {"code": code, "password": PASSWORD},
    }
    with httpx.Client(base_url=console) as attacker:
        stolen = form_token(attacker, "/sign-in")  # the attacker's own pre-session token
    before = dict(hashes)
    for path, data in forms.items():
        for token in (None, "", stolen):
            with httpx.Client(base_url=console) as victim:
                if token == stolen:
                    form_token(victim, path)  # the victim's browser has a cookie of its own
                sent = {**data, **({} if token is None else {"csrf": token})}
                forged = victim.post(path, data=sent)
                assert forged.status_code == 403, (path, token)
                assert COOKIE not in victim.cookies
                assert "This form has expired" in message(forged)
    assert hashes == before
    assert [a.name for a in Accounts(store).all()] == ["mallory"]
    with httpx.Client(base_url=console) as browser:  # the console's own form works
        assert sign_in(browser, "mallory", PASSWORD).status_code == 303


def test_failed_sign_ins_lock_the_name_with_growing_delays(
    store: Store, settings: Settings, hashes: dict[str, int]
) -> None:
    Accounts(store).add("hal", "operator", PASSWORD)
    now = utc_now()
    for name in ("hal", "nobody-by-this-name"):  # the same for a name with no account
        accounts = Accounts(store)
        for i in range(5):  # from five addresses: only the name's counter reaches its limit
            assert accounts.sign_in(name, "wrong password!", address=f"10.0.0.{i}", now=now) is None
        verified = hashes["verify"]
        # Another gateway process on the same database sees the same counter.
        with Store.open(settings) as other, pytest.raises(Throttled) as locked:
            Accounts(other).sign_in(name, PASSWORD, address="10.0.1.1", now=now)
        assert locked.value.retry_after == 15
        assert str(locked.value) == "too many failed sign-ins; try again in 15 seconds"
        assert hashes["verify"] == verified  # no argon2 while locked
        later = now + timedelta(seconds=16)
        assert accounts.sign_in(name, "wrong again!!", address="10.0.1.2", now=later) is None
        with pytest.raises(Throttled) as doubled:
            accounts.sign_in(name, PASSWORD, now=later)
        assert doubled.value.retry_after == 30
    with store.transaction() as session:
        counted = session.query(SignInThrottleRecord).filter_by(key="account:hal").one()
        assert counted.failures == 6
    later = now + timedelta(seconds=47)
    assert Accounts(store).sign_in("hal", PASSWORD, now=later) is not None
    with store.transaction() as session:  # success resets the name's counter
        assert session.query(SignInThrottleRecord).filter_by(key="account:hal").count() == 0
    assert Accounts(store).sign_in("hal", "wrong password!", now=later) is None  # 1 of 5 again


def test_failed_sign_ins_lock_the_address(store: Store, hashes: dict[str, int]) -> None:
    Accounts(store).add("ida", "reviewer", PASSWORD)
    accounts = Accounts(store)
    now = utc_now()
    for i in range(10):  # ten names, one guess each, from one address
        assert accounts.sign_in(f"user{i}", "a guess at it", address="203.0.113.9", now=now) is None
    verified = hashes["verify"]
    with pytest.raises(Throttled):  # even a right password, from that address
        accounts.sign_in("ida", PASSWORD, address="203.0.113.9", now=now)
    assert hashes["verify"] == verified
    assert accounts.sign_in("ida", PASSWORD, address="198.51.100.4", now=now) is not None


def test_a_locked_sign_in_is_429_with_retry_after(
    store: Store, console: str, hashes: dict[str, int]
) -> None:
    Accounts(store).add("jo", "reviewer", PASSWORD)
    with httpx.Client(base_url=console) as client:
        for _ in range(5):
            wrong = sign_in(client, "jo", "not the password")
            assert wrong.status_code == 200 and message(wrong) == "Wrong name or password."
        verified = hashes["verify"]
        locked = sign_in(client, "jo", PASSWORD)
        assert locked.status_code == 429 and int(locked.headers["retry-after"]) >= 1
        assert message(locked).startswith("Too many failed sign-ins; try again in")
        assert COOKIE not in client.cookies and hashes["verify"] == verified


def test_concurrent_sign_ins_never_hash_more_than_the_bound(
    store: Store, console: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A flood of sign-ins holds at most HASH_SLOTS argon2 hashes at once; the rest are refused
    with 503 and Retry-After after a short wait instead of queueing (or allocating) without end."""
    Accounts(store).add("kim", "reviewer", PASSWORD)
    monkeypatch.setattr(passwords, "HASH_WAIT_S", 0.5)
    state = {"active": 0, "peak": 0}
    lock, release = threading.Lock(), threading.Event()
    real = PasswordHasher.verify

    def held(self: PasswordHasher, *args: Any) -> Any:
        with lock:
            state["active"] += 1
            state["peak"] = max(state["peak"], state["active"])
        try:
            release.wait(timeout=20)  # each hash stays in progress until the test lets go
            return real(self, *args)
        finally:
            with lock:
                state["active"] -= 1

    monkeypatch.setattr(PasswordHasher, "verify", held)
    clients = [httpx.Client(base_url=console, timeout=30) for _ in range(8)]
    tokens = [form_token(c, "/sign-in") for c in clients]
    with ThreadPoolExecutor(len(clients)) as pool:
        futures = [
            pool.submit(c.post, "/sign-in", data={"name": "kim", "password": PASSWORD, "csrf": t})
            for c, t in zip(clients, tokens, strict=True)
        ]
        refused = []
        try:  # the six beyond the bound come back while two are held
            for future in as_completed(futures, timeout=5):
                refused.append(future.result())
                if len(refused) == len(futures) - passwords.HASH_SLOTS:
                    break
        except TimeoutError:
            pass
        release.set()
        answers = [f.result(timeout=20) for f in futures]
    for c in clients:
        c.close()
    assert state["peak"] == passwords.HASH_SLOTS == 2
    assert len(refused) == 6 and all(r.status_code == 503 for r in refused)
    assert all(int(r.headers["retry-after"]) >= 1 for r in refused)
    assert sorted(a.status_code for a in answers) == [303, 303, 503, 503, 503, 503, 503, 503]


def test_a_console_key_needs_a_live_grant(store: Store, console: str) -> None:
    with httpx.Client(base_url=console) as client:
        assert sign_up(client, "lee").status_code == 303
        csrf = form_token(client, "/applications")  # the session's token
        refused = client.post(f"/keys/{MODEL}", data={"csrf": csrf})
        assert refused.status_code == 403 and "emk_" not in refused.text
        assert message(refused).startswith(f"You hold no live grant for {MODEL}")
        assert Keys(store).all(principal="lee") == []
        grants = Grants(store)
        grants.grant("lee", MODEL, terms=check_terms(30, 100_000, "day", 60))
        made = client.post(f"/keys/{MODEL}", data={"csrf": csrf})
        assert made.status_code == 200 and made.headers["cache-control"] == "no-store"
        key = re.search(r"emk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}", made.text)
        assert key is not None
        answer = httpx.post(
            console.removesuffix("/console") + "/v1/chat/completions",
            json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4},
            headers={"Authorization": f"Bearer {key.group(0)}"},
        )
        assert answer.status_code == 200
        grants.revoke("lee", MODEL, reason="the study ended")
        again = client.post(f"/keys/{MODEL}", data={"csrf": csrf})
        assert again.status_code == 403 and "emk_" not in again.text
        unknown = client.post("/keys/no-such-model", data={"csrf": csrf})
        assert unknown.status_code == 403
    assert len(Keys(store).all(principal="lee")) == 1
