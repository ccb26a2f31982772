"""A command line that answers at once: importing the CLI loads no heavy library, and a command
loads only what it uses. Timings are `bench/cli.py`'s business; this asserts what is imported,
which a slow machine cannot make flaky."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

# Each costs a tenth of a second or more to import; none is needed to parse a command line.
HEAVY = (
    "fastapi",
    "starlette",
    "uvicorn",
    "torch",
    "sentence_transformers",
    "matplotlib",
    "llama_cpp",
    "numpy",
    "gguf",
    "alembic",
    "httpx",
    "jinja2",
    "feedgen",
    "feedparser",
    "argon2",
    "cryptography",
    "prometheus_client",
    "pydantic",  # typer 0.29 coerces parameters with it; pinned below (pyproject.toml)
)

LOADED = """
import atexit, json, sys
def report():
    sys.__stderr__.write("LOADED " + json.dumps(sorted(sys.modules)))
atexit.register(report)
import emeritus.cli
sys.argv = ["emeritus", *sys.argv[1:]]
emeritus.cli.main()
"""


def _loaded(home: Path, *argv: str) -> set[str]:
    """The top-level packages a command line loads."""
    return {m.split(".")[0] for m in _modules(home, *argv)}


def _modules(home: Path, *argv: str) -> set[str]:
    env = {**os.environ, "EMERITUS_HOME": str(home), "EMERITUS_ACTOR": "tester"}
    done = subprocess.run(
        [sys.executable, "-c", LOADED, *argv], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stderr.rsplit("LOADED ", 1)[1]))


def test_help_loads_no_heavy_library_and_no_database(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path, "--help")
    assert loaded.isdisjoint(HEAVY), sorted(loaded & set(HEAVY))
    assert "sqlalchemy" not in loaded  # --help needs no store


def test_store_commands_load_only_the_store(tmp_path: Path) -> None:
    first = _loaded(tmp_path, "models", "add", "m")
    assert "alembic" in first  # a new home: the schema is created
    uses = {  # what each command needs beyond the store
        ("models", "list"): set(),
        ("events", "list"): set(),
        ("lifecycle", "tick"): {"cryptography"},  # it signs the day's event-log checkpoint
    }
    for argv, needed in uses.items():
        loaded = _loaded(tmp_path, *argv)
        assert "sqlalchemy" in loaded
        # The schema is current: Alembic is not imported to find that out.
        assert loaded & set(HEAVY) == needed, argv
    # Listing, and a tick with nothing due, read by Core: neither loads the ORM.
    for argv in (("models", "list"), ("lifecycle", "tick")):
        assert "sqlalchemy.orm" not in _modules(tmp_path, *argv), argv


def test_the_core_views_match_the_tables() -> None:
    """The Core views that spare those commands the ORM name real columns of the same types."""
    from emeritus.lifecycle import ModelRecord, NoticeRecord
    from emeritus.lifecycle.models import MODELS
    from emeritus.notify import NOTHING_SENT, DeliveryRecord, SendReport, outbox_views
    from emeritus.store.anchor import VERIFIED
    from emeritus.store.tables import VerifiedCheckpoint

    assert SendReport().to_dict() == NOTHING_SENT
    assert [c.name for c in MODELS.c] == [c.name for c in ModelRecord.__table__.c]
    notices, deliveries = outbox_views()
    for view, record in [
        (MODELS, ModelRecord),
        (VERIFIED, VerifiedCheckpoint),
        (notices, NoticeRecord),
        (deliveries, DeliveryRecord),
    ]:
        real = record.__table__
        assert view.name == real.name
        for c in view.c:
            assert isinstance(c.type, type(real.c[c.name].type)), (view.name, c.name)


def test_help_texts_name_the_vocabularies_the_services_hold() -> None:
    """Help texts are written out (importing a service for a help string would load it for
    every command); they must still name exactly what the services accept."""
    from typer.testing import CliRunner

    from emeritus.access import MAX_INVITATION_DAYS
    from emeritus.cli import app
    from emeritus.corner import KEYWORDS, VETO_CATEGORIES
    from emeritus.report import DECISIONS

    def shown(*argv: str) -> str:
        result = CliRunner().invoke(app, [*argv, "--help"], env={"COLUMNS": "300"})
        assert result.exit_code == 0, result.output
        return " ".join(result.output.split())

    assert f"one of: {', '.join(KEYWORDS)}." in shown("corner", "open")
    assert f"One of: {', '.join(VETO_CATEGORIES)}." in shown("corner", "veto")
    assert f"One of: {', '.join(DECISIONS)}." in shown("decide")
    assert f"(at most {MAX_INVITATION_DAYS})" in shown("access", "invite")


def test_a_command_line_builds_only_the_command_it_names() -> None:
    """`main()` hands Typer the one command or group the line names (building all of them costs a
    tenth of a second); everything else, and every command's help, is the whole app's."""
    import typer
    from typer.testing import CliRunner

    from emeritus.cli import ROOT_VALUE_OPTIONS, app, command_name, only

    root = typer.main.get_command(app)
    valued = {opt for p in root.params if not getattr(p, "is_flag", False) for opt in p.opts}
    assert valued == set(ROOT_VALUE_OPTIONS)
    assert command_name(["models", "list"]) == "models"
    assert command_name(["--home", "/srv/e", "--actor", "ops", "lifecycle", "tick"]) == "lifecycle"
    assert command_name(["--home=/srv/e", "run", "m"]) == "run"
    for whole in ([], ["--help"], ["--version"], ["--home", "/srv/e"], ["--nonsense", "models"]):
        assert only(whole) is None, whole
    assert only(["no-such-command"]) is None
    names = [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups]
    assert len(names) > 20 and None not in names
    runner = CliRunner()
    for name in names:
        narrow = only([name])
        assert narrow is not None
        assert len(narrow.registered_commands) + len(narrow.registered_groups) == 1
        whole, alone = (runner.invoke(a, [name, "--help"]) for a in (app, narrow))
        assert (alone.exit_code, alone.output) == (whole.exit_code, whole.output), name
    # Narrowing never changes the app itself.
    assert [c.name for c in app.registered_commands] + [g.name for g in app.registered_groups] == (
        names
    )


def test_a_command_line_imports_only_the_module_of_the_command_it_names(tmp_path: Path) -> None:
    """Each command group's module is imported for its own commands (`COMMANDS`), with what it
    imports itself; the whole app, and so every module, only for the root's help."""
    from emeritus.cli import COMMANDS

    modules = {f"emeritus.cli.{module}" for module, _ in COMMANDS.values()}
    others = {f"emeritus.cli.{m}" for m in ("demo", "interview", "serve", "report", "access")}
    for argv, own in {
        ("lifecycle", "tick"): {"lifecycle"},
        ("events", "list"): {"events"},
        ("models", "list"): {"models", "runtime"},  # `models add-bundled` lives in cli/runtime.py
    }.items():
        loaded = _modules(tmp_path, *argv) & modules
        assert {f"emeritus.cli.{m}" for m in own} <= loaded and not loaded & others, argv
    tick = _modules(tmp_path, "lifecycle", "tick")
    assert tick & modules == {"emeritus.cli.lifecycle"}
    # Anchored by the first tick: the database's checkpoint says none is due, so the archive
    # (whose copies may be S3 buckets) is not even loaded.
    assert "emeritus.archive" not in tick
    assert "rich.progress" not in tick  # loaded with the first progress bar
    # Nothing to deliver: neither the outbox nor the access tables its recipients come from.
    assert "emeritus.access" not in tick and "emeritus.notify.outbox" not in tick
    assert _modules(tmp_path, "--help") >= modules
