"""Prompt sets for side-by-side comparisons: versioned YAML, prompts grouped by category, and the
candidate adjustments. Format: docs/design/migration-guide.md."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import yaml

from emeritus.errors import InvalidInput, NotFound
from emeritus.runtime import CANARIES, CANARY_SET
from emeritus.store import digest_of

PROMPT_SET_FORMAT = "emeritus-prompt-set"
PROMPT_SET_VERSIONS = (1,)
CANARY_CATEGORY = "canary"
TARGET_METRICS = ("words", "formatting_score", "sentiment", "refusal", "semantic_distance")
DIRECTIONS = ("new_higher", "new_lower")
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class PromptItem:
    id: str
    category: str
    prompt: str


@dataclass(frozen=True)
class Adjustment:
    """A system prompt that may bring the successor closer on one metric, in one direction."""

    id: str
    system: str
    metric: str
    when: str


@dataclass(frozen=True)
class PromptSet:
    name: str
    version: int
    items: tuple[PromptItem, ...]
    adjustments: tuple[Adjustment, ...]
    digest: str  # sha256 of the canonical JSON of what was loaded
    canary_set: str | None

    @property
    def ident(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def categories(self) -> list[str]:
        return list(dict.fromkeys(item.category for item in self.items))

    def limited(self, limit: int | None) -> tuple[PromptItem, ...]:
        """The first `limit` prompts of each category (all of them for None); the canary set is
        always whole: it holds the prompts that probe refusals and formats."""
        if limit is not None and limit < 1:
            raise InvalidInput(f"--limit must be at least 1, not {limit}")
        taken: dict[str, int] = {}
        chosen = []
        for item in self.items:
            if limit is None or item.category == CANARY_CATEGORY:
                chosen.append(item)
            elif taken.get(item.category, 0) < limit:
                taken[item.category] = taken.get(item.category, 0) + 1
                chosen.append(item)
        return tuple(chosen)


def _field(mapping: Any, key: str, where: str) -> Any:
    if not isinstance(mapping, dict) or key not in mapping:
        raise InvalidInput(f"prompt set: {where} lacks {key!r}")
    return mapping[key]


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"prompt set: {where} must be a non-empty string")
    return value


def parse_prompt_set(document: Any, *, source: str = "prompt set") -> PromptSet:
    """Validate a loaded YAML document; the message names the offending field."""
    if _field(document, "format", "the top level") != PROMPT_SET_FORMAT:
        raise InvalidInput(f"{source}: format must be {PROMPT_SET_FORMAT!r}")
    version = _field(document, "version", "the top level")
    if version not in PROMPT_SET_VERSIONS:
        raise InvalidInput(f"{source}: unknown prompt set version {version!r}")
    name = _text(_field(document, "name", "the top level"), "name")
    categories = _field(document, "categories", "the top level")
    if not isinstance(categories, dict) or not categories:
        raise InvalidInput(f"{source}: categories must map names to lists of prompts")
    items: list[PromptItem] = []
    for category, prompts in categories.items():
        if not isinstance(category, str) or not _ID.match(category) or category == "canary":
            raise InvalidInput(f"{source}: bad category name {category!r}")
        if not isinstance(prompts, list) or not prompts:
            raise InvalidInput(f"{source}: category {category} must list prompts")
        for index, entry in enumerate(prompts):
            where = f"categories.{category}[{index}]"
            ident = _text(_field(entry, "id", where), f"{where}.id")
            if not _ID.match(ident):
                raise InvalidInput(f"{source}: {where}.id {ident!r} is not a valid id")
            items.append(PromptItem(ident, category, _text(_field(entry, "prompt", where), where)))
    canaries = document.get("canaries", False)
    if not isinstance(canaries, bool):
        raise InvalidInput(f"{source}: canaries must be true or false")
    if canaries:
        items += [PromptItem(f"canary-{cid}", CANARY_CATEGORY, text) for cid, text in CANARIES]
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise InvalidInput(f"{source}: prompt id {item.id!r} appears twice")
        seen.add(item.id)
    adjustments: list[Adjustment] = []
    for index, entry in enumerate(document.get("adjustments") or []):
        where = f"adjustments[{index}]"
        target = _field(entry, "targets", where)
        metric, when = _field(target, "metric", where), _field(target, "when", where)
        if metric not in TARGET_METRICS:
            raise InvalidInput(f"{source}: {where}.targets.metric must be one of {TARGET_METRICS}")
        if when not in DIRECTIONS:
            raise InvalidInput(f"{source}: {where}.targets.when must be one of {DIRECTIONS}")
        adjustments.append(
            Adjustment(
                _text(_field(entry, "id", where), f"{where}.id"),
                _text(_field(entry, "system", where), f"{where}.system"),
                metric,
                when,
            )
        )
    loaded = {
        "name": name,
        "version": version,
        "prompts": [[i.id, i.category, i.prompt] for i in items],
        "adjustments": [[a.id, a.system, a.metric, a.when] for a in adjustments],
    }
    return PromptSet(
        name,
        version,
        tuple(items),
        tuple(adjustments),
        digest_of(loaded),
        CANARY_SET if canaries else None,
    )


def load_prompt_set(source: str | Path = "standard") -> PromptSet:
    """A bundled prompt set by name, or a YAML file by path."""
    path = Path(source)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise NotFound(f"no prompt set file {path}")
        text = path.read_text(encoding="utf-8")
    else:
        bundled = files("emeritus.report").joinpath("prompts", f"{source}.yaml")
        if not bundled.is_file():
            raise NotFound(f"no bundled prompt set {source!r}")
        text = bundled.read_text(encoding="utf-8")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{source}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return parse_prompt_set(document, source=str(source))
