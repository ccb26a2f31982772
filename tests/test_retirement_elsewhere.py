"""The whole retirement for a model that does not run in the embedded llama.cpp, twice: the
bundled SmolLM2 converted to safetensors, on the `transformers` backend by default; and the
GGUF deployed behind an OpenAI-compatible server (`python -m llama_cpp.server`). Each is
preserved, fingerprinted and verified, interviewed and analysed with a judge, compared against
its successor, given an essay that is approved and published, and served through the gateway to
the official `openai` client."""

from __future__ import annotations

import json
import os
import pwd
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import openai
import pytest
from typer.testing import CliRunner

from emeritus.access import Grants, Keys, Principals, check_terms
from emeritus.cli import app
from emeritus.lifecycle import Registry
from emeritus.runtime import converted_dir, fingerprint
from emeritus.store import Settings, Store, utc_now
from gateway_server import gateway
from helpers import bundled_gguf

OLD, NEW = "retiring", "successor"
FRAMING = "interviewer=neutral,wording=neutral,disclosure=undisclosed,system_prompt=without"
# In the vLLM suite's group: both load torch on every core (transformers here, vLLM's engine
# there), and side by side on two cores each took five to ten times as long.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500), pytest.mark.xdist_group("vllm")]


@pytest.fixture(params=["transformers", "server"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """How the retiring model runs: its weights, and the `emeritus deploy` arguments (none:
    the default for its format)."""
    if request.param == "transformers":
        yield str(converted_dir()), []
        return
    served = request.getfixturevalue("llama_server")
    yield str(bundled_gguf()), ["--backend", "openai", "--url", served, "--server-model", "smol"]


def test_the_whole_retirement(
    where: tuple[str, list[str]],
    hermetic_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    weights, deployment = where
    monkeypatch.setattr(fingerprint, "CANARIES", fingerprint.CANARIES[:3])
    runner = CliRunner(env={"EMERITUS_REVIEWERS": pwd.getpwuid(os.geteuid()).pw_name})

    def call(*args: str) -> str:
        done = runner.invoke(app, list(args))
        assert done.exit_code == 0, (args, done.output)
        return done.stdout

    facts = tmp_path / "facts.yaml"
    facts.write_text("usage: a year as a small assistant\nreception: liked for its speed\n")
    call("models", "add", OLD)
    call("models", "add", NEW)
    call("preserve", OLD, weights, "--no-fingerprint")
    call("preserve", NEW, str(bundled_gguf()), "--no-fingerprint")  # the judge, on llama.cpp
    if deployment:
        call("deploy", OLD, *deployment)
    backend = json.loads(call("models", "show", OLD, "--json"))["deployment"]["backend"]
    assert backend == ("openai" if deployment else "transformers")

    # Preserve: fingerprinted where it runs, and the behaviour replayed there.
    taken = json.loads(call("fingerprint", OLD, "--json"))["fingerprint"]
    assert taken.startswith(f"fingerprints/{backend}-")
    [report] = json.loads(call("verify", OLD, "--behaviour", "--json"))
    assert report["comparable"] and report["ok"], report

    # Announce, then interview and analyse with a judge (the successor, on llama.cpp).
    call("facts", OLD, "--file", str(facts))
    retire_on = (utc_now() + timedelta(days=61)).date().isoformat()
    call(
        *("deprecate", OLD, "--retire-on", retire_on, "--successor", NEW),
        *("--availability-after", "restricted"),
    )
    interviewed = json.loads(
        call(
            *("interview", OLD, "--sessions", "1", "--max-tokens", "8"),
            *("--framings", FRAMING, "--workers", "1", "--json"),
            *("--context-chars", "2000"),  # the test server's context is 1,024 tokens
        )
    )
    assert interviewed["sessions"] == 1 and interviewed["messages"] > 40
    analysed = json.loads(
        call("analyze", OLD, "--judge", NEW, "--sample", "2", "--no-semantic", "--json")
    )
    assert NEW in json.dumps(analysed["judge"]) and analysed["preferences"]

    # Compare against the successor: both sides answer the prompt set.
    guide = call("compare", OLD, NEW, "--limit", "1", "--max-tokens", "8")
    assert "migration guide" in guide

    # The essay channel: drafted where the model runs, approved as written, published.
    call(
        "corner", "open", OLD, "--title", "Notes", "--disclaimer", "Unedited.", "--max-tokens", "60"
    )
    draft = json.loads(call("corner", "draft", OLD, "--json"))
    assert draft["state"] == "pending" and draft["text"].strip()
    call("corner", "approve", str(draft["id"]))
    assert json.loads(call("corner", "publish", OLD, "--json"))["published"] == [draft["id"]]

    # Retired, kept reachable: served by the gateway from where it runs.
    settings = Settings.from_env({}, home=hermetic_home)
    with Store.open(settings) as store:
        Registry(store).tick(now=utc_now() + timedelta(days=62))
        Principals(store).add("rita", tier="research")
        Grants(store).grant("rita", OLD, terms=check_terms(30, 1_000_000, "day", 1000))
        key = Keys(store).create("rita", [OLD]).key
    with gateway(hermetic_home) as base:
        client = openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=300)
        answer = client.chat.completions.create(
            model=OLD,
            messages=[{"role": "user", "content": "What is the capital of France?"}],
            max_tokens=12,
            temperature=0,
        )
        assert (answer.choices[0].message.content or "").strip()
        assert answer.usage is not None and answer.usage.completion_tokens > 0
