"""Output a person can read when piped: a table written to a pipe or a log keeps every cell
whole instead of being cut to 80 columns."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

LONG_NAME = "a-model-with-a-rather-long-name-that-would-not-fit-in-eighty-columns"
FAMILY = "A family name long enough to be wrapped or cut"


def run(home: Path, *args: str, columns: str | None = None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["EMERITUS_HOME"] = str(home)
    if columns is not None:
        env["COLUMNS"] = columns
    done = subprocess.run(
        [sys.executable, "-m", "emeritus", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def test_a_piped_table_keeps_its_cells_whole(tmp_path: Path) -> None:
    run(tmp_path, "models", "add", LONG_NAME, "--family", FAMILY)
    piped = run(tmp_path, "models", "list")
    assert LONG_NAME in piped and FAMILY in piped and "…" not in piped
    # One row per model: nothing wrapped onto a second line either.
    assert sum(LONG_NAME in line for line in piped.splitlines()) == 1
    # A width the caller asks for is still honoured.
    narrow = run(tmp_path, "models", "list", columns="60")
    assert max(len(line) for line in narrow.splitlines()) <= 60
