"""How a response tells a client that its model is going away: `Deprecation` (RFC 9745, the
moment it was deprecated as `@<unix time>`), `Sunset` (RFC 8594, an HTTP date) and a `Link` to
the successor with `rel="successor-version"`; and the lifecycle fields `/v1/models` lists."""

from __future__ import annotations

from email.utils import format_datetime
from typing import Any

from emeritus.lifecycle import ModelInfo, State


def lifecycle_headers(info: ModelInfo, *, base_url: str = "") -> dict[str, str]:
    if info.state is State.ACTIVE:
        return {}
    headers: dict[str, str] = {}
    if info.announced_at is not None:
        headers["Deprecation"] = f"@{int(info.announced_at.timestamp())}"
    sunset = info.retired_at or info.retire_at
    if sunset is not None:
        headers["Sunset"] = format_datetime(sunset, usegmt=True)
    if info.successor:
        headers["Link"] = f'<{base_url}/v1/models/{info.successor}>; rel="successor-version"'
    return headers


def model_entry(info: ModelInfo) -> dict[str, Any]:
    """One `/v1/models` entry: OpenAI's fields, then the model's lifecycle."""

    def unix(value: Any) -> int | None:
        return None if value is None else int(value.timestamp())

    return {
        "id": info.name,
        "object": "model",
        "created": unix(info.created_at),
        "owned_by": "emeritus",
        "state": str(info.state),
        "deprecated_at": unix(info.announced_at),
        "retire_at": unix(info.retire_at),
        "retire_firm": info.retire_firm if info.retire_at and not info.retired_at else None,
        "retired_at": unix(info.retired_at),
        "successor": info.successor,
        "availability": str(info.availability) if info.availability else None,
    }
