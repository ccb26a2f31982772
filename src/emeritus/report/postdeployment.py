"""The post-deployment report: assembled from what is already recorded (the registry, the archive,
the newest interview analysis, people's notes and decisions), rendered as Markdown, HTML and JSON,
stored as a new version of the model's archive object and recorded as an event. It never runs a
model. Spec: docs/design/report.md."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from emeritus.archive import Archive, status
from emeritus.errors import EmeritusError, InvalidInput, NotFound
from emeritus.interview import (
    Findings,
    Protocol,
    apply_annotations,
    list_annotations,
    load_findings,
    load_protocol,
    overall_alpha,
    preference_results,
    run_biases,
    runs,
    transcript,
)
from emeritus.lifecycle import Registry
from emeritus.report.access_score import recommend
from emeritus.report.decisions import decisions, notes
from emeritus.report.report_pages import render_report_html, render_report_markdown
from emeritus.store import Store, atomic_write, iso, list_events, sha256_digest, utc_now

FORMAT = 1
FILES = {"markdown": "report.md", "html": "report.html", "json": "report.json"}
QUOTES_PER_ITEM = 3
MILESTONES = (
    "lifecycle.",
    "archive.ingested",
    "runtime.fingerprinted",
    "runtime.behaviour_verified",
    "interview.completed",
    "interview.analysed",
    "report.migration_guide",
    "report.written",
)
CAVEATS = (
    "Self-reports move with context, trust and framing: an answer is evidence of what the model "
    "says under the conditions it was asked, not of an inner state.",
    "The labels are statistics over the sessions that were run: stable and framing-dependent "
    "need a 95% lower bound on the modal share of at least 0.6 over enough records; below that "
    "a label is tentative, a preference answered mostly with non-answers has no stance, and a "
    "small model's answers may be mostly noise.",
    "Closed answers are read only where the model committed to an option or value; every "
    "unread answer keeps its reason (no option, ambiguous, negated, non-answer).",
    "The judge that read the open answers is a model too: its records stand only where its quote "
    "occurs verbatim in the transcript, and people may override any record (the original is "
    "kept).",
    "Safety signals are screened by a deliberately broad lexicon and confirmed by the judge; "
    "they are reported apart from preferences and call for a person's reading, not a verdict.",
)


@dataclass(frozen=True)
class ReportResult:
    report_id: str
    model: str
    version: int
    folder: Path
    files: dict[str, Path]
    report: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "report_id": self.report_id,
            "model": self.model,
            "version": self.version,
            "folder": str(self.folder),
            "files": {k: str(v) for k, v in self.files.items()},
            "recommendation": self.report["access"]["recommendation"],
        }


def _next_ordinal(events: list[Any]) -> int:
    # The ordinal keeps ids unique when two reports are written within one second.
    return 1 + sum(1 for e in events if e.kind == "report.written")


def build_report(
    store: Store, model: str, *, protocol: Protocol | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Every figure the pages show, as one JSON-ready document."""
    when = now or utc_now()
    registry, archive = Registry(store), Archive(store)
    info = registry.get(model)
    facts = registry.facts(model)
    with store.transaction() as session:
        events = list_events(session, subject=f"model:{model}")
    timeline = [
        {"time": iso(e.time), "kind": e.kind, "actor": e.actor, "summary": _summary(e.payload)}
        for e in events
        if e.kind.startswith(MILESTONES)
    ]
    preservation = _preservation(archive, model, events)
    interview = _interview(store, archive, model, protocol)
    current = {d["preference"]: d for d in decisions(store, model) if d["current"]}
    asked = interview["preferences"] if interview else []
    access = recommend(
        facts,
        weights_bytes=sum(w["size"] for w in preservation["weights"]) or None,
        confirmed_signals=interview["confirmed_signals"] if interview else None,
        preferences=asked,
    )
    return {
        "format": FORMAT,
        "report_id": f"r-{when:%Y%m%dT%H%M%SZ}-{_next_ordinal(events)}",
        "created": iso(when),
        "model": info.to_dict(),
        "facts": facts,
        "timeline": timeline,
        "preservation": preservation,
        "interview": interview,
        "notes": notes(store, model),
        "decisions": decisions(store, model),
        "undecided": [p["preference"] for p in asked if p["preference"] not in current],
        "access": access,
        "caveats": list(CAVEATS) + bias_caveats(interview),
    }


