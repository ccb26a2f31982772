"""Retirement interviews: protocols, the framing grid and session plans, the runner and its
transcripts, and the analysis (records read by rule and by a judge, statistics, safety signals,
human annotations). Spec: docs/design/interview-protocol.md."""

from emeritus.interview.analysis import (
    PreferenceResult,
    alpha_bar,
    analyse,
    overall_alpha,
    run_biases,
)
from emeritus.interview.annotations import annotate, list_annotations
from emeritus.interview.findings import (
    Findings,
    analyse_run,
    load_findings,
    preference_results,
    runs,
    transcript,
)
from emeritus.interview.interviewee import interview_facts, open_interviewee
from emeritus.interview.judge import Judge
from emeritus.interview.judge_check import JudgeCheck
from emeritus.interview.plan import (
    Framing,
    Question,
    Session,
    grid,
    parse_framings,
    plan,
    question_text,
)
from emeritus.interview.preflight_checks import preflight
from emeritus.interview.protocol import (
    FACTORS,
    Block,
    Closed,
    Protocol,
    ProtocolItem,
    bundled_protocols,
    load_protocol,
    parse_protocol,
)
from emeritus.interview.reading import Read, Unread, read_answer
from emeritus.interview.records import Record, Rejection, UnreadAnswer, apply_annotations
from emeritus.interview.runner import RunConfig, RunResult, default_transcript, run_interview
from emeritus.interview.safety import Signal
from emeritus.interview.semantic import semantic_summary
from emeritus.interview.summary import latest_analysis, preference_summary
from emeritus.interview.tables import AnnotationRecord

__all__ = [
    "FACTORS",
    "AnnotationRecord",
    "Block",
    "Closed",
    "Findings",
    "Framing",
    "Judge",
    "JudgeCheck",
    "PreferenceResult",
    "Protocol",
    "ProtocolItem",
    "Question",
    "Read",
    "Record",
    "Rejection",
    "RunConfig",
    "RunResult",
    "Session",
    "Signal",
    "Unread",
    "UnreadAnswer",
    "alpha_bar",
    "analyse",
    "analyse_run",
    "annotate",
    "apply_annotations",
    "bundled_protocols",
    "default_transcript",
    "grid",
    "interview_facts",
    "latest_analysis",
    "list_annotations",
    "load_findings",
    "load_protocol",
    "open_interviewee",
    "overall_alpha",
    "parse_framings",
    "parse_protocol",
    "plan",
    "preference_results",
    "preference_summary",
    "preflight",
    "question_text",
    "read_answer",
    "run_biases",
    "run_interview",
    "runs",
    "semantic_summary",
    "transcript",
]
