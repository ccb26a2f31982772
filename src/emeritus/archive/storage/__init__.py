"""Storage backends: one interface, found by URL scheme through the `emeritus.storage` entry
points (the built-in `file` and `s3` are registered the same way as a plugin would be)."""

from __future__ import annotations

from importlib.metadata import entry_points

from emeritus.archive.storage.base import Storage, check_path
from emeritus.errors import InvalidInput


def backends() -> dict[str, type[Storage]]:
    found = {}
    for entry in entry_points(group="emeritus.storage"):
        found[entry.name] = entry.load()
    return found


def open_storage(url: str) -> Storage:
    """`file:///abs`, a plain path, or `s3://bucket/prefix` (or any registered scheme)."""
    scheme = url.split("://", 1)[0] if "://" in url else "file"
    available = backends()
    if scheme not in available:
        raise InvalidInput(
            f"unknown storage scheme {scheme!r} in {url!r}: known are "
            + ", ".join(sorted(available))
        )
    backend: Storage = available[scheme](url)  # type: ignore[call-arg]
    return backend


__all__ = ["Storage", "backends", "check_path", "open_storage"]
