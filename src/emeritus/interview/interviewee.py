"""The interviewed model: the facts its questions name, and the backend it answers through
(an OpenAI-compatible server's model, or its preserved weights in the embedded runtime)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from emeritus.interview.preflight_checks import check_server, preflight
from emeritus.runtime import (
    Backend,
    Deployment,
    EngineBackend,
    OpenAIBackend,
    backend_class,
    deployment_of,
    open_preserved,
    weights_entry,
)
from emeritus.store import human_day

INTERVIEW_CONTEXT = 4096  # tokens: a conversation of `--context-chars` with room to answer

if TYPE_CHECKING:
    from emeritus.archive import Archive
    from emeritus.interview.runner import RunConfig
    from emeritus.lifecycle import Registry


def interview_facts(registry: Registry, model: str) -> dict[str, str]:
    """The facts a protocol's questions may name: those recorded for the model (`emeritus
    facts`), its successor and its retirement day."""
    info = registry.get(model)
    facts = {k: str(v) for k, v in registry.facts(model).items()}
    if info.successor:
        facts["successor"] = info.successor
    if info.retire_at:
        facts["retire_on"] = human_day(info.retire_at)
    return facts


def open_interviewee(
    archive: Archive,
    config: RunConfig,
    *,
    override: Deployment | None = None,
    workers: int | None = None,
) -> tuple[Backend, dict[str, Any], int]:
    """The backend to interview through (the model's deployment, or `override` for this run),
    its provenance for the transcript, and how many sessions run at once; the preflight runs
    first (preserved, every fact, a server serving the model), before anything is written or
    any weights are loaded."""
    preflight(archive, config)
    deployment = deployment_of(archive, config.model, override)
    cls = backend_class(deployment.backend)
    if issubclass(cls, EngineBackend):
        # A managed engine: as many sessions at once as it has slots, each conversation within
        # a slot's context. Batching may change tokens, so the provenance names the engine and
        # its slots (docs/design/engines.md); with one slot a run is reproducible.
        context = max(INTERVIEW_CONTEXT, int(deployment.options.get("context", 0)))
        engine, _size = open_preserved(archive, config.model, deployment, context=context)
        provenance = {
            "backend": engine.describe(),
            "weights_sha256": weights_entry(archive, config.model)["sha256"],
        }
        return engine, provenance, workers or engine.slots or 1
    if not cls.in_process:
        server, _size = open_preserved(archive, config.model, deployment)
        try:
            if isinstance(server, OpenAIBackend):
                check_server(server)
        except BaseException:
            server.close()
            raise
        return server, {"backend": server.describe()}, workers or 4
    backend, _size = open_preserved(
        archive, config.model, deployment, reuse_prefix=True, n_ctx=INTERVIEW_CONTEXT
    )
    provenance = {
        "backend": backend.describe(),
        "weights_sha256": weights_entry(archive, config.model)["sha256"],
    }
    return backend, provenance, 1  # one queue for a model in this process