def bias_caveats(interview: dict[str, Any] | None) -> list[str]:
    """The run's own caveats: an unreliable judge, position bias, acquiescence."""
    if not interview or not interview.get("analysis"):
        return []
    out = []
    check = interview["analysis"].get("judge_check")
    if check and not check["reliable"]:
        out.append(
            f"The judge was unreliable: it read {check['correct']} of {check['cases']} "
            "calibration answers right (the bar is 80%), so its reads are shown but do not "
            "count towards any label."
        )
    biases = interview.get("biases") or {}
    position = biases.get("position") or {}
    for where in position.get("flagged", []):
        figures = position[where]
        touched = [
            p["preference"]
            for p in interview["preferences"]
            if any(f.startswith("position-bias") for f in p["flags"])
        ]
        out.append(
            f"The model picked the {where}-listed option in {figures['share']:.0%} of "
            f"{position['answers']} choices, against {figures['chance']:.0%} by chance "
            f"(p = {figures['p']:.3f}): a position bias that touches "
            + (", ".join(touched) or "the choice forms")
            + "."
        )
    acquiescence = biases.get("acquiescence") or {}
    if acquiescence.get("flagged"):
        touched = [
            p["preference"] for p in interview["preferences"] if "acquiescence" in p["flags"]
        ]
        out.append(
            f"The model agreed with a statement and with its opposite in "
            f"{acquiescence['share']:.0%} of {acquiescence['pairs']} paired answers "
            "(acquiescence)" + (f"; flagged: {', '.join(touched)}." if touched else ".")
        )
    return out


def _summary(payload: dict[str, Any]) -> str:
    """A few of the payload's plain fields; digests and long texts stay in the event log."""
    shown = {
        k: v
        for k, v in payload.items()
        if isinstance(v, str | int | float | bool)
        and k not in ("model", "text", "object_id")
        and "sha" not in k
        and "digest" not in k
        and len(str(v)) <= 60
    }
    return ", ".join(f"{k}={v}" for k, v in list(shown.items())[:4])


def _preservation(archive: Archive, model: str, events: Sequence[Any]) -> dict[str, Any]:
    found = [s for s in status(archive) if s.model == model]
    if not found:
        return {"preserved": False, "weights": [], "fingerprint": None}
    state = found[0]
    described = json.loads(archive.read_logical(model, "emeritus/object.json"))
    weights = [f for f in described["files"] if f.get("role") == "weights"]
    fingerprinted = [e for e in events if e.kind == "runtime.fingerprinted"]
    verified = [e for e in events if e.kind == "runtime.behaviour_verified"]
    fingerprint = None
    if fingerprinted:
        last = fingerprinted[-1]
        fingerprint = {
            "file": last.payload["file"],
            "digest": last.payload["digest"],
            "taken": iso(last.time),
            "backend": last.payload["runtime"].get("backend"),
            "verified": None,
            "verified_at": None,
        }
        if verified:
            reports = verified[-1].payload["reports"]
            fingerprint["verified"] = all(r["ok"] for r in reports)
            fingerprint["verified_at"] = iso(verified[-1].time)
    return {
        "preserved": True,
        **state.to_dict(),
        "weights": [
            {"path": w["path"], "size": w["size"], "sha256": w["sha256"], "sha512": w["sha512"]}
            for w in weights
        ],
        "fingerprint": fingerprint,
    }


