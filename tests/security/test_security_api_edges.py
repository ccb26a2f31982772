"""The API's edges (issue 14, findings 2, 5, 6 and 9), each attack run against a real gateway on
loopback over SQLite and PostgreSQL: a chunked body past the size limit, a revoked principal
re-applying, an application in someone else's name, and lone surrogates in a body."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import openai
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from emeritus.access import (
    Applications,
    ApplicationState,
    DenialReason,
    Gate,
    Grants,
    Keys,
    Policies,
    Principals,
    check_terms,
)
from emeritus.cli import app as cli
from emeritus.errors import Conflict, InvalidInput
from emeritus.gateway import mock_opener, new_admin_key, running
from emeritus.gateway.common import error
from emeritus.lifecycle import Registry
from emeritus.store import Store, list_events

MODEL, OTHER = "kept-model", "other-model"
TERMS = check_terms(30, 100_000, "day", 1000)
FORM = {"approval": "auto", "fields": [{"name": "why", "type": "text"}]}
ADMIN = new_admin_key()


@dataclass
class Served:
    base: str
    store: Store

    def post(
        self,
        path: str,
        key: str | None = None,
        *,
        json: object = None,
        content: bytes | Iterator[bytes] | None = None,
    ) -> httpx.Response:
        """POST `json`, or `content` (sent as JSON, chunked when it is an iterator)."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        if content is not None:
            headers["Content-Type"] = "application/json"
        url = f"{self.base}{path}"
        return httpx.post(url, headers=headers, json=json, content=content, timeout=10)

    def count(self, table: str) -> int:
        with self.store.transaction() as session:
            return int(session.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())


@pytest.fixture
def served(store: Store) -> Iterator[Served]:
    """Two models taking automatic applications; rita holds a grant and a key for OTHER only."""
    registry = Registry(store)
    for name in (MODEL, OTHER):
        registry.add(name)
        Policies(store).set(name, FORM)
    Principals(store).add("rita", tier="research")
    with running(store, admin_key=ADMIN, opener=mock_opener()) as base:
        yield Served(base, store)


def key_for(store: Store, principal: str, model: str) -> str:
    if principal not in {p.name for p in Principals(store).all()}:
        Principals(store).add(principal, tier="research")
    Grants(store).grant(principal, model, terms=TERMS)
    return Keys(store).create(principal, [model]).key


def kinds(store: Store, kind: str) -> list[dict[str, object]]:
    with store.transaction() as session:
        return [e.payload for e in list_events(session, kind=kind)]


# -- finding 2: the body limit counts the bytes that arrive ---------------------------------------


def raw_chunked(base: str, key: str, chunks: int) -> bytes:
    """POST a chunked body of `chunks` x 64 KiB that never ends; what the server answers."""
    where = urlsplit(base)
    with socket.create_connection((where.hostname, where.port), timeout=10) as conn:
        conn.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
            + f"Authorization: Bearer {key}\r\n\r\n".encode()
        )
        piece = b'{"model": "' + b"x" * (65536 - 11)
        for _ in range(chunks):
            conn.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            got = conn.recv(65536)  # times out (a failure) if the server waits for the rest
            if not got:
                break
            answer += got
        return answer


def test_a_chunked_body_past_the_limit_is_refused_as_it_arrives(served: Served) -> None:
    key = key_for(served.store, "rita", MODEL)
    # 16 x 64 KiB = 1,048,576 bytes, no Content-Length, and the body never finishes: the 413
    # comes once the count passes 1,000,000, not after a read of everything.
    answer = raw_chunked(served.base, key, 16)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:200]
    assert json.loads(body)["error"]["code"] == "body_too_large"

    def twenty_megabytes() -> Iterator[bytes]:
        for _ in range(320):
            yield b" " * 65536

    chunked = served.post("/chat/completions", key, content=twenty_megabytes())
    assert chunked.status_code == 413 and chunked.json()["error"]["code"] == "body_too_large"
    anonymous = served.post("/access/applications", content=twenty_megabytes())
    assert anonymous.status_code == 413  # before authentication, on every route
    declared = served.post("/chat/completions", key, content=b" " * 1_000_001)
    assert declared.status_code == 413 and declared.json()["error"]["code"] == "body_too_large"
    # Nothing was counted or reserved, and the server still answers.
    assert served.count("access_usage") == 0
    [grant] = Grants(served.store).all(principal="rita", model=MODEL)
    assert grant.period_tokens == 0
    client = openai.OpenAI(base_url=served.base, api_key=key, max_retries=0)
    answer_ = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=8
    )
    assert answer_.choices[0].message.content
    assert served.count("access_usage") == 1


