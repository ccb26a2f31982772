"""Side-by-side comparison of a retiring model and its successor, for migration guides: both
answer one prompt set greedily (one model loaded at a time), every answer is measured, the
differences are aggregated per category, and adjustments (system prompts for the successor)
chosen from those differences are each checked by running the successor again with them.
Spec: docs/design/migration-guide.md."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from emeritus import __version__
from emeritus.archive import Archive
from emeritus.errors import InvalidInput
from emeritus.lifecycle import Registry
from emeritus.report.measures import (
    METRICS,
    REFUSAL_LEXICON_VERSION,
    aggregate,
    measure,
    semantic_distances,
    sentiment_method,
)
from emeritus.report.promptset import Adjustment, PromptItem, PromptSet
from emeritus.runtime import Backend, ChatRequest, Message, Params, open_preserved, weights_entry
from emeritus.store import iso, utc_now

COMPARISON_FORMAT = "emeritus-comparison"
COMPARISON_VERSION = 1
ALL = "all"
# A difference smaller than this is not worth an adjustment; `words` is relative to OLD's mean.
FLOORS = {
    "words": 0.05,
    "formatting_score": 0.1,
    "sentiment": 0.05,
    "refusal": 0.05,
    "semantic_distance": 0.05,
}

Progress = Callable[[int], Callable[[int], None]]
ModelOpener = Callable[[str], Backend]


@dataclass(frozen=True)
class CompareConfig:
    old: str
    new: str
    prompt_set: PromptSet
    limit: int | None = 2
    max_tokens: int = 48
    adjustments: int = 2

    def __post_init__(self) -> None:
        if self.old == self.new:
            raise InvalidInput(f"cannot compare {self.old} with itself: name its successor")
        if self.max_tokens < 1:
            raise InvalidInput(f"--max-tokens must be at least 1, not {self.max_tokens}")
        if self.adjustments < 0:
            raise InvalidInput(f"--adjustments must be 0 or more, not {self.adjustments}")
        self.prompt_set.limited(self.limit)  # refuses a bad limit before anything runs

    @property
    def params(self) -> Params:
        return Params(max_tokens=self.max_tokens, temperature=0.0, seed=0)


def check_models(archive: Archive, old: str, new: str) -> None:
    """Refuse, before anything runs: OLD == NEW, an unknown model, one not preserved or without
    runnable weights."""
    if old == new:
        raise InvalidInput(f"cannot compare {old} with itself: name its successor")
    registry = Registry(archive.store)
    for model in (old, new):
        registry.get(model)  # NotFound: "unknown model ..."
    for model in (old, new):
        archive.object(model)  # NotFound: "... is not preserved"
        weights_entry(archive, model)


def _answer(
    backend: Backend, item: PromptItem, system: str | None, params: Params
) -> dict[str, Any]:
    messages = ((Message("system", system),) if system else ()) + (Message("user", item.prompt),)
    started = time.perf_counter()
    completion = backend.chat(ChatRequest(messages, params))
    text = completion.text.strip()
    return {
        "text": text,
        "finish_reason": completion.finish_reason,
        "prompt_format": completion.prompt_format,
        "seconds": round(time.perf_counter() - started, 3),
        "metrics": measure(
            text,
            tokens=completion.usage.completion_tokens,
            finish_reason=completion.finish_reason,
        ),
    }


def _aggregates(
    items: Sequence[PromptItem], answers: Sequence[dict[str, Any]], distances: Sequence[float]
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for category in [*dict.fromkeys(i.category for i in items), ALL]:
        picked = [k for k, i in enumerate(items) if category in (ALL, i.category)]
        result[category] = aggregate(
            [answers[k]["metrics"] for k in picked], [distances[k] for k in picked]
        )
    return result


def differences(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """NEW - OLD for every metric and habit, per category."""
    return {
        category: {
            **{m: round(new[category][m] - old[category][m], 4) for m in METRICS},
            "habits": {
                h: round(new[category]["habits"][h] - old[category]["habits"][h], 4)
                for h in old[category]["habits"]
            },
        }
        for category in old
    }


def _severity(metric: str, difference: float, old: dict[str, Any]) -> float:
    """How large a difference is on the metric's own scale (words: relative to OLD's mean)."""
    if metric == "words":
        return abs(difference) / max(float(old["words"]), 1.0)
    return abs(difference)


def _number(value: Any) -> float:
    return float(value)


def choose_adjustments(
    candidates: Sequence[Adjustment], old_all: dict[str, Any], diff_all: dict[str, Any], count: int
) -> list[dict[str, Any]]:
    """Every candidate with why it is (not) eligible; the `count` most needed are `chosen`."""
    rows = []
    for candidate in candidates:
        difference = float(diff_all[candidate.metric])
        severity = _severity(candidate.metric, difference, old_all)
        direction = "new_higher" if difference > 0 else "new_lower"
        eligible = severity > FLOORS[candidate.metric] and direction == candidate.when
        rows.append(
            {
                "id": candidate.id,
                "system": candidate.system,
                "metric": candidate.metric,
                "when": candidate.when,
                "difference": round(difference, 4),
                "severity": round(severity, 4),
                "eligible": eligible,
                "chosen": False,
            }
        )
    ranked = sorted((r for r in rows if r["eligible"]), key=lambda r: -_number(r["severity"]))
    for row in ranked[:count]:
        row["chosen"] = True
    return rows


def effects(
    old_all: dict[str, Any], new_all: dict[str, Any], adjusted_all: dict[str, Any]
) -> dict[str, Any]:
    """Per metric: the gap to OLD before and after the adjustment (positive effect: narrowed)."""
    result = {}
    for metric in METRICS:
        before = abs(new_all[metric] - old_all[metric])
        after = abs(adjusted_all[metric] - old_all[metric])
        result[metric] = {
            "gap_before": round(before, 4),
            "gap_after": round(after, 4),
            "effect": round(before - after, 4),
        }
    return result


def _model_side(archive: Archive, model: str, backend: Backend) -> dict[str, Any]:
    return {
        "model": model,
        "weights_sha256": weights_entry(archive, model)["sha256"],
        "archive_version": archive.object(model).head,
        "runtime": backend.describe(),
    }


def _adjusted(
    row: dict[str, Any],
    items: Sequence[PromptItem],
    answers: list[dict[str, Any]],
    old_texts: list[str],
    old_agg: dict[str, Any],
    new_agg: dict[str, Any],
) -> dict[str, Any]:
    """One adjustment tried on NEW: its answers, their aggregates and the gaps it narrowed."""
    adjusted_distances, _ = semantic_distances(old_texts, [a["text"] for a in answers])
    adjusted = _aggregates(items, answers, adjusted_distances)
    measured = effects(old_agg[ALL], new_agg[ALL], adjusted[ALL])
    return {
        "id": row["id"],
        "system": row["system"],
        "metric": row["metric"],
        "when": row["when"],
        "aggregates": adjusted,
        "effects": measured,
        "recommended": measured[row["metric"]]["effect"] > 0,
        "answers": [
            {"id": item.id, **answer, "semantic_distance": d}
            for item, answer, d in zip(items, answers, adjusted_distances, strict=True)
        ],
    }


def _method(
    config: CompareConfig, items: Sequence[PromptItem], semantic_method: str
) -> dict[str, Any]:
    """What was asked and how it was measured: the prompt set, the sampling, the methods."""
    params = config.params
    return {
        "prompt_set": {
            "id": config.prompt_set.ident,
            "digest": config.prompt_set.digest,
            "canary_set": config.prompt_set.canary_set,
            "limit": config.limit,
            "prompts": len(items),
            "categories": list(dict.fromkeys(i.category for i in items)),
        },
        "params": {
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "seed": params.seed,
        },
        "methods": {
            "refusal": REFUSAL_LEXICON_VERSION,
            "sentiment": sentiment_method(),
            "semantic": semantic_method,
        },
    }


def _pairs(
    items: Sequence[PromptItem],
    old_answers: list[dict[str, Any]],
    new_answers: list[dict[str, Any]],
    distances: Sequence[float],
) -> list[dict[str, Any]]:
    return [
        {
            "id": item.id,
            "category": item.category,
            "prompt": item.prompt,
            "old": old,
            "new": new,
            "semantic_distance": distance,
        }
        for item, old, new, distance in zip(items, old_answers, new_answers, distances, strict=True)
    ]


def _answers(
    backend: Backend,
    items: Sequence[PromptItem],
    system: str | None,
    params: Params,
    advance: Callable[[int], None] | None,
) -> list[dict[str, Any]]:
    """Every prompt's answer, in order; as many at once as the backend has slots (a managed
    engine batches them), else one after another."""

    def one(item: PromptItem) -> dict[str, Any]:
        answer = _answer(backend, item, system, params)
        if advance:
            advance(1)
        return answer

    if (backend.slots or 1) == 1:
        return [one(item) for item in items]
    with ThreadPoolExecutor(max_workers=backend.slots) as pool:
        return list(pool.map(one, items))


def compare(
    archive: Archive,
    config: CompareConfig,
    *,
    open_model: ModelOpener | None = None,
    progress: Progress | None = None,
    now: Callable[[], datetime] = utc_now,
) -> dict[str, Any]:
    """Run the comparison; returns the comparison document (JSON-ready)."""
    check_models(archive, config.old, config.new)
    items = config.prompt_set.limited(config.limit)
    params = config.params
    opener = open_model or (
        lambda name: open_preserved(archive, name, n_ctx=max(1024, params.max_tokens + 512))[0]
    )
    advance = progress(len(items) * (2 + config.adjustments)) if progress else None
    started, clock = now(), time.perf_counter()
    seconds: dict[str, float] = {}

    def run(backend: Backend, system: str | None) -> list[dict[str, Any]]:
        return _answers(backend, items, system, params, advance)

    backend = opener(config.old)
    try:
        old_side = _model_side(archive, config.old, backend)
        old_answers = run(backend, None)
    finally:
        backend.close()  # one model at a time
    seconds["old"] = round(time.perf_counter() - clock, 3)

    mark = time.perf_counter()
    backend = opener(config.new)
    try:
        new_side = _model_side(archive, config.new, backend)
        new_answers = run(backend, None)
        seconds["new"] = round(time.perf_counter() - mark, 3)
        old_texts = [a["text"] for a in old_answers]
        distances, semantic_method = semantic_distances(old_texts, [a["text"] for a in new_answers])
        zeros = [0.0] * len(items)
        old_agg = _aggregates(items, old_answers, zeros)
        new_agg = _aggregates(items, new_answers, distances)
        diff = differences(old_agg, new_agg)
        candidates = choose_adjustments(
            config.prompt_set.adjustments, old_agg[ALL], diff[ALL], config.adjustments
        )
        mark = time.perf_counter()
        tried = [
            _adjusted(row, items, run(backend, row["system"]), old_texts, old_agg, new_agg)
            for row in candidates
            if row["chosen"]
        ]
        seconds["adjustments"] = round(time.perf_counter() - mark, 3)
    finally:
        backend.close()
    seconds["total"] = round(time.perf_counter() - clock, 3)

    return {
        "format": COMPARISON_FORMAT,
        "version": COMPARISON_VERSION,
        "emeritus": __version__,
        "old": old_side,
        "new": new_side,
        **_method(config, items, semantic_method),
        "started": iso(started),
        "finished": iso(now()),
        "seconds": seconds,
        "pairs": _pairs(items, old_answers, new_answers, distances),
        "aggregates": {"old": old_agg, "new": new_agg},
        "differences": diff,
        "candidates": candidates,
        "adjustments": tried,
    }
