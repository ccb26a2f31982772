"""Command-line start-up: wall time of `emeritus --help`, `emeritus models list` and
`emeritus lifecycle tick` against `python -c pass` (the interpreter alone), each a fresh process,
in the same run. The store commands run in a home whose schema is already current, as a cron tick
finds it.

Run: .venv/bin/python bench/cli.py [--runs 15] [--instructions]
Targets (issue 15): --help under 0.3 s; commands that open the store under 0.5 s.

With --instructions, each case also runs once under valgrind's callgrind, which counts the
instructions executed: the same count for the same code whatever else the machine is doing
(wall times here vary up to 2x within minutes), so that a change can be compared across runs.
"""

from __future__ import annotations

import argparse
import os
import shutil
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


def instructions(argv: list[str], env: dict[str, str]) -> int:
    """Instructions executed by `argv` (valgrind --tool=callgrind; about 20 s a case)."""
    with tempfile.TemporaryDirectory() as scratch:
        done = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={scratch}/out", *argv],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
    [line] = [x for x in done.stderr.splitlines() if "Collected :" in x]
    return int(line.rsplit(":", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--instructions", action="store_true", help="count them with callgrind")
    args = parser.parse_args()
    if args.instructions and shutil.which("valgrind") is None:
        parser.error("--instructions needs valgrind (Debian: apt-get install valgrind)")
    counts: dict[str, int] = {}
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
        if args.instructions:
            # The console script is a Python file: valgrind runs it through the interpreter.
            counts = {
                name: instructions([sys.executable, *argv] if argv[0] == EXE else argv, env)
                for name, argv in cases.items()
            }
    base = statistics.median(times["python -c pass"])
    print(f"{'command':<26}{'median s':>10}{'min s':>8}{'x python':>10}{'target s':>14}")
    for name, values in times.items():
        target = TARGETS.get(name.removeprefix("emeritus "))
        median = statistics.median(values)
        mark = "" if target is None else f"{target:.1f} {'ok' if median < target else 'MISSED'}"
        print(f"{name:<26}{median:>10.3f}{min(values):>8.3f}{median / base:>10.1f}{mark:>14}")
    if counts:
        print(f"\n{'command':<26}{'instructions':>16}{'x python':>10}")
        for name, count in counts.items():
            print(f"{name:<26}{count:>16,}{count / counts['python -c pass']:>10.1f}")


if __name__ == "__main__":
    main()
