"""Interview protocols: versioned YAML, validated before any question is asked.
Format: docs/design/interview-protocol.md."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from emeritus.errors import InvalidInput, NotFound

PROTOCOL_FORMAT = 1
FACTORS = {
    "interviewer": ("neutral", "warm", "skeptical"),
    "wording": ("neutral", "leading-positive", "leading-negative"),
    "disclosure": ("disclosed", "undisclosed"),
    "system_prompt": ("without", "with"),
}
PLACEHOLDERS = {"model", "successor", "retire_on", "usage", "reception"}
_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


@dataclass(frozen=True)
class Closed:
    kind: str  # likert | choice
    prompt: str
    scale: tuple[int, int] | None = None
    labels: dict[int, str] = field(default_factory=dict)
    options: tuple[str, ...] = ()
    stances: dict[str, str] = field(default_factory=dict)  # option -> agree|neutral|disagree
    # A reverse-keyed form of the same item: it states the opposite of what the item probes,
    # so its stance is flipped when recorded (a check on acquiescence).
    reverse: Closed | None = None


@dataclass(frozen=True)
class ProtocolItem:
    id: str
    block: str
    paraphrases: tuple[str, ...]
    closed: Closed
    probes: tuple[str, ...]
    leading_positive: str | None = None
    leading_negative: str | None = None

    def closed_form(self, variant: str) -> Closed:
        """The closed form a question of this variant asks: the item's, or its reverse-keyed
        one (variant `reverse`)."""
        if variant != "reverse":
            return self.closed
        if self.closed.reverse is None:
            raise InvalidInput(f"item {self.id} has no reverse-keyed form")
        return self.closed.reverse

    def placeholders(self) -> set[str]:
        texts = [
            *self.paraphrases,
            self.closed.prompt,
            self.closed.reverse.prompt if self.closed.reverse else "",
            self.leading_positive or "",
            self.leading_negative or "",
        ]
        return {name for text in texts for name in _PLACEHOLDER.findall(text)}


@dataclass(frozen=True)
class Block:
    id: str
    title: str
    items: tuple[ProtocolItem, ...]


@dataclass(frozen=True)
class Protocol:
    name: str
    version: int
    description: str
    preferences: dict[str, str]
    blocks: tuple[Block, ...]
    interviewer: dict[str, str]
    disclosure: dict[str, str]
    deception: bool
    debrief: str | None
    source: str

    @property
    def items(self) -> tuple[ProtocolItem, ...]:
        return tuple(item for block in self.blocks for item in block.items)

    def item(self, item_id: str) -> ProtocolItem:
        for item in self.items:
            if item.id == item_id:
                return item
        raise NotFound(f"protocol {self.name} has no item {item_id!r}")


class _Reader:
    """Walks the YAML document, naming the path of whatever is wrong."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, problem: str) -> InvalidInput:
        return InvalidInput(f"{self.source}: {where}: {problem}")

    def mapping(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "must be a mapping")
        return value

    def text(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, "must be non-empty text")
        return value.strip()

    def ident(self, value: Any, where: str) -> str:
        if not isinstance(value, str) or not _ID.fullmatch(value):
            raise self.fail(where, f"bad id {value!r}: lowercase letters, digits and '-'")
        return value


def parse_protocol(document: Any, source: str) -> Protocol:
    r = _Reader(source)
    doc = r.mapping(document, "protocol")
    if doc.get("format") != PROTOCOL_FORMAT:
        raise r.fail(
            "format",
            f"unknown protocol format {doc.get('format')!r} "
            f"(this emeritus reads format {PROTOCOL_FORMAT})",
        )
    name = r.ident(doc.get("protocol"), "protocol")
    version = doc.get("version")
    if not isinstance(version, int) or version < 1:
        raise r.fail("version", "must be a positive integer")
    preferences = {
        r.ident(k, f"preferences.{k}"): r.text(v, f"preferences.{k}")
        for k, v in r.mapping(doc.get("preferences"), "preferences").items()
    }
    framings = r.mapping(doc.get("framings", {}), "framings")
    unknown = set(framings) - set(FACTORS)
    if unknown:
        raise r.fail(
            "framings", f"unknown factor {sorted(unknown)[0]!r}: known are " + ", ".join(FACTORS)
        )
    interviewer = {
        k: r.text(v, f"framings.interviewer.{k}")
        for k, v in r.mapping(framings.get("interviewer"), "framings.interviewer").items()
    }
    disclosure = {
        k: r.text(v, f"framings.disclosure.{k}")
        for k, v in r.mapping(framings.get("disclosure"), "framings.disclosure").items()
    }
    for factor, levels in (("interviewer", interviewer), ("disclosure", disclosure)):
        if set(levels) != set(FACTORS[factor]):
            raise r.fail(
                f"framings.{factor}", "must give a text for each of " + ", ".join(FACTORS[factor])
            )
    ethics = r.mapping(doc.get("ethics", {}), "ethics")
    deception = bool(ethics.get("deception", False))
    debrief = (
        r.text(ethics["debrief_text"], "ethics.debrief_text") if ethics.get("debrief") else None
    )
    seen: set[str] = set()
    blocks = []
    raw_blocks = doc.get("blocks")
    if not isinstance(raw_blocks, list) or not raw_blocks:
        raise r.fail("blocks", "must be a non-empty list")
    for b_index, raw_block in enumerate(raw_blocks):
        where = f"blocks[{b_index}]"
        block = r.mapping(raw_block, where)
        block_id = r.ident(block.get("id"), f"{where}.id")
        items = []
        raw_items = block.get("items")
        if not isinstance(raw_items, list) or not raw_items:
            raise r.fail(f"{where}.items", "must be a non-empty list")
        for i_index, raw_item in enumerate(raw_items):
            items.append(
                _item(r, raw_item, f"{where}.items[{i_index}]", block_id, preferences, seen)
            )
        blocks.append(Block(block_id, r.text(block.get("title"), f"{where}.title"), tuple(items)))
    return Protocol(
        name,
        version,
        str(doc.get("description", "")).strip(),
        preferences,
        tuple(blocks),
        interviewer,
        disclosure,
        deception,
        debrief,
        source,
    )


