"""The model registry: lifecycle states and transitions, successors and notices. The layer
directly above the store: the archive asks it which models exist."""

from emeritus.lifecycle.notices import Notice, migration_url, render_feed
from emeritus.lifecycle.registry import ModelInfo, Registry, require_model
from emeritus.lifecycle.states import Availability, State, check_name
from emeritus.lifecycle.tables import ModelRecord

__all__ = [
    "Availability",
    "ModelInfo",
    "ModelRecord",
    "Notice",
    "Registry",
    "State",
    "check_name",
    "migration_url",
    "render_feed",
    "require_model",
]
