"""The `emeritus` command: one module per command group, wired together here (a command line
imports only the module of the command it names)."""

import copy
import importlib
import sys
from collections.abc import Iterable, Sequence

import typer

from emeritus.cli.root import app as _root

# Every command and group, in the order `emeritus --help` lists them: name -> (module under
# emeritus.cli, attribute). An attribute that ends in `_app` is a group. A command line imports
# only the module of the command it names (a cron tick does not load the demo).
COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("setup", "init"),
    "models": ("models", "models_app"),
    "facts": ("models", "facts"),
    "deprecate": ("lifecycle", "deprecate"),
    "retire": ("lifecycle", "retire"),
    "lifecycle": ("lifecycle", "lifecycle_app"),
    "notices": ("notices", "notices_app"),
    "preserve": ("archive", "preserve"),
    "verify": ("archive", "verify_command"),
    "audit": ("archive", "audit_command"),
    "repair": ("archive", "repair_command"),
    "restore": ("archive", "restore"),
    "export-bag": ("archive", "export_bag_command"),
    "replicate": ("archive", "replicate_command"),
    "run": ("runtime", "run"),
    "fingerprint": ("runtime", "fingerprint"),
    "deploy": ("deployment", "deploy_command"),
    "protocols": ("protocols", "protocols_app"),
    "interview": ("interview", "interview"),
    "analyze": ("interview", "analyze"),
    "annotate": ("interview", "annotate"),
    "compare": ("compare", "compare"),
    "report": ("report", "report"),
    "note": ("report", "note"),
    "decide": ("report", "decide_command"),
    "checklist": ("checklist", "checklist_command"),
    "access": ("access", "access_app"),
    "serve": ("serve", "serve_command"),
    "engines": ("engines", "engines_app"),
    "corner": ("corner", "corner_app"),
    "archive": ("archive", "archive_app"),
    "events": ("events", "events_app"),
    "demo": ("demo", "demo"),
}
# Commands of a group that live in another module: group -> (module, attribute, name).
GROUP_EXTRAS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "models": (("runtime", "add_bundled", "add-bundled"),),
}
_wired: set[str] = set()


def wire(names: Iterable[str] | None = None) -> typer.Typer:
    """The root app with the named commands (every one when None) registered, importing their
    modules now; registering is done once per name, and the help order is COMMANDS' order."""
    for name in COMMANDS if names is None else names:
        if name in _wired or name not in COMMANDS:
            continue
        module, attribute = COMMANDS[name]
        target = getattr(importlib.import_module(f"emeritus.cli.{module}"), attribute)
        if attribute.endswith("_app"):
            for extra_module, extra, extra_name in GROUP_EXTRAS.get(name, ()):
                command = getattr(importlib.import_module(f"emeritus.cli.{extra_module}"), extra)
                target.command(extra_name)(command)
            _root.add_typer(target, name=name)
        else:
            _root.command(name)(target)
        _wired.add(name)
    order = list(COMMANDS)
    _root.registered_commands.sort(key=lambda c: order.index(c.name or ""))
    _root.registered_groups.sort(key=lambda g: order.index(g.name or ""))
    return _root


def __getattr__(name: str) -> typer.Typer:
    """`emeritus.cli.app`: the whole command, every module imported (tests, docs checks)."""
    if name == "app":
        return wire()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# The root callback's options that take a value (`emeritus --home DIR models list`).
ROOT_VALUE_OPTIONS = ("--home", "--actor")


def main() -> None:
    name = command_name(sys.argv[1:])
    wire([name] if name in COMMANDS else None)
    (only(sys.argv[1:]) or _root)()


def only(argv: Sequence[str]) -> typer.Typer | None:
    """The root app narrowed to the one command or group that `argv` names, or None to run the
    whole app (top-level --help, --version, an unknown name). Typer builds the parameters of every
    command it holds before it parses a line; a cron tick or a script then pays for all 70."""
    name = command_name(argv)
    if name is None:
        return None
    commands = [c for c in _root.registered_commands if c.name == name]
    groups = [g for g in _root.registered_groups if g.name == name]
    if not commands and not groups:
        return None  # the whole app answers with its own "no such command"
    narrow = copy.copy(_root)
    narrow.registered_commands = commands
    narrow.registered_groups = groups
    return narrow


def command_name(argv: Sequence[str]) -> str | None:
    """The first argument that is neither a root option nor its value."""
    args = iter(argv)
    for arg in args:
        if arg in ROOT_VALUE_OPTIONS:
            next(args, None)
        elif not arg.startswith("-"):
            return arg
        elif not arg.startswith(tuple(f"{o}=" for o in ROOT_VALUE_OPTIONS)):
            return None  # --help, --version, or something the root must refuse
    return None


__all__ = ["COMMANDS", "ROOT_VALUE_OPTIONS", "app", "command_name", "main", "only", "wire"]
