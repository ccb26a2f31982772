"""A backend from a third-party distribution works in every stage once it declares the entry
point: `tests/plugins/emeritus-echo` is installed for real (pip, into a folder of its own on the
path of the processes under test), deployed, and used by run, fingerprint, verify --behaviour,
interview, analyze, compare, the essay channel and the gateway, with the official client."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import openai
import pytest

from emeritus.access import Grants, Keys, Principals, check_terms
from emeritus.lifecycle import Registry
from emeritus.store import Settings, Store, utc_now
from gateway_server import gateway
from helpers import make_model

PLUGIN = Path(__file__).parent / "plugins" / "emeritus-echo"
RESTRICTED = ("--availability-after", "restricted")
FRAMING = "interviewer=neutral,wording=neutral,disclosure=undisclosed,system_prompt=without"
pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin, installed from its own source tree as any user would install it."""
    target = tmp_path_factory.mktemp("plugin-site")
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index"]
    done = subprocess.run(
        [*pip, "--no-build-isolation", "--target", str(target), str(PLUGIN)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (target / "emeritus_echo-1.0.0.dist-info" / "entry_points.txt").is_file()
    return target


def test_a_plugin_backend_runs_every_stage(
    site: Path, hermetic_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every process below (the CLI, the gateway) finds the plugin the way Python finds any
    # installed distribution; this test process does not import it.
    monkeypatch.setenv("PYTHONPATH", str(site))
    monkeypatch.setenv("EMERITUS_REVIEWERS", pwd.getpwuid(os.geteuid()).pw_name)
    assert "emeritus_echo" not in sys.modules

    def call(*args: str, code: int = 0, stdout: bool = False) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "emeritus", *args], capture_output=True, text=True, check=False
        )
        assert done.returncode == code, (args, done.stdout, done.stderr)
        return done.stdout if stdout else done.stdout + done.stderr

    facts = tmp_path / "facts.yaml"
    facts.write_text("usage: a year of answering questions\nreception: liked\n")
    for name, seed in (("old", 1), ("new", 2)):
        call("models", "add", name)
        call("preserve", name, str(make_model(tmp_path / name, seed=seed)))
    call("deploy", "old", "--backend", "echo")
    call("deploy", "new", "--backend", "echo", "--option", "prefix=successor")
    assert "runs on    echo (recorded)" in " ".join(call("models", "show", "old").split("  "))

    assert "echo world hello" in call("run", "old", "hello world")
    taken = _json(call("fingerprint", "old", "--json", stdout=True))
    assert taken["fingerprint"].startswith("fingerprints/echo-")
    assert call("verify", "old", "--behaviour").count(": match") == 12

    call("facts", "old", "--file", str(facts))
    retire_at = (utc_now() + timedelta(days=61)).date().isoformat()
    call("deprecate", "old", "--retire-on", retire_at, "--successor", "new", *RESTRICTED)
    run = _json(
        call(
            *("interview", "old", "--sessions", "1", "--max-tokens", "12"),
            *("--framings", FRAMING, "--json"),
            stdout=True,
        )
    )
    assert run["sessions"] == 1 and run["messages"] > 10
    analysed = _json(call("analyze", "old", "--no-judge", "--no-semantic", "--json", stdout=True))
    assert analysed["preferences"]

    guide = call("compare", "old", "new", "--limit", "1", "--max-tokens", "8")
    assert "migration guide" in guide

    call("corner", "open", "old", "--title", "Notes", "--disclaimer", "Unedited.")
    draft = _json(call("corner", "draft", "old", "--json", stdout=True))
    assert draft["text"].startswith("echo ")
    call("corner", "approve", str(draft["id"]))
    assert _json(call("corner", "publish", "old", "--json", stdout=True))["published"] == [
        draft["id"]
    ]

    # Served through the gateway, a process that loads the plugin itself.
    settings = Settings.from_env({}, home=hermetic_home)
    with Store.open(settings) as store:
        registry = Registry(store)
        registry.tick(now=utc_now() + timedelta(days=62))
        Principals(store).add("rita", tier="research")
        Grants(store).grant("rita", "old", terms=check_terms(30, 1_000_000, "day", 1000))
        key = Keys(store).create("rita", ["old"]).key
    with gateway(hermetic_home) as base:
        client = openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=60)
        answer = client.chat.completions.create(
            model="old", messages=[{"role": "user", "content": "are you there"}], max_tokens=8
        )
        assert answer.choices[0].message.content == "echo there you are"
        streamed = client.chat.completions.create(
            model="old",
            messages=[{"role": "user", "content": "one two three"}],
            max_tokens=8,
            stream=True,
        )
        assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == (
            "echo three two one"
        )


def _json(stdout: str) -> Any:
    """What a `--json` command printed (progress and notes go to stderr)."""
    return json.loads(stdout)
