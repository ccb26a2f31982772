"""The root `emeritus` command: global options, exit statuses, and error handling."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from emeritus import __version__
from emeritus.errors import EmeritusError

if TYPE_CHECKING:  # the store (SQLAlchemy) loads when a command opens it, not for --help
    from emeritus.store import Settings, Store

EXIT_STATUS = """\b
Exit status:
  0  success
  1  unexpected error
  2  bad input: a malformed date, name or option (nothing was changed)
  3  not found: an unknown model or notice (nothing was changed)
  4  refused by the rules: an illegal transition, a notice too short (nothing was changed)
  5  verification failed: the event chain is broken, an archive copy is damaged,
     or a model's behaviour differs from its fingerprint
  6  a model backend failed (a model that cannot be loaded, a server that does not answer)
  7  an essay's text no longer matches what the model wrote, or its approval carries
     no valid reviewer's signature (review and publication are refused)
"""


class EmeritusGroup(TyperGroup):
    """Turns a refused operation into one line on stderr and its documented exit status."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click Context
        try:
            return super().invoke(ctx)
        except EmeritusError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    name="emeritus",
    cls=EmeritusGroup,
    help="Retire language models the careful way: announce, preserve, interview, report.",
    epilog=EXIT_STATUS,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"emeritus {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="Data directory (default: $EMERITUS_HOME, else the user data directory).",
            show_default=False,
        ),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option(
            help="Who is acting, recorded in every event (default: $EMERITUS_ACTOR or the login).",
            show_default=False,
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    from emeritus.store import Settings

    ctx.obj = Settings.from_env(home=home).with_actor(actor)


def settings_of(ctx: typer.Context) -> Settings:
    from emeritus.store import Settings

    settings = ctx.find_root().obj
    assert isinstance(settings, Settings)
    return settings


@contextlib.contextmanager
def open_store(ctx: typer.Context) -> Iterator[Store]:
    from emeritus.store import Store

    with Store.open(settings_of(ctx)) as store:
        yield store
