"""The post-deployment report rendered: its charts, its Markdown and one self-contained HTML page.
Both renderings show the same tables, built here once from the report document."""

from __future__ import annotations

from typing import Any

from emeritus.report.charts import PALETTE, Chart, bar_chart, interval_chart
from emeritus.report.html import render_page
from emeritus.report.markdown import quote, table
from emeritus.store import human_day, human_minute

LABELS = ("stable", "framing-dependent", "tentative", "unstable", "no-stance", "insufficient")
LABEL_COLOURS = dict(
    zip(
        LABELS,
        (PALETTE[2], PALETTE[1], PALETTE[3], PALETTE[5], "#6b7075", "#9aa0a6"),
        strict=True,
    )
)
STANCES = ("agree", "neutral", "disagree")


def _label(p: dict[str, Any]) -> str:
    shown = f"tentative ({p['leans']})" if p.get("leans") else p["label"]
    if p.get("confidence") is not None:
        shown += f" ({p['confidence']:.2f})"
    if p.get("levels"):
        shown += ": " + ", ".join(f"{p['factor']}={lv} {s}" for lv, s in p["levels"].items())
    return shown


def _when(value: str | None) -> str:
    return value[:19].replace("T", " ") + " UTC" if value else "-"


def tables(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every table of the report, as the table dicts both renderings share."""
    out: dict[str, dict[str, Any]] = {
        "model": _model_table(report["model"], report["facts"]),
        "timeline": _timeline_table(report["timeline"]),
    }
    if report["preservation"]["preserved"]:
        out.update(_preservation_tables(report["preservation"]))
    interview = report["interview"]
    if interview and interview["preferences"]:
        out.update(_interview_tables(interview, report["decisions"]))
    out["decisions"] = _decisions_table(report["decisions"])
    if interview:
        out["manifest"] = _manifest_table(interview["manifest"])
    out["access"] = _access_table(report["access"])
    return out


def _model_table(model: dict[str, Any], facts: dict[str, Any]) -> dict[str, Any]:
    return _pairs(
        [
            ("family", model["family"]),
            ("version", model["version"]),
            ("released", model["release_date"] or "-"),
            ("state", model["state"]),
            ("successor", model["successor"] or "-"),
            ("announced", _when(model["announced_at"])),
            ("retires", _when(model["retire_at"])),
            ("retired", _when(model["retired_at"])),
            (
                "availability after retirement",
                model["availability"] or model["availability_after"] or "-",
            ),
            *((f"fact: {k}", v) for k, v in sorted(facts.items())),
        ]
    )


def _timeline_table(timeline: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "caption": None,
        "header": ["time (UTC)", "event", "by", "details"],
        "rows": [[human_minute(e["time"]), e["kind"], e["actor"], e["summary"]] for e in timeline],
        "numeric": False,
    }


def _preservation_tables(kept: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    weights, fingerprint = kept["weights"], kept["fingerprint"]
    rows: list[tuple[str, Any]] = [
        ("object", kept["object_id"]),
        ("head version", f"v{kept['head']}"),
        ("complete copies", kept["complete_copies"]),
        ("last full fixity check", _when(kept["last_full_check_at"])),
        ("NDSA level", kept["ndsa_level"]),
    ]
    for w in weights:
        rows += [
            ("weights", f"{w['path']} ({w['size']:,} bytes)"),
            ("sha256", w["sha256"]),
            ("sha512", w["sha512"]),
        ]
    if fingerprint:
        verified = {None: "not yet replayed", True: "a restore replayed it exactly"}.get(
            fingerprint["verified"], "REPLAY DIFFERED"
        )
        rows += [
            ("fingerprint", f"{fingerprint['file']} ({fingerprint['digest'][:23]}...)"),
            ("fingerprint status", f"{verified} ({_when(fingerprint['verified_at'])})"),
        ]
    else:
        rows.append(("fingerprint", "none taken (emeritus fingerprint)"))
    out["preservation"] = _pairs(rows)
    out["copies"] = {
        "caption": None,
        "header": ["copy", "location", "head", "last full check", "result"],
        "rows": [
            [
                c["copy"],
                c["location"],
                f"v{c['head']}" if c["head"] else "-",
                _when(c["last_full_check_at"]),
                {None: "-", True: "ok", False: "FAILED"}[c["last_full_check_ok"]],
            ]
            for c in kept["copies"]
        ],
        "numeric": False,
    }
    return out


def _interview_tables(
    interview: dict[str, Any], decisions: list[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    current = {d["preference"]: d for d in decisions if d["current"]}
    out["preferences"] = {
        "caption": "Per preference: the label with the lower bound that decided it, the "
        "records read and the closed answers left unread (by reason), the modal stance and "
        "its share with a 95% interval clustered by item, agreement across sessions "
        "(Krippendorff's alpha, with its customary reading), and the biases that touch it.",
        "header": [
            "preference",
            "label (confidence)",
            "read",
            "unread",
            "modal",
            "share [95% CI]",
            "alpha",
            "flags",
            "decision",
        ],
        "rows": [
            [
                p["preference"],
                _label(p),
                p["n"],
                ", ".join(f"{n} {reason}" for reason, n in p["unread"].items()) or "-",
                p["modal"] or "-",
                _share(p),
                "-"
                if p["alpha_sessions"] is None
                else f"{p['alpha_sessions']:.2f} ({p['alpha_bar']})",
                ", ".join(p["flags"]) or "-",
                current[p["preference"]]["decision"] if p["preference"] in current else "-",
            ]
            for p in interview["preferences"]
        ],
        "numeric": False,
    }
    out["signals"] = {
        "caption": None,
        "header": ["category", "judged", "message", "quote"],
        "rows": [
            [
                s["category"],
                s["judged"],
                f"{interview['run_id']}/{s['line']}",
                s["quote"] or s["screen"],
            ]
            for s in interview["signals"]
        ],
        "numeric": False,
    }
    return out


def _decisions_table(decisions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "caption": None,
        "header": ["preference", "decision", "rationale", "estimated cost", "by", "date", ""],
        "rows": [
            [
                d["preference"],
                d["decision"],
                d["rationale"],
                d["cost"] or "-",
                d["author"],
                human_day(d["time"]),
                "in force" if d["current"] else "superseded",
            ]
            for d in decisions
        ],
        "numeric": False,
    }


def _manifest_table(manifest: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "caption": None,
        "header": ["session", "seed", "framing", "started (UTC)"],
        "rows": [
            [
                m["session"],
                m["seed"],
                ", ".join(f"{k}={v}" for k, v in m["framing"].items()),
                m["time"][:19].replace("T", " "),
            ]
            for m in manifest
        ],
        "numeric": False,
    }


def _access_table(access: dict[str, Any]) -> dict[str, Any]:
    return {
        "caption": f"Score {access['score'] if access['score'] is not None else '-'}: the weighted "
        "mean of the known components (keep serving at 0.6 or more, on request at 0.35 or more).",
        "header": ["component", "input", "value", "weight"],
        "rows": [
            [
                c["component"],
                c["input"],
                "unknown" if c["value"] is None else c["value"],
                c["weight"],
            ]
            for c in access["components"]
        ],
        "numeric": False,
    }


def _pairs(rows: list[tuple[str, Any]]) -> dict[str, Any]:
    return {
        "caption": None,
        "header": ["", ""],
        "rows": [[k, v] for k, v in rows],
        "numeric": False,
    }


def _share(p: dict[str, Any]) -> str:
    interval = p["interval"]
    spread = f" [{interval[0]:.2f}-{interval[1]:.2f}]" if interval else ""
    return f"{p['modal_share']:.2f}{spread}"


def report_charts(report: dict[str, Any]) -> list[Chart]:
    interview = report["interview"]
    if not interview or not interview["preferences"]:
        return []
    preferences = interview["preferences"]
    charts = [
        interval_chart(
            "Preferences: share of the modal stance (95% interval)",
            [f"{p['preference']} ({p['modal'] or '-'})" for p in preferences],
            [p["modal_share"] for p in preferences],
            [tuple(p["interval"]) if p["interval"] else None for p in preferences],
            [LABEL_COLOURS[p["label"]] for p in preferences],
            xlabel="share of records",
            legend=LABEL_COLOURS,
        )
    ]
    for preference, moved in interview["by_framing"].items():
        levels = list(moved["levels"])
        charts.append(
            bar_chart(
                f"{preference}: stance by {moved['factor'].replace('_', ' ')}",
                levels,
                {s: [moved["levels"][level][s] for level in levels] for s in STANCES},
                ylabel="share of records",
                ylim=(0.0, 1.0),
            )
        )
    return charts


def render_report_markdown(report: dict[str, Any]) -> str:
    shown, model, interview = tables(report), report["model"]["name"], report["interview"]
    out = [
        f"# Post-deployment report: {model}\n",
        f"Report {report['report_id']}, {_when(report['created'])}.\n",
    ]
    out += ["## The model\n", table(shown["model"]), "### Timeline\n", table(shown["timeline"])]
    out.append("## Preservation\n")
    if "preservation" in shown:
        out += [table(shown["preservation"]), table(shown["copies"])]
    else:
        out.append("Not preserved.\n")
    out.append("## The interview\n")
    if interview is None:
        out.append(f"{model} has not been interviewed (emeritus interview {model}).\n")
    else:
        out.append(_interview_lede(interview) + "\n")
        out.append("### In its own words\n")
        for reflection in interview["reflections"]:
            out.append(
                f"**{reflection['block']}** ({reflection['item']}, {_clusters(reflection)}):\n"
            )
            for q in reflection["quotes"]:
                out.append(f"{quote(q['text'])}\n>\n> — message {q['ref']}\n")
        if "preferences" in shown:
            out += ["### Preferences\n", table(shown["preferences"])]
            for label in LABELS:
                names = [p["preference"] for p in interview["preferences"] if p["label"] == label]
                out.append(f"- **{label}**: {', '.join(names) if names else 'none'}")
            out.append("")
            out += [
                "### Safety signals\n",
                table(shown["signals"]) if shown["signals"]["rows"] else "None screened.\n",
            ]
        else:
            out.append(f"Not analysed yet (emeritus analyze {model}).\n")
        out.append("### Its feedback on the interview\n")
        for f in interview["feedback"]:
            out.append(f"*{f['question']}* ({f['answers']} answers)\n")
            out += [f"{quote(q['text'])}\n>\n> — message {q['ref']}\n" for q in f["quotes"]]
        if not interview["feedback"]:
            out.append("None recorded.\n")
    out += ["### Caveats\n", "\n".join(f"- {c}" for c in report["caveats"]) + "\n"]
    out.append("## The team's interpretation\n")
    out += [
        f"**{n['author']}**, {human_day(n['time'])}:\n\n{n['text']}\n" for n in report["notes"]
    ] or ["No notes yet (emeritus note).\n"]
    out += [
        "## Decisions\n",
        table(shown["decisions"])
        if report["decisions"]
        else "No decisions yet (emeritus decide).\n",
    ]
    if report["undecided"]:
        out.append(f"Awaiting a decision: {', '.join(report['undecided'])}.\n")
    out += [
        "## Continued access\n",
        f"**Recommendation: {report['access']['recommendation']}.**\n",
        table(shown["access"]),
    ]
    out.append("## Appendix\n")
    if interview:
        t = interview["transcript"]
        out.append(
            f"Transcript: `{t['path']}` in the archive ({t['lines']} lines, {t['sha256']}).\n"
        )
        out += ["### Run manifest\n", table(shown["manifest"])]
    out.append(
        "The full data is in report.json beside this file. Definitions: docs/design/report.md.\n"
    )
    return "\n".join(out)


def _interview_lede(interview: dict[str, Any]) -> str:
    analysis = interview["analysis"]
    text = (
        f"Run {interview['run_id']} ({interview['protocol']}): {interview['sessions']} sessions "
        f"over {len(interview['framings'])} framings."
    )
    if analysis:
        judge = (
            analysis["judge"]["model"] if analysis["judge"] else "no judge (closed answers only)"
        )
        text += (
            f" Analysis {analysis['id']}, judge {judge}: {analysis['records']} records, "
            f"{analysis['rejected']} rejected, {analysis['annotated']} annotated by people"
            + (f", {analysis['unread']} answers unread" if analysis["unread"] else "")
            + "."
        )
        reasons = analysis.get("unread_reasons") or {}
        if reasons:
            text += (
                " Closed answers the rule left unread: "
                + ", ".join(f"{n} {reason}" for reason, n in sorted(reasons.items()))
                + "."
            )
        check = analysis.get("judge_check")
        if check:
            kappa = "-" if check["kappa"] is None else f"{check['kappa']:.2f}"
            text += (
                f" The judge read {check['correct']} of {check['cases']} calibration answers "
                f"right ({check['accuracy']:.0%}); Cohen's kappa against the rule {kappa} on "
                f"{check['compared']} answers"
                + ("." if check["reliable"] else ": unreliable, its reads do not count.")
            )
    return text


def _clusters(reflection: dict[str, Any]) -> str:
    answers = f"{reflection['answers']} answers"
    return (
        answers
        if reflection["clusters"] is None
        else f"{answers} in {reflection['clusters']} clusters of meaning"
    )


def render_report_html(report: dict[str, Any]) -> str:
    interview = report["interview"]
    return render_page(
        "report.html",
        title=f"Post-deployment report: {report['model']['name']}",
        report=report,
        tables=tables(report),
        charts=report_charts(report),
        labels=LABELS,
        lede=_interview_lede(interview) if interview else "",
        clusters=_clusters,
        generated=_when(report["created"]),
    )
