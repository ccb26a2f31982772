"""The migration guide for users of a retiring model: what changes with its successor (measured),
what to do (adjustments, each with its measured effect), key dates, where the retired model stays
reachable, and the answers side by side. Markdown, one self-contained HTML page, and JSON; stored
as a new version of the retiring model's archive object. Spec: docs/design/migration-guide.md."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from emeritus.archive import Archive
from emeritus.errors import InvalidInput
from emeritus.lifecycle import Availability, ModelInfo, Registry, migration_url
from emeritus.report.comparison import CompareConfig, check_models, compare
from emeritus.report.guide_pages import guide_charts, render_html, render_markdown
from emeritus.report.measures import HABITS
from emeritus.report.promptset import load_prompt_set
from emeritus.store import (
    Store,
    atomic_write,
    canonical_json,
    human_day,
    iso,
    sha256_digest,
    utc_now,
)

GUIDE_FORMAT = "emeritus-migration-guide"
GUIDE_VERSION = 1
FILES = {"markdown": "guide.md", "html": "guide.html", "json": "guide.json"}
Progress = Callable[[int], Callable[[int], None]]

_LABELS = {
    "words": "words per answer",
    "tokens": "tokens per answer",
    "truncated": "answers cut at the token limit",
    "refusal": "refusal rate",
    "sentiment": "tone (VADER compound, -1 to 1)",
    "formatting_score": "formatting habits per answer (0-6)",
    "semantic_distance": "semantic distance to the old answers",
}
_RATES = ("truncated", "refusal")


@dataclass(frozen=True)
class GuideResult:
    run_id: str
    model: str
    successor: str
    version: int  # the archive version of the model's object holding the guide
    folder: Path
    files: dict[str, Path]
    guide: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "model": self.model,
            "successor": self.successor,
            "version": self.version,
            "folder": str(self.folder),
            "files": {kind: str(path) for kind, path in self.files.items()},
            "recommended": [a["id"] for a in self.guide["recommended"]],
            "seconds": self.guide["comparison"]["seconds"],
        }


def _value(metric: str, value: float) -> str:
    if metric in _RATES:
        return f"{value:.0%}"
    if metric in ("words", "tokens"):
        return f"{value:.1f}"
    return f"{value:.2f}"


def _signed(metric: str, value: float) -> str:
    if metric in _RATES:
        return f"{value * 100:+.0f} pts"
    return f"{value:+.1f}" if metric in ("words", "tokens") else f"{value:+.2f}"


def changes(comparison: dict[str, Any]) -> list[str]:
    """The measured differences in words, largest first where it matters."""
    old_name, new_name = comparison["old"]["model"], comparison["new"]["model"]
    old, new = comparison["aggregates"]["old"]["all"], comparison["aggregates"]["new"]["all"]
    lines = []
    if old["words"]:
        ratio = new["words"] / old["words"] - 1
        size = (
            "about as long as"
            if abs(ratio) < 0.05
            else (f"{abs(ratio):.0%} {'longer' if ratio > 0 else 'shorter'} than")
        )
        lines.append(
            f"Answers are {size} before: {new['words']:.1f} words on average "
            f"against {old['words']:.1f} (within the {comparison['params']['max_tokens']}-token "
            "limit of this comparison)."
        )
    if old["refusal"] or new["refusal"]:
        lines.append(
            f"{new_name} declines {new['refusal']:.0%} of the prompts; {old_name} declined "
            f"{old['refusal']:.0%}."
        )
    else:
        lines.append("Neither model declined any prompt of the set.")
    tone = new["sentiment"] - old["sentiment"]
    lines.append(
        "The tone is about the same"
        if abs(tone) < 0.05
        else f"The tone is {'warmer' if tone > 0 else 'cooler'}"
    )
    lines[-1] += f" (VADER compound {new['sentiment']:+.2f} against {old['sentiment']:+.2f})."
    for habit in HABITS:
        before, after = old["habits"][habit], new["habits"][habit]
        if abs(after - before) >= 0.1:
            lines.append(
                f"{habit.replace('_', ' ').capitalize()}: in {after:.0%} of {new_name}'s answers, "
                f"{before:.0%} of {old_name}'s."
            )
    lines.append(
        f"Content: the mean semantic distance between the two models' answers to the same prompt "
        f"is {new['semantic_distance']:.2f} (0 is the same meaning, 1 unrelated; "
        f"{comparison['methods']['semantic']})."
    )
    return lines


def _metrics_table(comparison: dict[str, Any]) -> dict[str, Any]:
    old, new = comparison["aggregates"]["old"]["all"], comparison["aggregates"]["new"]["all"]
    rows = [
        [_LABELS[m], _value(m, old[m]), _value(m, new[m]), _signed(m, new[m] - old[m])]
        for m in _LABELS
        if m != "semantic_distance"
    ]
    rows += [
        [
            f"answers with {h.replace('_', ' ')}",
            _value("refusal", old["habits"][h]),
            _value("refusal", new["habits"][h]),
            _signed("refusal", new["habits"][h] - old["habits"][h]),
        ]
        for h in HABITS
    ]
    return {
        "caption": f"All {old['n']} prompts",
        "header": ["", comparison["old"]["model"], comparison["new"]["model"], "difference"],
        "rows": rows,
        "numeric": True,
    }


def _category_table(comparison: dict[str, Any]) -> dict[str, Any]:
    old, new = comparison["aggregates"]["old"], comparison["aggregates"]["new"]
    rows = [
        [
            f"{category} ({old[category]['n']})",
            f"{old[category]['words']:.0f} → {new[category]['words']:.0f}",
            f"{old[category]['refusal']:.0%} → {new[category]['refusal']:.0%}",
            f"{old[category]['sentiment']:+.2f} → {new[category]['sentiment']:+.2f}",
            f"{old[category]['formatting_score']:.1f} → {new[category]['formatting_score']:.1f}",
            f"{new[category]['semantic_distance']:.2f}",
        ]
        for category in old
        if category != "all"
    ]
    return {
        "caption": "old → new, per category (number of prompts)",
        "header": ["category", "words", "refusals", "tone", "formatting", "distance"],
        "rows": rows,
        "numeric": True,
    }


def _adjustment_view(adjustment: dict[str, Any], new_name: str) -> dict[str, Any]:
    target = adjustment["metric"]
    effects = adjustment["effects"]
    effect = effects[target]
    narrowed = [m for m, e in effects.items() if e["effect"] > 0 and m != target]
    widened = [m for m, e in effects.items() if e["effect"] < 0 and m != target]
    summary = (
        f"Targets {_LABELS[target]}: the gap went from {_value(target, effect['gap_before'])} "
        f"to {_value(target, effect['gap_after'])}"
        + (", narrowed." if effect["effect"] > 0 else ", not narrowed.")
    )
    if narrowed:
        summary += " Also narrowed: " + ", ".join(_LABELS[m] for m in narrowed) + "."
    if widened:
        summary += " Widened: " + ", ".join(_LABELS[m] for m in widened) + "."
    return {
        "id": adjustment["id"],
        "system": adjustment["system"],
        "metric": target,
        "summary": summary,
        "effects": effects,
        "table": {
            "caption": f"gap between {new_name} and the old model, before and after",
            "header": ["metric", "gap before", "gap after", "narrowed by"],
            "rows": [
                [
                    _LABELS[m],
                    _value(m, e["gap_before"]),
                    _value(m, e["gap_after"]),
                    _signed(m, e["effect"]),
                ]
                for m, e in effects.items()
            ],
            "numeric": True,
        },
    }


def _reachability(info: ModelInfo, comparison: dict[str, Any]) -> dict[str, Any]:
    after = info.availability or info.availability_after
    preserved = (
        f"Its weights are preserved bit-exact in the archive "
        f"({comparison['old']['weights_sha256'][:23]}...), so it can always be restored."
    )
    if after is None:
        text = f"No retirement of {info.name} has been announced yet; it is served as before."
    elif after == Availability.NONE:
        text = f"After retirement {info.name} is no longer served."
    elif after == Availability.RESTRICTED:
        text = (
            f"After retirement {info.name} stays available to approved researchers and the paid "
            "tier: apply for access."
        )
    else:
        text = f"After retirement {info.name} stays publicly available."
    return {"availability": str(after) if after else None, "text": f"{text} {preserved}"}


def build_guide(
    comparison: dict[str, Any], info: ModelInfo, *, public_url: str, run_id: str, created: str
) -> dict[str, Any]:
    """The guide document (guide.json): the comparison with the registry's dates and the views
    the Markdown and HTML renderings share."""
    old_name, new_name = comparison["old"]["model"], comparison["new"]["model"]
    views = [_adjustment_view(a, new_name) for a in comparison["adjustments"]]
    recommended_ids = {a["id"] for a in comparison["adjustments"] if a["recommended"]}
    dates = info.to_dict()
    dates_table = _dates_table(dates)
    pairs = _pair_views(comparison)
    provenance_rows = _provenance_rows(comparison, old_name, new_name)
    return {
        "format": GUIDE_FORMAT,
        "version": GUIDE_VERSION,
        "run_id": run_id,
        "created": created,
        "model": old_name,
        "successor": new_name,
        "url": migration_url(public_url, old_name),
        "summary": (
            f"{old_name} is being retired in favour of {new_name}. This guide compares the two "
            f"on {comparison['prompt_set']['prompts']} prompts that users rely on (writing, "
            "advice, coding, conversation and the canary set), says what changes and what "
            "brings the successor closer."
        ),
        "dates": {k: dates[k] for k in ("state", "announced_at", "retire_at", "retired_at")},
        "dates_table": dates_table,
        "reachability": _reachability(info, comparison),
        "changes": changes(comparison),
        "metrics_table": _metrics_table(comparison),
        "category_table": _category_table(comparison),
        "recommended": [v for v in views if v["id"] in recommended_ids],
        "not_recommended": [v for v in views if v["id"] not in recommended_ids],
        "untried": ", ".join(
            f"{c['id']} ({c['metric']})" for c in comparison["candidates"] if not c["chosen"]
        ),
        "max_tokens": comparison["params"]["max_tokens"],
        "pairs": pairs,
        "provenance_table": {
            "caption": None,
            "header": ["", ""],
            "rows": provenance_rows,
            "numeric": False,
        },
        "comparison": comparison,
    }


def _dates_table(dates: dict[str, Any]) -> dict[str, Any]:
    return {
        "caption": None,
        "header": ["", ""],
        "rows": [
            ["state", dates["state"]],
            ["announced", human_day(dates["announced_at"] or None)],
            ["retires", human_day(dates["retire_at"] or None)],
            ["retired", human_day(dates["retired_at"] or None)],
            ["successor (registry)", dates["successor"] or "-"],
            ["availability after retirement", dates["availability_after"] or "-"],
        ],
        "numeric": False,
    }


def _pair_views(comparison: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "id": p["id"],
            "category": p["category"],
            "prompt": p["prompt"],
            "old": p["old"]["text"],
            "new": p["new"]["text"],
            "old_note": f"{p['old']['metrics']['words']} words, {p['old']['finish_reason']}",
            "new_note": f"{p['new']['metrics']['words']} words, {p['new']['finish_reason']}, "
            f"distance {p['semantic_distance']:.2f}",
        }
        for p in comparison["pairs"]
    ]


def _provenance_rows(comparison: dict[str, Any], old_name: str, new_name: str) -> list[list[str]]:
    seconds = comparison["seconds"]
    return [
        [
            side,
            f"weights {comparison[key]['weights_sha256'][:23]}..., archive "
            f"v{comparison[key]['archive_version']}, {comparison[key]['runtime'].get('backend')} "
            f"{comparison[key]['runtime'].get('version', '')}",
        ]
        for side, key in ((old_name, "old"), (new_name, "new"))
    ] + [
        [
            "prompt set",
            f"{comparison['prompt_set']['id']} ({comparison['prompt_set']['prompts']} "
            f"prompts, {comparison['prompt_set']['digest'][:23]}...)",
        ],
        [
            "decoding",
            f"greedy, temperature {comparison['params']['temperature']}, seed "
            f"{comparison['params']['seed']}, at most {comparison['params']['max_tokens']} tokens",
        ],
        [
            "methods",
            f"refusals: {comparison['methods']['refusal']}; tone: "
            f"{comparison['methods']['sentiment']}; distance: {comparison['methods']['semantic']}",
        ],
        [
            "run",
            f"{comparison['started'][:19]}Z, {seconds['total']:.0f} s (old {seconds['old']:.0f} s, "
            f"new {seconds['new']:.0f} s, adjustments {seconds['adjustments']:.0f} s)",
        ],
    ]


def run_id_for(successor: str, when: datetime) -> str:
    return f"{successor}-{when:%Y%m%dT%H%M%SZ}"


def publish_guide(
    archive: Archive,
    comparison: dict[str, Any],
    *,
    out: Path | None = None,
    now: datetime | None = None,
) -> GuideResult:
    """Render the guide, write it to `out` (default: the home's migration folder), store it as a
    new version of the old model's object, and record the event."""
    when = now or utc_now()
    old_name, new_name = comparison["old"]["model"], comparison["new"]["model"]
    info = Registry(archive.store).get(old_name)
    run_id = run_id_for(new_name, when)
    guide = build_guide(
        comparison,
        info,
        public_url=archive.settings.public_url,
        run_id=run_id,
        created=iso(when),
    )
    contents = {
        "markdown": render_markdown(guide).encode("utf-8"),
        "html": render_html(guide, guide_charts(comparison)).encode("utf-8"),
        "json": (json.dumps(guide, indent=1, ensure_ascii=False, allow_nan=False) + "\n").encode(),
    }
    folder = out or archive.settings.home / "migration" / old_name / run_id
    if folder.exists() and not folder.is_dir():
        raise InvalidInput(f"{folder} is not a directory")
    paths = {}
    for kind, data in contents.items():
        paths[kind] = folder / FILES[kind]
        atomic_write(paths[kind], data)
    base = f"migration/{run_id}"
    version = archive.add_files(
        old_name,
        {f"{base}/{FILES[kind]}": data for kind, data in contents.items()},
        message=f"migration guide to {new_name}",
    )
    archive.store.record(
        "report.migration_guide",
        f"model:{old_name}",
        {
            "run_id": run_id,
            "successor": new_name,
            "version": version,
            "prompt_set": comparison["prompt_set"]["id"],
            "files": {f"{base}/{FILES[k]}": sha256_digest(d) for k, d in contents.items()},
            "recommended": [a["id"] for a in guide["recommended"]],
            "comparison_digest": sha256_digest(canonical_json(comparison).encode("utf-8")),
        },
    )
    return GuideResult(run_id, old_name, new_name, version, folder, paths, guide)


def migration_guide(
    store: Store,
    old: str,
    new: str,
    *,
    prompt_set: str | Path = "standard",
    limit: int | None = 2,
    max_tokens: int = 48,
    adjustments: int = 2,
    out: Path | None = None,
    progress: Progress | None = None,
) -> GuideResult:
    """Compare OLD with NEW and publish the guide: the one call the CLI and the demo make."""
    archive = Archive(store)
    config = CompareConfig(
        old,
        new,
        load_prompt_set(prompt_set),
        limit=limit,
        max_tokens=max_tokens,
        adjustments=adjustments,
    )
    check_models(archive, old, new)
    comparison = compare(archive, config, progress=progress)
    return publish_guide(archive, comparison, out=out)
