"""The model registry: lifecycle states and transitions, successors and notices."""

from emeritus.lifecycle.notices import Notice, migration_url, render_feed
from emeritus.lifecycle.registry import ModelInfo, Registry
from emeritus.lifecycle.states import Availability, State, check_name

__all__ = [
    "Availability",
    "ModelInfo",
    "Notice",
    "Registry",
    "State",
    "check_name",
    "migration_url",
    "render_feed",
]
