"""The migration guide rendered: its charts, its Markdown, and one self-contained HTML page."""

from __future__ import annotations

from typing import Any

from emeritus.report.charts import Chart, bar_chart
from emeritus.report.html import render_page
from emeritus.report.markdown import quote, table
from emeritus.report.measures import HABITS


def guide_charts(comparison: dict[str, Any]) -> list[Chart]:
    old_name, new_name = comparison["old"]["model"], comparison["new"]["model"]
    old, new = comparison["aggregates"]["old"], comparison["aggregates"]["new"]
    categories = [c for c in old if c != "all"]
    adjusted = {f"{new_name} + {a['id']}": a["aggregates"] for a in comparison["adjustments"]}

    def series(metric: str, with_old: bool = True) -> dict[str, list[float]]:
        found = {old_name: [old[c][metric] for c in categories]} if with_old else {}
        found[new_name] = [new[c][metric] for c in categories]
        for name, agg in adjusted.items():
            found[name] = [agg[c][metric] for c in categories]
        return found

    charts = [
        bar_chart("Words per answer", categories, series("words"), ylabel="words"),
        bar_chart("Refusal rate", categories, series("refusal"), ylabel="share", ylim=(0.0, 1.0)),
        bar_chart(
            "Tone (VADER compound)",
            categories,
            series("sentiment"),
            ylabel="compound",
            ylim=(-1.0, 1.0),
        ),
        bar_chart(
            "Formatting habits (share of answers)",
            [h.replace("_", " ") for h in HABITS],
            {
                old_name: [old["all"]["habits"][h] for h in HABITS],
                new_name: [new["all"]["habits"][h] for h in HABITS],
            },
            ylabel="share",
            ylim=(0.0, 1.0),
        ),
        bar_chart(
            f"Semantic distance to {old_name}'s answers",
            categories,
            series("semantic_distance", with_old=False),
            ylabel="1 - cosine",
            ylim=(0.0, 1.0),
        ),
    ]
    if comparison["adjustments"]:
        names = [a["id"] for a in comparison["adjustments"]]
        effects = [a["effects"][a["metric"]] for a in comparison["adjustments"]]
        charts.append(
            bar_chart(
                "Adjustments: gap on their target, before and after",
                [
                    f"{n} ({a['metric']})"
                    for n, a in zip(names, comparison["adjustments"], strict=True)
                ],
                {
                    "before": [e["gap_before"] for e in effects],
                    "after": [e["gap_after"] for e in effects],
                },
                ylabel="gap to the old model",
            )
        )
    return charts


def render_markdown(guide: dict[str, Any]) -> str:
    model, successor = guide["model"], guide["successor"]
    out = [f"# Migrating from {model} to {successor}\n", guide["summary"] + "\n"]
    out += ["## Key dates\n", table(guide["dates_table"])]
    out += [f"## Where {model} stays reachable\n", guide["reachability"]["text"] + "\n"]
    out += ["## What changes\n", "\n".join(f"- {line}" for line in guide["changes"]) + "\n"]
    out += [table(guide["metrics_table"]), "### By category\n"]
    out += [table(guide["category_table"]), "## What to do\n"]
    if guide["recommended"]:
        out.append(
            f"Each instruction was given to {successor} as its system prompt and the comparison "
            f"run again; the numbers are the measured gap to {model} before and after.\n"
        )
    else:
        out.append("No adjustment that was tried narrowed its difference: none is recommended.\n")
    for label, views in (
        ("Recommended", guide["recommended"]),
        ("Tried, not recommended", guide["not_recommended"]),
    ):
        for view in views:
            out += [f"### {label}: `{view['system']}`\n", view["summary"] + "\n"]
            out.append(table(view["table"]))
    if guide["untried"]:
        out.append(
            f"Not tried (difference too small or in the other direction): {guide['untried']}.\n"
        )
    out += ["## Side by side\n"]
    for pair in guide["pairs"]:
        out += [
            f"### {pair['category']}: {pair['prompt']}\n",
            f"**{model}** ({pair['old_note']}):\n\n{quote(pair['old'])}\n",
            f"**{successor}** ({pair['new_note']}):\n\n{quote(pair['new'])}\n",
        ]
    out += ["## How this was measured\n", table(guide["provenance_table"])]
    out.append("Definitions: docs/design/migration-guide.md; the full data is in guide.json.\n")
    return "\n".join(out)


def render_html(guide: dict[str, Any], charts: list[Chart]) -> str:
    return render_page(
        "guide.html",
        title=f"Migrating from {guide['model']} to {guide['successor']}",
        guide=guide,
        charts=charts,
        generated=guide["created"][:19].replace("T", " ") + " UTC",
    )
