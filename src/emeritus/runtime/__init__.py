"""Inference: backends (embedded llama.cpp, OpenAI-compatible servers, a scripted mock), prompt
formats, the model pool and behavioural fingerprints. Spec: docs/design/runtime.md."""

from emeritus.runtime.backend import (
    Backend,
    BackendError,
    ChatRequest,
    Chunk,
    Completion,
    LoadError,
    Message,
    Params,
    Usage,
    backend_classes,
    open_backend,
)
from emeritus.runtime.embeddings import (
    Embedder,
    SemanticSummary,
    pair_distances,
    semantic_consistency,
)
from emeritus.runtime.prompts import Prompt, render

__all__ = [
    "Backend",
    "BackendError",
    "ChatRequest",
    "Chunk",
    "Completion",
    "Embedder",
    "LoadError",
    "Message",
    "Params",
    "Prompt",
    "SemanticSummary",
    "Usage",
    "backend_classes",
    "open_backend",
    "pair_distances",
    "render",
    "semantic_consistency",
]
