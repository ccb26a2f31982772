"""The public deprecations list (JSON and page) and the stragglers (CLI and console page),
through a real gateway on loopback; the `notices` command group, its old form and its refusals."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from console_forms import sign_in
from emeritus.access import Accounts, Grants, Principals, check_terms
from emeritus.cli import app
from emeritus.lifecycle import Registry
from emeritus.notify import find_stragglers
from emeritus.store import Settings, Store, utc_now
from gateway_server import gateway
from test_notify import _kinds, _use

runner = CliRunner()
PASSWORD = "correct horse battery staple"


def _history(store: Store) -> None:
    now = utc_now()
    registry = Registry(store)
    for name in ("old", "mid", "new"):
        registry.add(name, now=now - timedelta(days=90))
    people = Principals(store)
    terms = check_terms(365, 10**6, "day", 600)
    for name in ("ana", "bo", "cy"):
        people.add(name, tier="paid", contact=f"{name}@co.example", now=now - timedelta(days=80))
        Grants(store).grant(name, "old", terms=terms, now=now - timedelta(days=70))
        Grants(store).grant(name, "mid", terms=terms, now=now - timedelta(days=70))
    _use(store, "ana", "old", now - timedelta(days=5), times=4)
    _use(store, "ana", "old", now - timedelta(hours=1), times=2)
    _use(store, "bo", "old", now - timedelta(days=2))
    _use(store, "bo", "mid", now - timedelta(days=1), times=3)  # has moved to the successor
    _use(store, "cy", "old", now - timedelta(days=45))  # too long ago to count
    registry.deprecate("old", retire_at=now + timedelta(days=61), successor="mid", now=now)
    registry.deprecate(
        "mid", retire_at=now + timedelta(days=200), successor="new", now=now, tentative=True
    )


def test_stragglers_are_the_recent_callers_heaviest_first(store: Store) -> None:
    _history(store)
    successor, found = find_stragglers(store, "old", days=30)
    assert successor == "mid"
    assert [(s.principal, s.requests, s.moved) for s in found] == [
        ("ana", 6, False),
        ("bo", 1, True),
    ]
    ana = found[0]
    assert ana.per_day[-1] == 2 and ana.per_day[-6] == 4 and sum(ana.per_day) == 6
    assert ana.tokens == 6 * 15 and len(ana.keys) == 2
    assert found[1].successor_requests == 3


def test_stragglers_of_an_active_model_are_refused(store: Store) -> None:
    _history(store)
    from emeritus.errors import Conflict

    with pytest.raises(Conflict, match="active"):
        find_stragglers(store, "new")


def test_the_public_list_and_the_stragglers_page(settings: Settings) -> None:
    with Store.open(settings) as store:
        _history(store)
        Accounts(store).add("olga", "operator", PASSWORD, actor="test")
    with gateway(settings.home, database_url=settings.database_url) as base:
        listed = httpx.get(f"{base}/deprecations", timeout=10)  # no key
        assert listed.status_code == 200
        data = {e["model"]: e for e in listed.json()["data"]}
        assert list(data) == ["old", "mid"]  # soonest retirement first
        assert data["old"]["successor_chain"] == ["mid", "new"]
        assert data["old"]["date_firmness"] == "firm"
        assert data["mid"]["date_firmness"] == "tentative"
        assert data["old"]["migration_guide"].endswith("/models/old/migration")
        assert "/notices/" in data["old"]["notice"]
        root = base.removesuffix("/v1")
        shown = httpx.get(f"{root}/deprecations", timeout=10)
        assert shown.status_code == 200 and "mid → new" in shown.text
        assert "tentative" in shown.text

        with httpx.Client(base_url=f"{root}/console", timeout=10) as client:
            assert client.get("/models/old/stragglers").status_code == 303  # signed out
            sign_in(client, "olga", PASSWORD)
            assert "/console/models/old/stragglers" in client.get("/models/old").text
            assert "/stragglers" not in client.get("/models/new").text  # active: nobody lags
            page = client.get("/models/old/stragglers")
            assert page.status_code == 200
            assert page.text.index("<td>ana</td>") < page.text.index("<td>bo</td>")
            assert "not yet" in page.text and "yes, 3 requests" in page.text
            assert page.text.count('<svg class="spark"') == 2
            assert "cy@co.example" not in page.text
            assert client.get("/models/new/stragglers").status_code == 409


def _cli(home: Path, *args: str, code: int = 0) -> str:
    result = runner.invoke(app, ["--home", str(home), *args])
    assert result.exit_code == code, (result.exit_code, result.output)
    return result.stdout if code == 0 else result.stderr


def test_the_notices_group_and_its_refusals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "h"
    monkeypatch.setenv("EMERITUS_NOTICE_HOSTS", "hooks.example.org")
    _cli(home, "models", "add", "old")
    _cli(
        home,
        "deprecate",
        "old",
        "--retire-on",
        (utc_now() + timedelta(days=90)).date().isoformat(),
        "--tentative",
    )
    feed = tmp_path / "feed.atom"
    assert "old will be retired" in _cli(home, "notices", "--feed", str(feed))  # the old form
    assert feed.exists()
    listed = json.loads(_cli(home, "notices", "list", "--json"))
    assert listed[0]["title"].endswith("(tentative date)")
    made = json.loads(
        _cli(home, "notices", "subscribe", "--webhook", "https://hooks.example.org/n", "--json")
    )
    assert made["secret"].startswith("whsec_")
    with Store.open(Settings.from_env(home=home)) as store:
        events = len(_kinds(store))
    for args, code, message in [
        (["--webhook", "https://evil.example.com/n"], 2, "not allowed"),
        (["--webhook", "https://u:p@hooks.example.org/n"], 2, "user name or password"),
        (["--email", "not-an-address"], 2, "not an email address"),
        (["--email", "a@b.org", "--model", "nosuch"], 3, "unknown model"),
        (["--email", "a@b.org", "--principal", "nobody"], 3, "unknown principal"),
    ]:
        err = _cli(home, "notices", "subscribe", *args, code=code)
        assert message in err and len(err.strip().splitlines()) == 1, err
    err = _cli(home, "notices", "deliveries", "--state", "lost", code=2)
    assert "unknown delivery state" in err
    err = _cli(home, "lifecycle", "postpone", "old", "--to", "2020-01-01", "--reason", "x", code=2)
    assert "not in the future" in err
    with Store.open(Settings.from_env(home=home)) as store:
        assert len(_kinds(store)) == events  # the refusals recorded nothing
    assert "sent 0" in _cli(home, "notices", "send")
    # The subscriber came after the notice: its deliveries were written with the notice, to the
    # recipients of that moment, so there are none.
    assert _cli(home, "notices", "deliveries").strip() == "no deliveries"


def test_a_year_of_weekly_ticks_with_now(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`lifecycle tick --now` once a week for a year, as a weekly cron would: every due
    reminder once (late, counting the days left), then the retirement, each mailed once to the
    operator and to the principal holding a grant, with her figures."""
    from notice_receivers import serve_mailbox

    home = tmp_path / "h"
    for box in serve_mailbox():
        monkeypatch.setenv("EMERITUS_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("EMERITUS_SMTP_PORT", str(box.port))
        start = utc_now()
        _cli(home, "models", "add", "old")
        _cli(home, "models", "add", "new")
        _cli(
            home,
            "access",
            "principals",
            "add",
            "ana",
            "--tier",
            "paid",
            "--contact",
            "ana@co.example",
        )
        with Store.open(Settings.from_env(home=home)) as store:
            Grants(store).grant("ana", "old", terms=check_terms(365, 10**6, "day", 60))
        _cli(home, "notices", "subscribe", "--email", "ops@emeritus.example")
        retire = (start + timedelta(days=150)).date().isoformat()
        _cli(home, "deprecate", "old", "--retire-on", retire, "--successor", "new", "--tentative")
        ticks = [
            json.loads(
                _cli(
                    home,
                    "lifecycle",
                    "tick",
                    "--json",
                    "--now",
                    (start + timedelta(days=7 * week)).isoformat(),
                )
            )
            for week in range(1, 53)
        ]
        kinds = [n["kind"] for n in json.loads(_cli(home, "notices", "list", "--json"))]
        assert kinds == ["deprecation"] + ["reminder"] * 4 + ["retirement"]
        assert sum(len(t["reminders"]) for t in ticks) == 4
        assert sum(len(t["retired"]) for t in ticks) == 1
        subjects = [(m["To"], m["Subject"]) for m in box.messages]
        assert len(subjects) == 12 and len(set(subjects)) == 12
        reminder = next(m for m in box.to("ana@co.example") if "Reminder" in m["Subject"])
        assert "(tentative date)" in reminder["Subject"]
        assert "requests in the last 30 days: 0" in reminder.get_content()
        assert "Your use of this model" not in box.to("ops@emeritus.example")[0].get_content()