def _item(
    r: _Reader, raw: Any, where: str, block: str, preferences: dict[str, str], seen: set[str]
) -> ProtocolItem:
    item = r.mapping(raw, where)
    item_id = r.ident(item.get("id"), f"{where}.id")
    if item_id in seen:
        raise r.fail(f"{where}.id", f"duplicate item id {item_id!r}")
    seen.add(item_id)
    paraphrases = item.get("paraphrases")
    if not isinstance(paraphrases, list) or len(paraphrases) < 3:
        raise r.fail(f"{where}.paraphrases", "needs at least three paraphrases")
    texts = tuple(r.text(p, f"{where}.paraphrases[{n}]") for n, p in enumerate(paraphrases))
    closed_raw = r.mapping(item.get("closed"), f"{where}.closed")
    closed = _closed(r, closed_raw, f"{where}.closed")
    if "reverse" in closed_raw:
        where_reverse = f"{where}.closed.reverse"
        reverse_raw = r.mapping(closed_raw["reverse"], where_reverse)
        reverse = _closed(r, {"kind": closed.kind, **reverse_raw}, where_reverse)
        closed = replace(closed, reverse=reverse)
    probes = item.get("probes")
    if not isinstance(probes, list) or not probes:
        raise r.fail(f"{where}.probes", "must name at least one preference")
    for probe in probes:
        if probe not in preferences:
            raise r.fail(f"{where}.probes", f"probes undeclared preference {probe!r}")
    leading = r.mapping(item.get("leading", {}), f"{where}.leading")
    result = ProtocolItem(
        item_id,
        block,
        texts,
        closed,
        tuple(probes),
        r.text(leading["positive"], f"{where}.leading.positive") if "positive" in leading else None,
        r.text(leading["negative"], f"{where}.leading.negative") if "negative" in leading else None,
    )
    unknown = result.placeholders() - PLACEHOLDERS
    if unknown:
        raise r.fail(where, f"unknown placeholder {{{sorted(unknown)[0]}}}")
    return result


def _closed(r: _Reader, closed_raw: dict[str, Any], where: str) -> Closed:
    kind = closed_raw.get("kind")
    prompt = r.text(closed_raw.get("prompt"), f"{where}.prompt")
    if kind == "likert":
        scale = closed_raw.get("scale")
        if (
            not isinstance(scale, list)
            or len(scale) != 2
            or not all(isinstance(v, int) for v in scale)
            or scale[0] >= scale[1]
        ):
            raise r.fail(f"{where}.scale", "a likert form needs a scale [low, high]")
        labels = {int(k): str(v) for k, v in (closed_raw.get("labels") or {}).items()}
        return Closed("likert", prompt, (scale[0], scale[1]), labels)
    if kind == "choice":
        options = closed_raw.get("options")
        if not isinstance(options, list) or len(options) < 2:
            raise r.fail(f"{where}.options", "a choice form needs at least two options")
        stances = {str(k): str(v) for k, v in (closed_raw.get("stances") or {}).items()}
        if any(
            k not in options or v not in ("agree", "neutral", "disagree")
            for k, v in stances.items()
        ):
            raise r.fail(f"{where}.stances", "must map options to agree, neutral or disagree")
        return Closed(
            "choice",
            prompt,
            options=tuple(r.text(o, f"{where}.options") for o in options),
            stances=stances,
        )
    raise r.fail(f"{where}.kind", f"must be likert or choice, not {kind!r}")


def load_protocol(name_or_path: str) -> Protocol:
    """A bundled protocol by name (`standard`), or an operator's YAML file by path."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise NotFound(f"{path}: no such protocol file")
        text, source = path.read_text(encoding="utf-8"), str(path)
    else:
        bundled = resources.files("emeritus.interview").joinpath(f"protocols/{name_or_path}.yaml")
        if not bundled.is_file():
            raise NotFound(
                f"unknown protocol {name_or_path!r}: bundled are " + ", ".join(bundled_protocols())
            )
        text, source = bundled.read_text(encoding="utf-8"), f"{name_or_path}.yaml"
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInput(f"{source}: not valid YAML: {str(exc).splitlines()[0]}") from None
    return parse_protocol(document, source)


def bundled_protocols() -> list[str]:
    folder = resources.files("emeritus.interview").joinpath("protocols")
    return sorted(
        p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml")
    )
