"""Crash safety: `emeritus preserve` killed with SIGKILL at random moments loses nothing.

After every kill: no partial object or version is visible, every object passes our verify and
ocfl-py, and running the command again completes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emeritus.archive import Archive, Inventory, object_root, verify
from emeritus.lifecycle import Registry
from emeritus.store import Settings, Store
from helpers import make_model, ocfl_errors

EXE = str(Path(sys.executable).with_name("emeritus"))


def _run(env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [EXE, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def _check(home: Path, model: str) -> int:
    """The invariants after a kill; returns the visible head version (0: no object)."""
    obj = home / "archive" / object_root(f"urn:emeritus:model:{model}")
    if not obj.exists():
        return 0
    assert ocfl_errors(obj) == []
    head = Inventory.from_bytes((obj / "inventory.json").read_bytes()).head
    versions = sorted(
        (p.name for p in obj.iterdir() if p.name.startswith("v")), key=lambda v: int(v[1:])
    )
    assert versions == [f"v{n}" for n in range(1, head + 1)], "a partial version is visible"
    return head


def _trials(tmp_path: Path, count: int, seed: int) -> None:
    rng = random.Random(seed)
    home = tmp_path / "home"
    env = {**os.environ, "EMERITUS_HOME": str(home), "EMERITUS_ACTOR": "crash"}
    model = make_model(tmp_path / "model", shards=4, tensors=4, elements=250_000)
    card = tmp_path / "card" / "MODEL_CARD.md"
    card.parent.mkdir()
    card.write_text("written after the first preservation\n")
    with Store.open(Settings.from_env(env)) as store:
        Registry(store).add("m")
    # Interpreter and imports, when no write happens: the fastest of three, as a first run on a
    # cold page cache can take seconds and push every kill past the commit.
    timings = []
    for _ in range(3):
        started = time.perf_counter()
        assert _run(env, "--version").wait() == 0
        timings.append(time.perf_counter() - started)
    startup = min(timings)
    started = time.perf_counter()
    assert _run(env, "preserve", "m", str(model)).wait() == 0
    duration = time.perf_counter() - started
    assert _check(home, "m") == 1
    outcomes = {True: 0, False: 0}  # did the killed run commit its version?
    for trial in range(count):
        name, args = (f"m{trial}", [str(model)]) if trial % 2 == 0 else ("m", [str(card)])
        if trial % 2 == 0:
            with Store.open(Settings.from_env(env)) as store:
                Registry(store).add(name)
        elif trial > 1:  # reset the card version so every odd trial writes a version again
            card.write_text(f"card {trial}\n")
        previous = _check(home, name)
        proc = _run(env, "preserve", name, *args)
        time.sleep(rng.uniform(startup * 0.8, duration))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before = _check(home, name)
        outcomes[before > previous] += 1
        rerun = _run(env, "preserve", name, *args)
        assert rerun.wait() == 0, rerun.stderr.read() if rerun.stderr else ""
        after = _check(home, name)
        assert after >= max(before, 1)
    # Kills landed both before and after commit points, or the test proved little.
    assert outcomes[True] and outcomes[False], outcomes
    with Store.open(Settings.from_env(env)) as store:
        archive = Archive(store)
        for record in archive.objects():
            assert verify(archive, record.model, full=True).ok


@pytest.mark.timeout(600)  # each trial starts the CLI twice: seconds apiece on a busy machine
def test_sigkill_during_preserve(tmp_path: Path) -> None:
    _trials(tmp_path, 20, seed=1)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_sigkill_during_preserve_many_times(tmp_path: Path) -> None:
    _trials(tmp_path, 80, seed=2)
