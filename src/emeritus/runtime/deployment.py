"""Deployments: which backend runs a model and how to reach it, recorded per model and read by
every stage that runs it. Spec: docs/design/runtime.md, "Deployments"."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from emeritus.errors import InvalidInput
from emeritus.lifecycle import require_model
from emeritus.runtime.backend import backend_class
from emeritus.runtime.tables import DeploymentRecord
from emeritus.store import Store, append_event, canonical_json, utc_now

# The backend that runs a preserved model with no recorded deployment, by its weights' format.
DEFAULT_BACKENDS = {"gguf": "llamacpp", "safetensors": "transformers"}


@dataclass(frozen=True)
class Deployment:
    backend: str
    url: str | None = None
    server_model: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    # How it came about: "recorded" (emeritus deploy), "default" (the weights' format) or
    # "override" (an option on one command).
    source: str = "recorded"

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "url": self.url,
            "server_model": self.server_model,
            "options": dict(self.options),
            "source": self.source,
        }

    def describe(self) -> str:
        """One line, for `models show` and error messages."""
        parts = [self.backend]
        if self.url:
            parts.append(f"at {self.url}")
        if self.server_model:
            parts.append(f"as {self.server_model}")
        parts.extend(f"{k}={json.dumps(v)}" for k, v in sorted(self.options.items()))
        return " ".join(parts) + f" ({self.source})"


def parse_options(given: Iterable[str]) -> dict[str, Any]:
    """`KEY=VALUE` pairs; a value is read as JSON where it parses (numbers, booleans), else text."""
    options: dict[str, Any] = {}
    for pair in given:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key or not key.replace("_", "").replace("-", "").isalnum():
            raise InvalidInput(f"bad option {pair!r}: write KEY=VALUE, KEY of letters, digits, '_'")
        if key in options:
            raise InvalidInput(f"option {key!r} is given twice")
        if key == "api_key":  # the event log is for ever: name the variable that holds it
            raise InvalidInput("an API key is never recorded: give api_key_env=VARIABLE")
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        if not isinstance(value, str | int | float | bool):
            value = raw  # a JSON list or object is taken as the text it is
        options[key] = value
    return options


def deploy(
    store: Store, model: str, deployment: Deployment, *, now: datetime | None = None
) -> None:
    """Record where MODEL runs, replacing what was recorded, as one `runtime.deployed` event.
    An unknown backend, or a setting the backend refuses, changes nothing."""
    backend_class(deployment.backend).check_deployment(deployment)
    now = now or utc_now()
    recorded = Deployment(
        deployment.backend, deployment.url, deployment.server_model, dict(deployment.options)
    )
    with store.transaction() as session:
        record = require_model(session, model, lock=True)
        row = session.scalar(select(DeploymentRecord).where(DeploymentRecord.model_id == record.id))
        if row is None:
            row = DeploymentRecord(model_id=record.id, backend="", options="{}", deployed_at=now)
            session.add(row)
        row.backend, row.url = recorded.backend, recorded.url
        row.server_model, row.deployed_at = recorded.server_model, now
        row.options = canonical_json(dict(recorded.options))
        payload = recorded.to_dict()
        del payload["source"]
        append_event(
            session,
            kind="runtime.deployed",
            subject=f"model:{model}",
            actor=store.settings.actor,
            payload=payload,
        )


def recorded_deployment(store: Store, model: str) -> Deployment | None:
    """The deployment recorded for MODEL, or None (it runs on its format's default)."""
    with store.transaction() as session:
        record = require_model(session, model)
        row = session.scalar(select(DeploymentRecord).where(DeploymentRecord.model_id == record.id))
        if row is None:
            return None
        return Deployment(row.backend, row.url, row.server_model, json.loads(row.options))
