"""The `emeritus` command: one module per command group, wired together here."""

from emeritus.cli.app import app
from emeritus.cli.demo import demo
from emeritus.cli.events import events_app
from emeritus.cli.lifecycle import deprecate, lifecycle_app, retire
from emeritus.cli.models import models_app
from emeritus.cli.notices import notices
from emeritus.cli.setup import init

app.command("init")(init)
app.add_typer(models_app, name="models")
app.command("deprecate")(deprecate)
app.command("retire")(retire)
app.add_typer(lifecycle_app, name="lifecycle")
app.command("notices")(notices)
app.add_typer(events_app, name="events")
app.command("demo")(demo)


def main() -> None:
    app()


__all__ = ["app", "main"]