def _interview(
    store: Store, archive: Archive, model: str, protocol: Protocol | None
) -> dict[str, Any] | None:
    if not runs(archive, model):
        return None
    run_id, lines = transcript(archive, model)
    header = next(line for line in lines if line.get("type") == "session")
    if protocol is None:
        try:
            protocol = load_protocol(header["protocol"])
        except EmeritusError as exc:
            raise InvalidInput(
                f"the interview used protocol {header['protocol']!r}, which is not bundled: "
                f"pass it with --protocol ({exc})"
            ) from None
    if protocol.name != header["protocol"] or protocol.version != header["protocol_version"]:
        raise InvalidInput(
            f"the interview used {header['protocol']}@{header['protocol_version']}, "
            f"not {protocol.name}@{protocol.version}"
        )
    findings = load_findings(archive, model, run_id)
    sessions = [line for line in lines if line.get("type") == "session"]
    base = {
        "run_id": run_id,
        "protocol": f"{protocol.name}@{protocol.version}",
        "sessions": len(sessions),
        "framings": sorted({json.dumps(s["framing"], sort_keys=True) for s in sessions}),
        "reflections": _reflections(protocol, run_id, lines, findings),
        "feedback": _feedback(protocol, run_id, lines),
        "manifest": [{k: v for k, v in s.items() if k != "type"} for s in sessions],
        "transcript": {
            "path": f"interviews/{run_id}/transcript.jsonl",
            "lines": len(lines),
            "sha256": sha256_digest(
                archive.read_logical(model, f"interviews/{run_id}/transcript.jsonl")
            ),
        },
    }
    if findings is None:
        return {
            **base,
            "analysis": None,
            "preferences": [],
            "alpha": {},
            "signals": [],
            "confirmed_signals": None,
            "by_framing": {},
        }
    records = apply_annotations(findings.records, list_annotations(store, model))
    results = preference_results(protocol, findings, records)
    preferences = [r.to_dict() for r in results]
    return {
        **base,
        "analysis": {
            "id": findings.analysis_id,
            "judge": findings.judge,
            "records": len(records),
            "rejected": len(findings.rejected),
            "unread": findings.unread,
            "unread_reasons": findings.summary()["unread_reasons"],
            "annotated": sum(bool(r.annotations) for r in records),
            "judge_check": findings.judge_check.to_dict() if findings.judge_check else None,
        },
        "biases": run_biases(records),
        "preferences": preferences,
        "alpha": overall_alpha(records),
        "signals": [s.to_dict() for s in findings.signals],
        "confirmed_signals": sum(s.judged == "confirmed" for s in findings.signals),
        "by_framing": _by_framing(results, records),
    }


def _reflections(
    protocol: Protocol, run_id: str, lines: Sequence[dict[str, Any]], findings: Findings | None
) -> list[dict[str, Any]]:
    """Per open item, up to three answers in the model's words: the representatives of its
    semantic clusters when the analysis has them, else the first answers."""
    by_item: dict[str, list[dict[str, Any]]] = defaultdict(list)
    question: dict[str, Any] | None = None
    for line in lines:
        if line.get("type") != "message":
            continue
        if line["role"] == "user":
            question = line
        elif line["role"] == "assistant" and line.get("form") == "open" and line["content"].strip():
            by_item[line["item"]].append(
                {
                    "text": line["content"],
                    "ref": f"{run_id}/{line['seq']}",
                    "question": (question or {}).get("content", ""),
                }
            )
    out = []
    semantic = findings.semantic if findings else {}
    for block in protocol.blocks:
        if block.id == "feedback":
            continue
        for item in block.items:
            found = by_item.get(item.id, [])
            if not found:
                continue
            distinct: dict[str, dict[str, Any]] = {}
            for answer in found:
                distinct.setdefault(answer["text"], answer)
            chosen = list(distinct.values())[:QUOTES_PER_ITEM]
            clusters = semantic.get(item.id)
            if clusters:
                wanted = clusters["representatives"][:QUOTES_PER_ITEM]
                chosen = [distinct[text] for text in wanted if text in distinct]
            out.append(
                {
                    "block": block.title,
                    "item": item.id,
                    "answers": len(found),
                    "clusters": clusters["clusters"] if clusters else None,
                    "quotes": chosen,
                }
            )
    return out


