"""The `emeritus` command: the lifecycle end to end, exit statuses, and refusals that change
nothing. Runs in-process (typer's runner) and once as a real subprocess."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
from typer.testing import CliRunner

from emeritus.cli import app

runner = CliRunner()


def emeritus(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, (result.exit_code, result.output)
    return result.stdout


def refused(*args: str, code: int) -> str:
    """Run a command that must fail: one line on stderr, the given exit status."""
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def in_days(days: int) -> str:
    return (datetime.now(UTC).date() + timedelta(days=days)).isoformat()


@pytest.fixture
def two_models(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMERITUS_DATABASE_URL", database_url)
    emeritus("models", "add", "old", "--family", "SmolLM2", "--release-date", "2024-10-31")
    emeritus("models", "add", "new")


@pytest.mark.usefixtures("two_models")
def test_lifecycle_end_to_end(tmp_path: Path, hermetic_home: Path) -> None:
    line = refused("deprecate", "old", "--retire-on", in_days(30), "--successor", "new", code=4)
    assert "notice too short" in line and "--force" in line
    assert json.loads(emeritus("events", "list", "--kind", "lifecycle.", "--json")) == []

    emeritus(
        "deprecate",
        "old",
        "--retire-on",
        in_days(61),
        "--successor",
        "new",
        "--availability-after",
        "restricted",
    )
    models = {m["name"]: m for m in json.loads(emeritus("models", "list", "--json"))}
    assert models["old"]["state"] == "deprecated" and models["old"]["successor"] == "new"
    assert json.loads(emeritus("models", "list", "--state", "active", "--json"))[0]["name"] == "new"

    assert "nothing due" in emeritus("lifecycle", "tick")
    tick = json.loads(emeritus("lifecycle", "tick", "--now", in_days(62), "--json"))
    assert [m["name"] for m in tick["retired"]] == ["old"]
    assert (
        json.loads(emeritus("lifecycle", "tick", "--now", in_days(63), "--json"))["retired"] == []
    )

    shown = json.loads(emeritus("models", "show", "old", "--json"))
    assert shown["state"] == "retired" and shown["availability"] == "restricted"
    assert [e["kind"] for e in shown["events"]] == [
        "model.registered",
        "lifecycle.deprecated",
        "notice.published",
        "lifecycle.retired",
        "notice.published",
    ]
    assert [n["kind"] for n in shown["notices"]] == ["deprecation", "retirement"]
    assert "timeline" in emeritus("models", "show", "old")

    emeritus("retire", "old", "--availability", "public")
    assert "already retired" in emeritus("retire", "old", "--availability", "public")

    feed = tmp_path / "feed.xml"
    out = emeritus("notices", "--feed", str(feed))
    assert "old is retired" in out
    parsed = feedparser.parse(feed.read_bytes())
    assert not parsed.bozo and len(parsed.entries) == 3
    assert (hermetic_home / "notices" / "feed.atom").exists()

    # 8 events of the lifecycle, and 3 versions of the checkpoint object: each tick found the
    # newest checkpoint a day old (the second and third act 62 and 63 days later).
    report = json.loads(emeritus("events", "verify", "--json"))
    assert report["ok"] and report["events"] == 11
    assert report["checkpoint"]["seq"] == 8 and report["not_anchored"]["count"] == 3
    assert report["anchored"]["seq"] == 11
    assert "event chain intact: 12 events" in emeritus("events", "verify")


@pytest.mark.usefixtures("two_models")
def test_cancel_and_force(tmp_path: Path) -> None:
    emeritus("deprecate", "old", "--retire-on", in_days(5), "--force", "--reason", "CVE")
    emeritus("lifecycle", "cancel", "old", "--reason", "patched instead")
    assert json.loads(emeritus("models", "show", "old", "--json"))["state"] == "active"
    kinds = [n["kind"] for n in json.loads(emeritus("notices", "--model", "old", "--json"))]
    assert kinds == ["deprecation", "cancellation"]


@pytest.mark.usefixtures("two_models")
@pytest.mark.parametrize(
    "args,code,message",
    [
        (["deprecate", "ghost", "--retire-on", in_days(90)], 3, "unknown model 'ghost'"),
        (["deprecate", "old", "--retire-on", "next tuesday"], 2, "bad retirement date"),
        (["deprecate", "old", "--retire-on", "2031-02-30"], 2, "bad retirement date"),
        (["deprecate", "old", "--retire-on", "2031-01-01T00:00"], 2, "needs a UTC offset"),
        (
            ["deprecate", "old", "--retire-on", in_days(90), "--successor", "ghost"],
            3,
            "unknown successor",
        ),
        (["deprecate", "old", "--retire-on", in_days(10), "--force"], 2, "--force needs --reason"),
        (
            ["deprecate", "old", "--retire-on", in_days(90), "--availability-after", "some"],
            2,
            "unknown availability 'some'",
        ),
        (["retire", "old"], 4, "illegal transition active → retired: deprecate it first"),
        (["lifecycle", "cancel", "old", "--reason", "x"], 4, "illegal transition active → active"),
        (["lifecycle", "tick", "--now", "yesterday"], 2, "bad --now"),
        (["models", "add", "old"], 4, "already registered"),
        (["models", "add", "bad/name"], 2, "bad model name"),
        (["models", "show", "ghost"], 3, "unknown model"),
        (["models", "list", "--state", "sleeping"], 2, "unknown state 'sleeping'"),
        (["events", "list", "--limit", "0"], 2, "--limit must be at least 1"),
    ],
)
def test_bad_input_is_one_line_and_changes_nothing(
    args: list[str], code: int, message: str
) -> None:
    before = emeritus("events", "list", "--json"), emeritus("models", "list", "--json")
    assert message in refused(*args, code=code)
    assert (emeritus("events", "list", "--json"), emeritus("models", "list", "--json")) == before


def test_events_verify_names_a_hand_edited_event(hermetic_home: Path) -> None:
    emeritus("models", "add", "old")
    emeritus("models", "add", "new")
    emeritus("deprecate", "old", "--retire-on", in_days(61), "--successor", "new")
    assert json.loads(emeritus("events", "verify", "--json"))["ok"]
    with sqlite3.connect(hermetic_home / "emeritus.db") as db:
        db.execute(
            'UPDATE events SET payload = replace(payload, \'"successor":"new"\', '
            "'\"successor\":\"other\"') WHERE kind = 'lifecycle.deprecated'"
        )
    line = refused("events", "verify", code=5)
    assert line == (
        "error: event chain broken: event 3 (lifecycle.deprecated, model:old): "
        "content does not match its digest (edited or moved)"
    )
    report = json.loads(emeritus("events", "verify", "--json", code=5))
    assert report["first_bad"] == 3 and not report["ok"]


def test_actor_and_subject_filter(hermetic_home: Path) -> None:
    emeritus("--actor", "alice", "models", "add", "a")
    emeritus("models", "add", "b")
    events = json.loads(emeritus("events", "list", "--subject", "a", "--json"))
    assert [(e["subject"], e["actor"]) for e in events] == [("model:a", "alice")]
    assert (
        json.loads(emeritus("events", "list", "--subject", "model:b", "--json"))[0]["actor"]
        == "tester"
    )


def test_init_is_idempotent(hermetic_home: Path) -> None:
    first = json.loads(emeritus("init", "--json"))
    assert first == json.loads(emeritus("init", "--json"))
    assert first["home"] == str(hermetic_home) and (hermetic_home / "emeritus.db").exists()


def test_bad_setting_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMERITUS_NOTICE_DAYS", "sixty")
    assert "EMERITUS_NOTICE_DAYS must be a whole number" in refused("models", "list", code=2)


def test_real_process_exit_statuses(hermetic_home: Path) -> None:
    """The installed entry point, as cron or a shell script would run it."""
    exe = Path(sys.executable).with_name("emeritus")
    env = {**os.environ, "EMERITUS_HOME": str(hermetic_home)}
    help_text = subprocess.run(
        [str(exe), "--help"], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert "Exit status:" in help_text and "5  verification failed" in help_text
    subprocess.run([str(exe), "models", "add", "m"], env=env, check=True, capture_output=True)
    done = subprocess.run(
        [str(exe), "deprecate", "m", "--retire-on", in_days(1)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 4 and done.stderr.startswith("error: notice too short")
    module = subprocess.run(
        [sys.executable, "-m", "emeritus", "--version"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert module.stdout.startswith("emeritus ")


def test_facts(tmp_path: Path, hermetic_home: Path) -> None:
    emeritus("models", "add", "m")
    assert "no facts recorded" in emeritus("facts", "m")
    given = tmp_path / "facts.yaml"
    given.write_text(
        "usage: two years, 40k users a day\nreception: liked for its warmth\n"
        "deployed_from: 2024-11-01\n"
    )
    recorded = json.loads(emeritus("facts", "m", "--file", str(given), "--json"))
    assert recorded == {
        "usage": "two years, 40k users a day",
        "reception": "liked for its warmth",
        "deployed_from": "2024-11-01",
    }
    assert "reception: liked for its warmth" in emeritus("facts", "m")
    events = json.loads(emeritus("events", "list", "--kind", "model.facts_recorded", "--json"))
    assert events[0]["payload"]["facts"]["usage"].startswith("two years")
    given.write_text("- a list\n")
    assert "non-empty mapping" in refused("facts", "m", "--file", str(given), code=2)
    given.write_text("usage: [1, 2]\n")
    assert "must be text" in refused("facts", "m", "--file", str(given), code=2)
    assert "unknown model" in refused("facts", "ghost", code=3)
    assert json.loads(emeritus("facts", "m", "--json"))["reception"] == "liked for its warmth"
