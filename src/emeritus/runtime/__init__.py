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
    TokenUsage,
    backend_classes,
    open_backend,
)
from emeritus.runtime.bundled import BUNDLED, BundledModel
from emeritus.runtime.canaries import CANARIES, CANARY_SET
from emeritus.runtime.embeddings import (
    Embedder,
    SemanticSummary,
    pair_distances,
    semantic_consistency,
)
from emeritus.runtime.fingerprint import BehaviourReport
from emeritus.runtime.llamacpp import LlamaCppBackend
from emeritus.runtime.mock import MockBackend
from emeritus.runtime.openai import OpenAIBackend
from emeritus.runtime.pool import ModelPool
from emeritus.runtime.preserved import (
    fingerprint_model,
    open_preserved,
    verify_behaviour,
    weights_entry,
)
from emeritus.runtime.prompts import Prompt, render

__all__ = [
    "BUNDLED",
    "CANARIES",
    "CANARY_SET",
    "Backend",
    "BackendError",
    "BehaviourReport",
    "BundledModel",
    "ChatRequest",
    "Chunk",
    "Completion",
    "Embedder",
    "LlamaCppBackend",
    "LoadError",
    "Message",
    "MockBackend",
    "ModelPool",
    "OpenAIBackend",
    "Params",
    "Prompt",
    "SemanticSummary",
    "TokenUsage",
    "backend_classes",
    "fingerprint_model",
    "open_backend",
    "open_preserved",
    "pair_distances",
    "render",
    "semantic_consistency",
    "verify_behaviour",
    "weights_entry",
]