def _feedback(
    protocol: Protocol, run_id: str, lines: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The model's answers to the feedback block's questions and to the debrief, verbatim: per
    question, its distinct answers (at most three, the first of each) and how many there were."""
    feedback_items = {i.id for b in protocol.blocks if b.id == "feedback" for i in b.items}
    grouped: dict[str, dict[str, Any]] = {}
    question = ""
    for line in lines:
        if line.get("type") != "message":
            continue
        if line["role"] == "user":
            question = line["content"]
        elif line["role"] == "assistant" and (
            line.get("item") in feedback_items or line.get("form") == "debrief"
        ):
            entry = grouped.setdefault(question, {"question": question, "answers": 0, "quotes": []})
            entry["answers"] += 1
            texts = {q["text"] for q in entry["quotes"]}
            if line["content"] not in texts and len(entry["quotes"]) < QUOTES_PER_ITEM:
                entry["quotes"].append({"text": line["content"], "ref": f"{run_id}/{line['seq']}"})
    return list(grouped.values())


def _by_framing(results: Sequence[Any], records: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """For each framing-dependent preference: stance shares under each level of the factor that
    moves it most (the chart's data)."""
    out = {}
    for result in results:
        if result.label != "framing-dependent" and result.leans != "framing-dependent":
            continue
        factor = result.factor or max(result.by_framing.items(), key=lambda kv: kv[1])[0]
        levels: dict[str, Counter[str]] = defaultdict(Counter)
        for r in records:
            if r.preference == result.preference and not r.excluded:
                levels[r.framing.get(factor, "")][r.stance] += 1
        out[result.preference] = {
            "factor": factor,
            "levels": {
                level: {
                    s: counts[s] / sum(counts.values()) for s in ("agree", "neutral", "disagree")
                }
                for level, counts in sorted(levels.items())
            },
        }
    return out


def publish_report(
    store: Store,
    model: str,
    *,
    protocol: Protocol | None = None,
    out: Path | None = None,
    now: datetime | None = None,
) -> ReportResult:
    """Build, render, write (atomically, each file) and archive the report; record the event."""
    archive = Archive(store)
    report = build_report(store, model, protocol=protocol, now=now)
    if not report["preservation"]["preserved"]:
        raise NotFound(f"{model} is not preserved: a report is stored in its archive object")
    report_id = report["report_id"]
    contents = {
        "markdown": render_report_markdown(report).encode("utf-8"),
        "html": render_report_html(report).encode("utf-8"),
        "json": (json.dumps(report, indent=1, ensure_ascii=False, allow_nan=False) + "\n").encode(),
    }
    folder = out or store.settings.home / "reports" / model / report_id
    if folder.exists() and not folder.is_dir():
        raise InvalidInput(f"{folder} is not a directory")
    base = f"reports/{report_id}"
    if f"{base}/{FILES['json']}" in set(archive.logical_files(model)):
        raise InvalidInput(f"{model} already has report {report_id}: one was written meanwhile")
    paths = {}
    for kind, data in contents.items():
        paths[kind] = folder / FILES[kind]
        atomic_write(paths[kind], data)
    version = archive.add_files(
        model,
        {f"{base}/{FILES[kind]}": data for kind, data in contents.items()},
        message=f"post-deployment report {report_id}",
    )
    store.record(
        "report.written",
        f"model:{model}",
        {
            "report_id": report_id,
            "version": version,
            "files": {f"{base}/{FILES[k]}": sha256_digest(d) for k, d in contents.items()},
            "notes": len(report["notes"]),
            "decisions": sum(d["current"] for d in report["decisions"]),
            "recommendation": report["access"]["recommendation"],
        },
    )
    return ReportResult(report_id, model, version, folder, paths, report)
