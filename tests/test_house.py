"""The house rules that code review keeps forgetting (docs/design/architecture.md,
"Conventions"): functions short enough to read, packages reached through their public names,
and package imports that load no heavy library a command may not need."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "emeritus"
MIGRATIONS = SRC / "store" / "migrations"
LONGEST = 80  # lines, from `def` to the last line of the body
PACKAGES = sorted(p.name for p in SRC.iterdir() if (p / "__init__.py").is_file())


def _modules() -> list[tuple[Path, ast.Module]]:
    return [
        (path, ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        for path in sorted(SRC.rglob("*.py"))
        if MIGRATIONS not in path.parents
    ]


def test_no_function_is_over_80_lines() -> None:
    """Past 80 lines a function does several things: a command parses, calls a service and
    prints; the service's steps are functions of their own. Alembic migrations are exempt."""
    long = [
        f"{path.relative_to(SRC)}:{node.lineno} {node.name} ({size} lines)"
        for path, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and (size := (node.end_lineno or node.lineno) - node.lineno + 1) > LONGEST
    ]
    assert not long, long


def _imported(tree: ast.Module) -> list[tuple[int, str]]:
    """Every module an import statement names, at any depth (commands import inside functions)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def test_other_packages_import_only_a_package_s_public_names() -> None:
    """`from emeritus.runtime import open_preserved`, never `from emeritus.runtime.preserved
    import ...` from outside `emeritus.runtime`; the import-linter contracts in pyproject.toml
    (`lint-imports`) check the same on the import graph."""
    reaching = []
    for path, tree in _modules():
        own = path.relative_to(SRC).parts[0]
        for line, module in _imported(tree):
            parts = module.split(".")
            if parts[0] == "emeritus" and len(parts) > 2 and parts[1] != own:
                reaching.append(f"{path.relative_to(SRC)}:{line} imports {module}")
    assert not reaching, reaching


def test_every_package_lists_its_public_names() -> None:
    missing = [
        f"emeritus.{name}"
        for name in PACKAGES
        if "__all__" not in (SRC / name / "__init__.py").read_text(encoding="utf-8")
    ]
    assert not missing, missing


HEAVY = {
    "llama_cpp",
    "torch",
    "sentence_transformers",
    "httpx",
    "fastapi",
    "matplotlib",
    "numpy",
    "gguf",
    "jinja2",
}
# What importing a package loads today, no more: numpy for the embeddings' arrays, Jinja2 for
# the templates the corner, the reports and the console render, FastAPI for the gateway.
ALLOWED = {
    "runtime": {"numpy"},
    "interview": {"numpy"},
    "corner": {"jinja2", "numpy"},
    "report": {"jinja2", "numpy"},
    "gateway": {"fastapi", "jinja2", "numpy"},
}
LOADED = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})))
"""


@pytest.mark.parametrize("package", [p for p in PACKAGES if p != "cli"])
def test_importing_a_package_loads_no_heavy_library_it_does_not_need(package: str) -> None:
    """A package's __init__ re-exports what other packages use; a name whose module needs a
    heavy library imports it where it is used (`OpenAIBackend` and httpx, `LlamaCppBackend`
    and llama_cpp). The CLI's own rule is tests/test_cli_startup.py."""
    done = subprocess.run(
        [sys.executable, "-c", LOADED, f"emeritus.{package}"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout)) & HEAVY
    assert loaded <= ALLOWED.get(package, set()), sorted(loaded)
