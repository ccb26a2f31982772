"""Preflight: before the first question, check everything an interview run needs at its end, so
a run that could not finish is refused in one line and nothing is written (no plan, no session
file, no archive version, no event)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from emeritus.archive import Archive
from emeritus.errors import NotFound
from emeritus.interview.plan import check_facts
from emeritus.runtime import BackendError, ChatRequest, Message, OpenAIBackend, Params

if TYPE_CHECKING:
    from emeritus.interview.runner import RunConfig


def preflight(archive: Archive, config: RunConfig, *, server: OpenAIBackend | None = None) -> None:
    """Refuse a run that could not finish: the model has no preserved object to archive the
    transcript in (NotFound), an item needs a fact nobody supplied (InvalidInput), or, given a
    server, it does not answer or does not serve the model (NotFound). Writes nothing."""
    archive.object(config.model)
    check_facts(config.protocol, {"model": config.model, **config.facts})
    if server is not None:
        check_server(server)


def check_server(server: OpenAIBackend) -> None:
    """The server answers and serves the model: `GET /models` lists it or, where the server has
    no list or lists other names (llama.cpp's serves its one model under any name), a
    1-token chat request is answered."""
    where, model = server.base_url, server.model
    try:
        listed = server.served_models()
    except BackendError as exc:
        raise NotFound(
            f"no server answers at {where} for {model}: {_reason(server, exc)}"
        ) from None
    if listed is not None and model in listed:
        return
    probe = ChatRequest((Message("user", "Hello."),), Params(max_tokens=1))
    try:
        server.chat(probe)
    except BackendError as exc:
        names = "" if listed is None else f" (it lists {_names(listed)})"
        raise NotFound(
            f"the server at {where} does not serve {model}{names}: {_reason(server, exc)}"
        ) from None


def _reason(server: OpenAIBackend, exc: BackendError) -> str:
    text = " ".join(str(exc).split())
    return text.removeprefix(f"openai: {server.model} at {server.base_url}: ")


def _names(listed: list[str]) -> str:
    return ", ".join(listed[:5]) + (", ..." if len(listed) > 5 else "") if listed else "none"
