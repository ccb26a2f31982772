"""The model registry: lifecycle states and transitions, successors and notices; side-by-side
comparison of a model and its successor for migration guides."""

from emeritus.lifecycle.comparison import CompareConfig, check_models, compare
from emeritus.lifecycle.metrics import HABITS, METRICS, REFUSAL_LEXICON
from emeritus.lifecycle.notices import Notice, migration_url, render_feed
from emeritus.lifecycle.promptset import Adjustment, PromptItem, PromptSet, load_prompt_set
from emeritus.lifecycle.registry import ModelInfo, Registry
from emeritus.lifecycle.states import Availability, State, check_name
from emeritus.lifecycle.tables import ModelRecord

__all__ = [
    "HABITS",
    "METRICS",
    "REFUSAL_LEXICON",
    "Adjustment",
    "Availability",
    "CompareConfig",
    "ModelInfo",
    "ModelRecord",
    "Notice",
    "PromptItem",
    "PromptSet",
    "Registry",
    "State",
    "check_models",
    "check_name",
    "compare",
    "load_prompt_set",
    "migration_url",
    "render_feed",
]
