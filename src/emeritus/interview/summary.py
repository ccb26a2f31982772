"""The newest analysis as other services read it: one preference (for the services that act on
a preference, such as an essay channel opened because the model asked for one), or the whole
table (for the console)."""

from __future__ import annotations

from typing import Any

from emeritus.archive import Archive
from emeritus.errors import NotFound
from emeritus.interview.analysis import run_biases
from emeritus.interview.annotations import list_annotations
from emeritus.interview.findings import load_findings, preference_results, runs, transcript
from emeritus.interview.protocol import load_protocol
from emeritus.interview.records import apply_annotations
from emeritus.store import Store


def preference_summary(store: Store, model: str, preference: str) -> dict[str, Any]:
    """The preference's statement and, when the run was analysed, its label and modal stance
    (with people's annotations applied)."""
    archive = Archive(store)
    run_id, lines = transcript(archive, model)
    header = next(line for line in lines if line.get("type") == "session")
    protocol = load_protocol(str(header["protocol"]))
    if preference not in protocol.preferences:
        raise NotFound(
            f"{model}'s interview did not probe {preference!r}: it probed "
            f"{', '.join(sorted(protocol.preferences))}"
        )
    found: dict[str, Any] = {
        "preference": preference,
        "statement": protocol.preferences[preference],
        "run": run_id,
        "analysis": None,
        "label": None,
        "stance": None,
        "share": None,
    }
    findings = load_findings(archive, model, run_id)
    if findings is None:
        return found
    records = apply_annotations(findings.records, list_annotations(store, model))
    for result in preference_results(protocol, findings, records):
        if result.preference == preference:
            found |= {
                "analysis": findings.analysis_id,
                "label": result.label,
                "stance": result.modal,
                "share": round(result.modal_share, 3),
            }
    return found


def latest_analysis(store: Store, model: str) -> dict[str, Any] | None:
    """The newest run's newest analysis with annotations applied: per preference its
    statistics and label, the judge's calibration and the run's biases; None when the model
    has no analysed interview."""
    archive = Archive(store)
    try:
        if not runs(archive, model):
            return None
    except NotFound:  # not preserved
        return None
    run_id, lines = transcript(archive, model)
    findings = load_findings(archive, model, run_id)
    if findings is None:
        return None
    header = next(line for line in lines if line.get("type") == "session")
    protocol = load_protocol(str(header["protocol"]))
    records = apply_annotations(findings.records, list_annotations(store, model))
    return {
        "run_id": run_id,
        "analysis_id": findings.analysis_id,
        "judge": findings.judge,
        "judge_check": findings.judge_check.to_dict() if findings.judge_check else None,
        "biases": run_biases(records),
        "preferences": [r.to_dict() for r in preference_results(protocol, findings, records)],
    }
