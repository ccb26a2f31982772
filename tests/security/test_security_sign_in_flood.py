"""Floods before a session. Sign-ins under made-up names cost the event log nothing per try:
each is counted in the refusal rollup (one event per minute and reason), while a failure against
a real account stays an event of its own (the throttle bounds how many). Sign-ups, each a new
principal, are throttled per address."""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from console_forms import send_form, sign_in
from emeritus.access import Accounts, Role
from emeritus.access.throttle import SIGN_UP_FREE
from emeritus.gateway import create_app, mock_opener
from emeritus.runtime.pool import ModelPool
from emeritus.store import Settings, Store, list_events

NAMES = 8


def test_made_up_names_are_counted_not_logged(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path}/e.db", actor="t")
    with Store.open(settings) as store:
        Accounts(store).add("olga", Role.OPERATOR.value, "correct horse battery", actor="t")
        app = create_app(store, ModelPool(mock_opener()), admin_key="emadmin_" + "q" * 40)
        with TestClient(app, base_url="http://testserver/console") as http:
            client: httpx.Client = http
            for i in range(NAMES):
                assert "Wrong name or password" in sign_in(client, f"nobody-{i}", "guess").text
            assert "Wrong name or password" in sign_in(client, "olga", "not it").text
        gate = app.state.gateway.gate
        logged = gate.denials.flush(final=True)
        with store.transaction() as session:
            one_by_one = list_events(session, kind="access.sign_in_failed")
    assert [e.payload["name"] for e in one_by_one] == ["olga"]
    failed = [e for e in logged if e.payload.get("reason") == "sign_in_failed"]
    # One event per minute: the nine tries take seconds, so at most one minute's end falls
    # among them (CI once crossed one).
    assert 1 <= len(failed) <= 2
    assert sum(e.payload["count"] for e in failed) == NAMES + 1


def test_sign_ups_from_one_address_are_throttled(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path}/e.db", actor="t")
    with Store.open(settings) as store:
        app = create_app(store, ModelPool(mock_opener()), admin_key="emadmin_" + "q" * 40)
        answers = []
        for i in range(SIGN_UP_FREE + 1):
            # A fresh client each time, as a script would be: only the address is shared.
            with TestClient(app, base_url="http://testserver/console") as http:
                form = {"name": f"newcomer-{i}", "contact": "x", "password": "a long passphrase"}
                answers.append(send_form(http, "/sign-up", form))
        with store.transaction() as session:
            principals = list_events(session, kind="access.principal_added")
    assert [a.status_code for a in answers] == [200] * SIGN_UP_FREE + [429]
    assert int(answers[-1].headers["retry-after"]) > 0
    assert len(principals) == SIGN_UP_FREE  # the refused one made nothing
