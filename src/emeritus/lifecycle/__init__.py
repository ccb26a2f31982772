"""The model registry: lifecycle states and transitions, successors and notices. The layer
directly above the store: the archive asks it which models exist.

Names load with the module that holds them, on first use: `emeritus models list` reads the
registry by Core (`registered_models`) and loads neither the ORM nor the registry's tables."""

from __future__ import annotations

from typing import TYPE_CHECKING

from emeritus.lazy import lazy_names

if TYPE_CHECKING:
    from emeritus.lifecycle.deprecations import deprecation_list
    from emeritus.lifecycle.models import (
        CHAIN_LIMIT,
        ModelInfo,
        any_deprecated,
        registered_models,
        require_model,
    )
    from emeritus.lifecycle.notices import Notice, migration_url, render_feed, successor_chain
    from emeritus.lifecycle.registry import NoticeHook, Registry
    from emeritus.lifecycle.states import Availability, State, check_name
    from emeritus.lifecycle.tables import ModelRecord, NoticeRecord

# Each public name, and the module under emeritus.lifecycle that holds it.
_MODULES = {
    "CHAIN_LIMIT": "models",
    "Availability": "states",
    "ModelInfo": "models",
    "ModelRecord": "tables",
    "Notice": "notices",
    "NoticeHook": "registry",
    "NoticeRecord": "tables",
    "Registry": "registry",
    "State": "states",
    "any_deprecated": "models",
    "check_name": "states",
    "deprecation_list": "deprecations",
    "migration_url": "notices",
    "registered_models": "models",
    "render_feed": "notices",
    "require_model": "models",
    "successor_chain": "notices",
}


__getattr__, __dir__ = lazy_names(__name__, _MODULES, globals())


__all__ = [
    "CHAIN_LIMIT",
    "Availability",
    "ModelInfo",
    "ModelRecord",
    "Notice",
    "NoticeHook",
    "NoticeRecord",
    "Registry",
    "State",
    "any_deprecated",
    "check_name",
    "deprecation_list",
    "migration_url",
    "registered_models",
    "render_feed",
    "require_model",
    "successor_chain",
]
