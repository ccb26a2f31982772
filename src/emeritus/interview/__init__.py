"""Retirement interviews: protocols, the framing grid and session plans (the runner, transcripts
and analysis follow). Spec: docs/design/interview-protocol.md."""

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
from emeritus.interview.runner import RunConfig, RunResult, default_transcript, run_interview

__all__ = [
    "FACTORS",
    "Block",
    "Closed",
    "Framing",
    "Item",
    "Protocol",
    "Question",
    "RunConfig",
    "RunResult",
    "Session",
    "bundled_protocols",
    "default_transcript",
    "grid",
    "load_protocol",
    "parse_framings",
    "parse_protocol",
    "plan",
    "question_text",
    "run_interview",
]
