"""`emeritus deploy`: where a model runs; and the options with which one command runs it
elsewhere (docs/design/runtime.md, "Deployments")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from emeritus.cli.output import JsonOption, console, emit_json
from emeritus.cli.root import open_store
from emeritus.errors import InvalidInput

if TYPE_CHECKING:
    from emeritus.runtime import Deployment

BackendOption = Annotated[
    str | None,
    typer.Option(
        "--backend",
        help="Run on this backend for this command only (default: the model's deployment).",
        show_default=False,
    ),
]
UrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        "--base-url",
        help="Through the OpenAI-compatible server at this /v1 address, for this command only.",
        show_default=False,
    ),
]
ServerModelOption = Annotated[
    str | None,
    typer.Option(
        "--server-model",
        help="The model's name on that server (default: the model's name).",
        show_default=False,
    ),
]


def override_of(
    backend: str | None, url: str | None, server_model: str | None
) -> Deployment | None:
    """The deployment one command's options give, or None to use the model's own. A URL alone
    means the `openai` backend."""
    from emeritus.runtime import Deployment, backend_class

    if backend is None and url is None:
        if server_model is not None:
            raise InvalidInput("--server-model needs --url (or --backend)")
        return None
    chosen = Deployment(backend or "openai", url, server_model, source="override")
    backend_class(chosen.backend).check_deployment(chosen)
    return chosen


def deploy_command(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="A registered model.")],
    backend: Annotated[
        str,
        typer.Option(
            "--backend",
            help="The backend that runs it: an emeritus.backends entry point (llamacpp, "
            "openai, mock, or a plugin's).",
            show_default=False,
        ),
    ],
    url: Annotated[
        str | None,
        typer.Option("--url", help="The server's /v1 address (openai).", show_default=False),
    ] = None,
    server_model: ServerModelOption = None,
    option: Annotated[
        list[str] | None,
        typer.Option(
            "--option",
            help="KEY=VALUE for the backend (repeatable); numbers and booleans are read as "
            "such. A key is never an option: api_key_env=VARIABLE names where it is.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Record where a model runs; every stage (run, fingerprint, verify, interview, judge,
    compare, corner, serve) then opens it there."""
    from emeritus.runtime import Deployment, deploy, parse_options

    chosen = Deployment(backend, url, server_model, parse_options(option or ()))
    with open_store(ctx) as store:
        deploy(store, model, chosen)
    if as_json:
        emit_json({"model": model, **chosen.to_dict()})
        return
    console.print(f"{model} runs on {chosen.describe()}")
