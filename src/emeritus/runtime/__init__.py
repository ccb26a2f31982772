"""Inference: backends (embedded llama.cpp, transformers, managed engines, OpenAI-compatible
servers, a scripted mock) opened by name through each model's deployment, prompt formats, the
model pool and behavioural fingerprints. Specs: docs/design/runtime.md, docs/design/engines.md."""

from emeritus.runtime.backend import (
    Backend,
    BackendError,
    ChatRequest,
    Chunk,
    Completion,
    ContextExceeded,
    LoadError,
    Message,
    Params,
    TokenUsage,
    backend_class,
    backend_classes,
    open_backend,
)
from emeritus.runtime.bundled import BUNDLED, BundledModel
from emeritus.runtime.canaries import CANARIES, CANARY_SET
from emeritus.runtime.conversion import CONVERTED, converted_dir
from emeritus.runtime.deployment import (
    DEFAULT_BACKENDS,
    Deployment,
    deploy,
    parse_options,
    recorded_deployment,
)
from emeritus.runtime.embeddings import (
    Embedder,
    SemanticSummary,
    pair_distances,
    semantic_consistency,
)
from emeritus.runtime.engine_backends import (
    CommandEngineBackend,
    EngineBackend,
    LlamaServerBackend,
    llama_server_argv,
)
from emeritus.runtime.engines import (
    Engine,
    EngineState,
    EngineUnavailable,
    engine_states,
    stop_engine,
)
from emeritus.runtime.fingerprint import BehaviourReport, Parting, across
from emeritus.runtime.llamacpp import LlamaCppBackend
from emeritus.runtime.mock import MockBackend
from emeritus.runtime.openai import OpenAIBackend
from emeritus.runtime.pool import ModelPool
from emeritus.runtime.preserved import (
    PreservedModel,
    deployment_of,
    fingerprint_model,
    open_preserved,
    verify_behaviour,
    weights_entries,
    weights_entry,
)
from emeritus.runtime.prompts import Prompt, render
from emeritus.runtime.tables import DeploymentRecord
from emeritus.runtime.transformers import TransformersBackend

__all__ = [
    "BUNDLED",
    "CANARIES",
    "CANARY_SET",
    "CONVERTED",
    "DEFAULT_BACKENDS",
    "Backend",
    "BackendError",
    "BehaviourReport",
    "BundledModel",
    "ChatRequest",
    "Chunk",
    "CommandEngineBackend",
    "Completion",
    "ContextExceeded",
    "Deployment",
    "DeploymentRecord",
    "Embedder",
    "Engine",
    "EngineBackend",
    "EngineState",
    "EngineUnavailable",
    "LlamaCppBackend",
    "LlamaServerBackend",
    "LoadError",
    "Message",
    "MockBackend",
    "ModelPool",
    "OpenAIBackend",
    "Params",
    "Parting",
    "PreservedModel",
    "Prompt",
    "SemanticSummary",
    "TokenUsage",
    "TransformersBackend",
    "across",
    "backend_class",
    "backend_classes",
    "converted_dir",
    "deploy",
    "deployment_of",
    "engine_states",
    "fingerprint_model",
    "llama_server_argv",
    "open_backend",
    "open_preserved",
    "pair_distances",
    "parse_options",
    "recorded_deployment",
    "render",
    "semantic_consistency",
    "stop_engine",
    "verify_behaviour",
    "weights_entries",
    "weights_entry",
]
