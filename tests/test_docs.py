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


def test_every_variable_read_anywhere_is_documented() -> None:
    # Reads of the environment in any form: os.environ.get/[], getenv, a settings mapping's get,
    # Typer's envvar=.
    read = re.compile(
        r"""(?:environ(?:\.get)?\(?\[?|getenv\(|env\.get\(|envvar=)\s*["'](EMERITUS_[A-Z_]+)["']"""
    )
    found = {
        name
        for path in (ROOT / "src").rglob("*.py")
        for name in read.findall(path.read_text(encoding="utf-8"))
    }
    documented = set(re.findall(r"`(EMERITUS_[A-Z_]+)`", README))
    assert {"EMERITUS_HOME", "EMERITUS_THREADS", "EMERITUS_ADMIN_KEY"} <= found
    assert found <= documented, f"not in the README's settings table: {found - documented}"


def test_specs_exist_for_the_built_layers() -> None:
    for spec in ("event-log.md", "lifecycle.md", "archive-format.md", "runtime.md"):
        assert (ROOT / "docs" / "design" / spec).is_file()


def _relative_links(text: str) -> list[str]:
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    return [link for link in links if not re.match(r"[a-z]+:|#", link)]


def test_every_relative_link_in_the_docs_resolves() -> None:
    documents = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    broken = []
    for document in documents:
        for link in _relative_links(document.read_text(encoding="utf-8")):
            target = (document.parent / link.split("#", 1)[0]).resolve()
            if not target.exists():
                broken.append(f"{document.relative_to(ROOT)}: {link}")
    assert len(documents) > 10 and not broken, broken


def test_nothing_refers_to_a_document_outside_the_repository() -> None:
    outside = []
    for path in [ROOT / "README.md", ROOT / "Makefile", ROOT / "pyproject.toml"]:
        if "DESIGN.md" in path.read_text(encoding="utf-8"):
            outside.append(path.name)
    for tree in ("src", "tests", "docs", "bench"):
        for path in (ROOT / tree).rglob("*"):
            if path.suffix in {".py", ".md", ".yaml", ".html", ".toml"} and path.is_file():
                text = path.read_text(encoding="utf-8", errors="replace")
                if re.search(r"\bDESIGN\.md\b|\.\./shared/", text) and path.name != "test_docs.py":
                    outside.append(str(path.relative_to(ROOT)))
    assert not outside, f"these cite a document that is not in the repository: {outside}"