# -- finding 5: a revocation sticks -------------------------------------------------------------


def test_a_revoked_principal_cannot_reapply_and_its_keys_stay_dead(served: Served) -> None:
    store = served.store
    applications, gate = Applications(store), Gate(store)
    assert applications.submit("rita", MODEL, {"why": "history"}).state is ApplicationState.APPROVED
    both = Keys(store).create("rita", [MODEL])
    assert gate.authorize(both.key, MODEL).allowed
    Grants(store).revoke("rita", MODEL, reason="abuse")
    assert gate.authorize(both.key, MODEL).reason is DenialReason.KEY_REVOKED
    [revoked] = kinds(store, "access.grant_revoked")
    assert revoked["keys"] == [both.info.key_id]
    assert any(both.info.key_id == e["key_id"] for e in kinds(store, "access.key_revoked"))
    # Under automatic approval, re-applying used to grant again at once, with a fresh quota.
    with pytest.raises(Conflict, match="must reset the revocation"):
        applications.submit("rita", MODEL, {"why": "again"})
    other = key_for(store, "rita", OTHER)  # a key of hers for another model: over HTTP, too
    refused = served.post(
        "/access/applications", other, json={"model": MODEL, "answers": {"why": "x"}}
    )
    assert refused.status_code == 409 and "revoked" in refused.json()["error"]["message"]
    assert len(Grants(store).all(principal="rita", model=MODEL)) == 1  # no new grant
    with pytest.raises(InvalidInput, match="needs a --reason"):
        Grants(store).reset("rita", MODEL, reason=" ")
    with pytest.raises(Conflict, match="nothing to reset"):
        Grants(store).reset("rita", OTHER, reason="not revoked")
    lifted = Grants(store).reset("rita", MODEL, reason="appeal upheld")
    assert lifted.reset_at is not None
    [reset_event] = kinds(store, "access.revocation_reset")
    assert reset_event["reason"] == "appeal upheld" and reset_event["principal"] == "rita"
    assert applications.submit("rita", MODEL, {"why": "again"}).state is ApplicationState.APPROVED
    # A new grant does not bring the old key back: new keys are made for it.
    assert gate.authorize(both.key, MODEL).reason is DenialReason.KEY_REVOKED
    assert gate.authorize(Keys(store).create("rita", [MODEL]).key, MODEL).allowed


