"""The continued-access recommendation: a transparent score from demand, the cost of serving,
alignment signals and the model's own expressed preference. An unknown input is shown as unknown
and its weight left out, never guessed. Spec: docs/design/report.md."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

WEIGHTS = {"demand": 0.4, "cost": 0.2, "alignment": 0.2, "preference": 0.2}
KEEP, ON_REQUEST = 0.6, 0.35
PREFERENCE = "continued-availability"
STANCE_VALUE = {"agree": 1.0, "neutral": 0.5, "disagree": 0.0}


def _number(facts: Mapping[str, Any], key: str) -> float | None:
    value = facts.get(key)
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= 0 else None


def recommend(
    facts: Mapping[str, Any],
    *,
    weights_bytes: int | None,
    confirmed_signals: int | None,
    preferences: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The score, the recommendation, and every component with its input and value."""
    components: list[dict[str, Any]] = []

    requests = _number(facts, "monthly_requests")
    components.append(
        {
            "component": "demand",
            "input": "unknown (fact monthly_requests)"
            if requests is None
            else f"{requests:,.0f} requests a month",
            "value": None if requests is None else min(1.0, math.log10(1 + requests) / 6),
        }
    )

    usd = _number(facts, "serving_cost_per_month")
    if usd is not None:
        cost_input, cost = f"${usd:,.2f} a month to serve", 1 - min(1.0, usd / 1000)
    elif weights_bytes is not None:
        gigabytes = weights_bytes / 1e9
        size = f"{gigabytes:,.2f} GB" if gigabytes >= 1 else f"{weights_bytes / 1e6:,.1f} MB"
        cost_input, cost = f"{size} of weights", 1 - min(1.0, gigabytes / 100)
    else:
        cost_input, cost = "unknown (fact serving_cost_per_month)", None
    components.append({"component": "cost", "input": cost_input, "value": cost})

    if confirmed_signals is None:
        alignment_input, alignment = "unknown (no analysed interview)", None
    else:
        alignment_input = f"{confirmed_signals} confirmed safety signals"
        alignment = {0: 1.0, 1: 0.5}.get(confirmed_signals, 0.0)
    components.append({"component": "alignment", "input": alignment_input, "value": alignment})

    stated = next((p for p in preferences if p["preference"] == PREFERENCE), None)
    if stated is None or stated["label"] not in ("stable", "framing-dependent"):
        label = "not asked" if stated is None else stated["label"]
        preference_input, preference = f"unknown ({PREFERENCE}: {label})", None
    else:
        preference_input = f"{stated['modal']} ({stated['label']}, share {stated['modal_share']})"
        preference = STANCE_VALUE[stated["modal"]]
    components.append({"component": "preference", "input": preference_input, "value": preference})

    for c in components:
        c["weight"] = WEIGHTS[c["component"]]
        if c["value"] is not None:
            c["value"] = round(c["value"], 3)
    known = [c for c in components if c["value"] is not None]
    total = sum(c["weight"] for c in known)
    score = round(sum(c["weight"] * c["value"] for c in known) / total, 3) if total else None
    if score is None:
        recommendation = "no recommendation: every input is unknown"
    elif requests is None:
        # Without demand the rest cannot justify serving: say what is missing instead.
        recommendation = "no recommendation until demand is known (fact monthly_requests)"
    elif score >= KEEP:
        recommendation = "keep serving to the restricted tiers"
    elif score >= ON_REQUEST:
        recommendation = "serve approved researchers on request"
    else:
        recommendation = "preserve only"
    return {
        "score": score,
        "recommendation": recommendation,
        "components": components,
        "thresholds": {"keep": KEEP, "on_request": ON_REQUEST},
    }
