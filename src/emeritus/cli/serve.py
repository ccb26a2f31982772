"""`emeritus serve`: the gateway (docs/design/access.md, "The gateway"; its admission layer:
docs/design/admission.md).

The operator key comes from EMERITUS_ADMIN_KEY or --admin-key-file; without either, one is made
for this run and printed once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from emeritus.cli.output import console
from emeritus.cli.root import open_store
from emeritus.errors import InvalidInput

MockOption = Annotated[
    Path | None,
    typer.Option(
        help="Answer every model with this mock script (testing the gateway only).",
        show_default=False,
    ),
]
QueueWaitOption = Annotated[
    float,
    typer.Option(
        help="Seconds a request may wait for a free slot of its model; then 503 with "
        "Retry-After (0: refuse at once when the model is busy)."
    ),
]
StallTimeoutOption = Annotated[
    float,
    typer.Option(
        help="Seconds a streamed answer may wait for a client that stopped reading; then "
        "its generation is cut off (status 499) and the model freed."
    ),
]
PrefixCacheOption = Annotated[
    bool,
    typer.Option(
        help="Reuse the evaluated prompt prefix between requests, as llama.cpp's server "
        "does (fingerprints and interviews always start from an empty context)."
    ),
]


def serve_command(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    admin_key_file: Annotated[
        Path | None,
        typer.Option(help="A file holding the operator key.", show_default=False),
    ] = None,
    budget_mb: Annotated[
        int | None,
        typer.Option(help="Memory budget for loaded models, in MB.", show_default=False),
    ] = None,
    keep_alive: Annotated[float, typer.Option(help="Seconds an idle model stays loaded.")] = 300.0,
    mock: MockOption = None,
    queue_wait: QueueWaitOption = 30.0,
    stall_timeout: StallTimeoutOption = 1.0,
    prefix_cache: PrefixCacheOption = True,
) -> None:
    """Serve retired models (OpenAI-compatible) to the principals holding grants for them."""
    from emeritus.archive import Archive
    from emeritus.gateway import (
        AdmissionSettings,
        mock_opener,
        new_admin_key,
        preserved_opener,
        serve,
    )

    if not 0 < port < 65536:
        raise InvalidInput(f"port must be between 1 and 65535, not {port}")
    admin_key = os.environ.get("EMERITUS_ADMIN_KEY")
    if admin_key_file is not None:
        try:
            admin_key = admin_key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise InvalidInput(f"cannot read {admin_key_file}: {exc.strerror}") from None
    if admin_key is not None and len(admin_key) < 24:
        raise InvalidInput("the operator key must be at least 24 characters")
    admission = AdmissionSettings(queue_wait=queue_wait, stall_timeout=stall_timeout)
    if admin_key is None:
        admin_key = new_admin_key()
        console.print(f"operator key for this run: {admin_key}", markup=False, soft_wrap=True)
    with open_store(ctx) as store:
        opener = (
            mock_opener(mock)
            if mock
            else preserved_opener(Archive(store), reuse_prefix=prefix_cache)
        )
        console.print(f"emeritus gateway on http://{host}:{port}/v1", markup=False)
        console.print(
            f"console on http://{host}:{port}/console/ (accounts: emeritus access users add)",
            markup=False,
        )
        serve(
            store,
            host=host,
            port=port,
            admin_key=admin_key,
            opener=opener,
            budget_bytes=budget_mb * 1_000_000 if budget_mb else None,
            keep_alive=keep_alive,
            admission=admission,
        )