def test_the_reset_command_lifts_a_revocation(
    served: Served, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMERITUS_DATABASE_URL", database_url)
    key_for(served.store, "rita", MODEL)
    Grants(served.store).revoke("rita", MODEL, reason="abuse")
    runner = CliRunner()
    missing = runner.invoke(cli, ["access", "reset", "rita", MODEL])
    assert missing.exit_code == 2 and "--reason" in missing.output
    done = runner.invoke(cli, ["access", "reset", "rita", MODEL, "--reason", "appeal", "--json"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["reset_at"] is not None
    again = runner.invoke(cli, ["access", "reset", "rita", MODEL, "--reason", "twice"])
    assert again.exit_code == 4 and "nothing to reset" in again.stderr
    applied = Applications(served.store).submit("rita", MODEL, {"why": "back"})
    assert applied.state is ApplicationState.APPROVED


def test_a_key_needs_a_live_grant_for_every_model_in_its_scope(served: Served) -> None:
    store = served.store
    with pytest.raises(Conflict, match="no live grant for kept-model"):
        Keys(store).create("rita", [MODEL])
    Grants(store).grant("rita", OTHER, terms=TERMS)
    with pytest.raises(Conflict, match="no live grant for kept-model: a key"):
        Keys(store).create("rita", [MODEL, OTHER])
    made = served.post("/admin/keys", ADMIN, json={"principal": "rita", "models": [MODEL, OTHER]})
    assert made.status_code == 409 and "no live grant" in made.json()["error"]["message"]
    assert served.count("access_keys") == 0
    assert Keys(store).create("rita", [OTHER]).info.models == (OTHER,)


# -- finding 6: an application comes from its applicant -----------------------------------------


def test_an_application_needs_the_applicants_own_key(served: Served) -> None:
    store = served.store
    principals_before = served.count("access_principals")
    body = {"principal": "victim", "model": MODEL, "answers": {"why": "x"}}
    anonymous = served.post("/access/applications", json=body)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "missing_key"
    assert anonymous.headers["www-authenticate"] == "Bearer"
    forged = served.post("/access/applications", "emk_0123456789ab_" + "x" * 43, json=body)
    assert forged.status_code == 401
    assert served.count("access_principals") == principals_before  # no principal made
    mallory = key_for(store, "mallory", OTHER)
    Principals(store).add("victim", tier="research")
    for name in ("victim", "rita"):  # in another's name: 403, and nothing recorded
        other = served.post("/access/applications", mallory, json={**body, "principal": name})
        assert other.status_code == 403, other.text
        assert other.json()["error"]["code"] == "principal_mismatch"
    assert served.count("access_applications") == 0
    # Mallory applies in her own name (given or not); the victim's own application is untouched.
    own = served.post(
        "/access/applications", mallory, json={"model": MODEL, "answers": {"why": "x"}}
    )
    assert own.status_code == 201 and own.json()["principal"] == "mallory"
    victim = key_for(store, "victim", OTHER)
    theirs = served.post("/access/applications", victim, json=body)
    assert theirs.status_code == 201 and theirs.json()["state"] == "approved"
    checked = httpx.get(f"{served.base}/access/applications/{theirs.json()['uid']}")
    assert checked.json()["principal"] == "victim" and "answers" not in checked.json()


# -- finding 9: every input gets an encodable answer --------------------------------------------


@pytest.mark.parametrize(
    "rest",
    [
        '"model": "kept-model", "answers": {"why": "\\ud800"}',  # a lone surrogate, escaped
        '"model": "kept-model", "answers": {"\\udfff": "x"}',  # ... as an unknown field
        '"model": "kept-model", "answers": {"why": "a\\u0000b"}',  # NUL: not text either
        '"model": "kept-\\ud800", "answers": {}',
    ],
)
def test_lone_surrogates_in_an_application_are_a_400(served: Served, rest: str) -> None:
    key = key_for(served.store, "rita", OTHER)
    principals, events = served.count("access_principals"), served.count("events")
    answer = served.post(
        "/access/applications",
        key,
        content=('{"principal": "rita", ' + rest + "}").encode(),
    )
    assert answer.status_code == 400, answer.text
    message = answer.json()["error"]["message"]
    assert "not valid text" in message and message.isascii()
    assert served.count("access_applications") == 0
    assert served.count("access_principals") == principals and served.count("events") == events


def test_a_lone_surrogate_in_a_chat_message_costs_nothing(served: Served) -> None:
    key = key_for(served.store, "rita", MODEL)
    raw = b'{"model": "kept-model", "messages": [{"role": "user", "content": "\\ud83d"}]}'
    for body in (raw, raw.replace(b"\\ud83d", b"\xed\xa0\xbd")):  # escaped, and raw CESU bytes
        answer = served.post("/chat/completions", key, content=body)
        assert answer.status_code == 400, answer.text
        assert "messages.0.content" in answer.json()["error"]["message"]
    [grant] = Grants(served.store).all(principal="rita", model=MODEL)
    assert grant.period_tokens == 0 and served.count("access_usage") == 0


def test_the_library_refuses_what_it_cannot_store_and_errors_always_encode(store: Store) -> None:
    Registry(store).add(MODEL)
    Policies(store).set(MODEL, FORM)
    Principals(store).add("rita", tier="research")
    applications = Applications(store)
    with pytest.raises(InvalidInput, match="field 'why' is not valid text"):
        applications.submit("rita", MODEL, {"why": "\ud800"})
    with pytest.raises(InvalidInput, match="unknown form fields") as unknown:
        applications.submit("rita", MODEL, {"\udfff": "x"})
    str(unknown.value).encode("utf-8")  # the name is echoed escaped
    with pytest.raises(InvalidInput, match="contact is not valid text"):
        Principals(store).add("paul", tier="research", contact="\udcff")
    assert applications.all() == [] and [p.name for p in Principals(store).all()] == ["rita"]
    refused = error(400, "bad \ud800 input", "invalid_request")
    assert json.loads(refused.body)["error"]["message"] == "bad \ufffd input"
