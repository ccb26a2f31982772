"""Storage backends: one interface (`Storage`), found by URL scheme through the `emeritus.storage`
entry point group. The built-in `file` and `s3` backends are registered there exactly as a plugin
in a separate package would be (see pyproject.toml)."""

from __future__ import annotations

import functools
from importlib.metadata import entry_points

from emeritus.archive.storage.base import Progress, Storage, check_path
from emeritus.errors import InvalidInput

GROUP = "emeritus.storage"


def scheme_of(url: str) -> str:
    """The URL's scheme, lower-cased; "file" for a plain path (anything without "://")."""
    return url.split("://", 1)[0].lower() if "://" in url else "file"


@functools.cache
def backend(scheme: str) -> type[Storage]:
    """The backend class registered for `scheme`; only that entry point is loaded, so a broken
    plugin for another scheme cannot get in the way. Looked up once per process: scanning the
    installed distributions costs milliseconds on every cold start otherwise."""
    registered = entry_points(group=GROUP)
    if scheme not in registered.names:
        raise InvalidInput(
            f"unknown storage scheme {scheme!r}: known are {', '.join(sorted(registered.names))}"
        )
    loaded = registered[scheme].load()
    if not (isinstance(loaded, type) and issubclass(loaded, Storage)):
        raise InvalidInput(f"storage backend {registered[scheme].value!r} is not a Storage class")
    return loaded


def backends() -> dict[str, type[Storage]]:
    """Every registered backend, by scheme (loads them all)."""
    return {name: backend(name) for name in sorted(entry_points(group=GROUP).names)}


def open_storage(url: str) -> Storage:
    """Open a storage root: "file:///abs", a plain absolute or relative path, "s3://bucket/prefix",
    or a URL of any other registered scheme. No I/O happens until the first operation."""
    if not url:
        raise InvalidInput("empty storage URL")
    scheme = scheme_of(url)
    if scheme == "file":  # the primary copy: skip the scan of installed plugins on cold starts
        from emeritus.archive.storage.local import LocalStorage

        return LocalStorage(url)
    return backend(scheme)(url)


__all__ = ["Progress", "Storage", "backend", "backends", "check_path", "open_storage", "scheme_of"]
