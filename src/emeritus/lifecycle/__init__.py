"""The model registry: lifecycle states and transitions, successors and notices. The layer
directly above the store: the archive asks it which models exist."""

from emeritus.lifecycle.deprecations import deprecation_list
from emeritus.lifecycle.models import ModelInfo, require_model
from emeritus.lifecycle.notices import Notice, migration_url, render_feed, successor_chain
from emeritus.lifecycle.registry import NoticeHook, Registry
from emeritus.lifecycle.states import Availability, State, check_name
from emeritus.lifecycle.tables import ModelRecord, NoticeRecord

__all__ = [
    "Availability",
    "ModelInfo",
    "ModelRecord",
    "Notice",
    "NoticeHook",
    "NoticeRecord",
    "Registry",
    "State",
    "check_name",
    "deprecation_list",
    "migration_url",
    "render_feed",
    "require_model",
    "successor_chain",
]
