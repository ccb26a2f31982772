"""The docs are checked against the code: every command and every setting is documented."""

from __future__ import annotations

import re
from pathlib import Path

import typer

from emeritus.cli import app
from emeritus.store.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _commands(command: object, prefix: str) -> list[str]:
    subcommands = getattr(command, "commands", None)
    if not subcommands:
        return [prefix]
    found = []
    for name, sub in subcommands.items():
        found += _commands(sub, f"{prefix} {name}")
    return found


def test_every_command_is_in_the_readme() -> None:
    commands = _commands(typer.main.get_command(app), "emeritus")
    assert len(commands) >= 11
    table = README.replace("\\|", "|")
    for command in commands:
        group, _, leaf = command.rpartition(" ")
        documented = command in table or re.search(
            rf"`{re.escape(group)} [^`]*\b{re.escape(leaf)}\b[^`]*`", table
        )
        assert documented, f"{command} is not documented in README.md"


def test_every_setting_is_documented() -> None:
    documented = set(re.findall(r"`(EMERITUS_[A-Z_]+)`", README))
    in_code = set(re.findall(r"\(`(EMERITUS_[A-Z_]+)`\)", Settings.__doc__ or ""))
    assert in_code and in_code <= documented


def test_specs_exist_for_the_built_layers() -> None:
    for spec in ("event-log.md", "lifecycle.md", "archive-format.md", "runtime.md"):
        assert (ROOT / "docs" / "design" / spec).is_file()
