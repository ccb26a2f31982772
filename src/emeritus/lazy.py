"""A package's public names, each loaded with the module that holds it on first use (PEP 562),
so that a command line importing the package loads only what it touches."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any


def lazy_names(
    package: str,
    modules: Mapping[str, str],
    namespace: dict[str, Any],
    *,
    first: Sequence[str] = (),
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The package's `__getattr__` and `__dir__`: `modules` maps each name to the submodule
    holding it; `first` names submodules to import before any (their side effects, such as
    tables joining a metadata, must come first); a name, once loaded, is kept in `namespace`."""

    def __getattr__(name: str) -> Any:
        module = modules.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        for earlier in first:
            importlib.import_module(f"{package}.{earlier}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted([*namespace, *modules])

    return __getattr__, __dir__
