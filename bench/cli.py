"""Command-line start-up: wall time of `emeritus --help`, `emeritus models list` and
`emeritus lifecycle tick` against `python -c pass` (the interpreter alone), each a fresh process,
in the same run. The store commands run in a home whose schema is already current, as a cron tick
finds it.

Run: .venv/bin/python bench/cli.py [--runs 15]
Targets (issue 15): --help under 0.3 s; commands that open the store under 0.5 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXE = str(Path(sys.executable).with_name("emeritus"))
TARGETS = {"--help": 0.3, "models list": 0.5, "lifecycle tick": 0.5}


def wall(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "EMERITUS_HOME": home, "EMERITUS_ACTOR": "bench"}
        # An installed CLI runs from bytecode; a shell with PYTHONDONTWRITEBYTECODE (this one
        # sets it) would compile every module of emeritus again in every run.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run([EXE, "init"], env=env, check=True, stdout=subprocess.DEVNULL)
        subprocess.run([EXE, "models", "add", "m"], env=env, check=True, stdout=subprocess.DEVNULL)
        cases = {"python -c pass": [sys.executable, "-c", "pass"]}
        cases.update({f"emeritus {c}": [EXE, *c.split()] for c in TARGETS})
        for argv in cases.values():  # warm the page cache and the bytecode
            wall(argv, env)
        times: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.runs):  # interleaved, so that a busy moment hits every case
            for name, argv in cases.items():
                times[name].append(wall(argv, env))
    base = statistics.median(times["python -c pass"])
    print(f"{'command':<26}{'median s':>10}{'min s':>8}{'x python':>10}{'target s':>14}")
    for name, values in times.items():
        target = TARGETS.get(name.removeprefix("emeritus "))
        median = statistics.median(values)
        mark = "" if target is None else f"{target:.1f} {'ok' if median < target else 'MISSED'}"
        print(f"{name:<26}{median:>10.3f}{min(values):>8.3f}{median / base:>10.1f}{mark:>14}")


if __name__ == "__main__":
    main()
