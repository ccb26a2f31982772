"""The `emeritus` command: one module per command group, wired together here."""

import copy
import sys
from collections.abc import Sequence

import typer

from emeritus.cli.access import access_app
from emeritus.cli.app import app
from emeritus.cli.archive import (
    archive_app,
    audit_command,
    export_bag_command,
    preserve,
    repair_command,
    replicate_command,
    restore,
    verify_command,
)
from emeritus.cli.checklist import checklist_command
from emeritus.cli.compare import compare
from emeritus.cli.corner import corner_app
from emeritus.cli.demo import demo
from emeritus.cli.deployment import deploy_command
from emeritus.cli.engines import engines_app
from emeritus.cli.events import events_app
from emeritus.cli.interview import analyze, annotate, interview
from emeritus.cli.lifecycle import deprecate, lifecycle_app, retire
from emeritus.cli.models import facts, models_app
from emeritus.cli.notices import notices_app
from emeritus.cli.protocols import protocols_app
from emeritus.cli.report import decide_command, note, report
from emeritus.cli.runtime import add_bundled, fingerprint, run
from emeritus.cli.serve import serve_command
from emeritus.cli.setup import init

app.command("init")(init)
app.add_typer(models_app, name="models")
app.command("facts")(facts)
app.command("deprecate")(deprecate)
app.command("retire")(retire)
app.add_typer(lifecycle_app, name="lifecycle")
app.add_typer(notices_app, name="notices")
app.command("preserve")(preserve)
app.command("verify")(verify_command)
app.command("audit")(audit_command)
app.command("repair")(repair_command)
app.command("restore")(restore)
app.command("export-bag")(export_bag_command)
app.command("replicate")(replicate_command)
app.command("run")(run)
app.command("fingerprint")(fingerprint)
app.command("deploy")(deploy_command)
models_app.command("add-bundled")(add_bundled)
app.add_typer(protocols_app, name="protocols")
app.command("interview")(interview)
app.command("analyze")(analyze)
app.command("annotate")(annotate)
app.command("compare")(compare)
app.command("report")(report)
app.command("note")(note)
app.command("decide")(decide_command)
app.command("checklist")(checklist_command)
app.add_typer(access_app, name="access")
app.command("serve")(serve_command)
app.add_typer(engines_app, name="engines")
app.add_typer(corner_app, name="corner")
app.add_typer(archive_app, name="archive")
app.add_typer(events_app, name="events")
app.command("demo")(demo)


# The root callback's options that take a value (`emeritus --home DIR models list`).
ROOT_VALUE_OPTIONS = ("--home", "--actor")


def main() -> None:
    (only(sys.argv[1:]) or app)()


def only(argv: Sequence[str]) -> typer.Typer | None:
    """The root app narrowed to the one command or group that `argv` names, or None to run the
    whole app (top-level --help, --version, an unknown name). Typer builds the parameters of every
    command it holds before it parses a line; a cron tick or a script then pays for all 70."""
    name = command_name(argv)
    if name is None:
        return None
    commands = [c for c in app.registered_commands if c.name == name]
    groups = [g for g in app.registered_groups if g.name == name]
    if not commands and not groups:
        return None  # the whole app answers with its own "no such command"
    narrow = copy.copy(app)
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


__all__ = ["ROOT_VALUE_OPTIONS", "app", "command_name", "main", "only"]
