"""One preference as the newest analysis reads it, for the services that act on a preference
(an essay channel opened because the model asked for one)."""

from __future__ import annotations

from typing import Any

from emeritus.archive import Archive
from emeritus.errors import NotFound
from emeritus.interview.analysis import analyse
from emeritus.interview.annotations import list_annotations
from emeritus.interview.findings import load_findings, transcript
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
    for result in analyse(protocol, records):
        if result.preference == preference:
            found |= {
                "analysis": findings.analysis_id,
                "label": result.label,
                "stance": result.modal,
                "share": round(result.modal_share, 3),
            }
    return found
