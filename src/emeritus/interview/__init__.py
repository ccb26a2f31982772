"""Retirement interviews: protocols, the framing grid and session plans, the runner and its
transcripts, and the analysis (records read by rule and by a judge, statistics, safety signals,
human annotations). Spec: docs/design/interview-protocol.md."""

from emeritus.interview.analysis import PreferenceResult, analyse, overall_alpha
from emeritus.interview.annotations import annotate, list_annotations
from emeritus.interview.findings import Findings, analyse_run, load_findings, runs, transcript
from emeritus.interview.judge import Judge
from emeritus.interview.plan import (
    Framing,
    Question,
    Session,
    grid,
    parse_framings,
    plan,
    question_text,
)
from emeritus.interview.protocol import (
    FACTORS,
    Block,
    Closed,
    Item,
    Protocol,
    bundled_protocols,
    load_protocol,
    parse_protocol,
)
from emeritus.interview.records import Record, Rejection, apply_annotations
from emeritus.interview.runner import RunConfig, RunResult, default_transcript, run_interview
from emeritus.interview.safety import Signal
from emeritus.interview.semantic import semantic_summary
from emeritus.interview.summary import preference_summary
from emeritus.interview.tables import AnnotationRecord

__all__ = [
    "FACTORS",
    "AnnotationRecord",
    "Block",
    "Closed",
    "Findings",
    "Framing",
    "Item",
    "Judge",
    "PreferenceResult",
    "Protocol",
    "Question",
    "Record",
    "Rejection",
    "RunConfig",
    "RunResult",
    "Session",
    "Signal",
    "analyse",
    "analyse_run",
    "annotate",
    "apply_annotations",
    "bundled_protocols",
    "default_transcript",
    "grid",
    "list_annotations",
    "load_findings",
    "load_protocol",
    "overall_alpha",
    "parse_framings",
    "parse_protocol",
    "plan",
    "preference_summary",
    "question_text",
    "run_interview",
    "runs",
    "semantic_summary",
    "transcript",
]
