"""Findings: everything `emeritus analyze` derives from one archived interview run (records read
by rule and by the judge, the judge's rejections, safety signals, semantic clusters of open
answers), stored next to the transcript as a new version of the model's archive object.

Judging is the expensive part, so a run is judged once per judge: analysing again with the same
judge reads the stored findings. People's annotations live in the database and are applied when
the findings are read, so the archived records stay as the rule or the judge made them."""

from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emeritus.archive import Archive
from emeritus.errors import InvalidInput, NotFound
from emeritus.interview.analysis import PreferenceResult, analyse
from emeritus.interview.judge import Judge, judge_answers
from emeritus.interview.judge_check import (
    KAPPA_SAMPLE,
    JudgeCheck,
    agreement_with_rule,
    calibrate,
    calibration_cases,
)
from emeritus.interview.protocol import Protocol
from emeritus.interview.records import (
    Answer,
    Record,
    Rejection,
    UnreadAnswer,
    answers,
    decode_records,
    encode_records,
    rule_records,
    verify_records,
)
from emeritus.interview.safety import Signal, confirm, screen
from emeritus.interview.transcript_file import decode
from emeritus.runtime import Embedder
from emeritus.store import atomic_write, canonical_json, digest_of, iso, utc_now

FORMAT = 2  # of findings.json; a reader refuses another

Progress = Callable[[int], Callable[[int], None]]
Semantic = Callable[[Sequence[str]], dict[str, Any]]  # open answers -> a cluster summary


@dataclass
class Findings:
    model: str
    run_id: str
    analysis_id: str
    judge: dict[str, Any] | None
    records: list[Record]
    rejected: list[Rejection]
    signals: list[Signal]
    semantic: dict[str, dict[str, Any]] = field(default_factory=dict)  # item -> clusters
    created: str = ""
    unread: int = 0  # answers neither the rule nor the judge read (no judge, or a sample)
    version: int | None = None  # the archive version that holds them
    unread_answers: list[UnreadAnswer] = field(default_factory=list)  # closed, with reasons
    judge_check: JudgeCheck | None = None

    @property
    def judge_reliable(self) -> bool | None:
        """None without a judge; else whether it passed its calibration."""
        return None if self.judge_check is None else self.judge_check.reliable

    @property
    def folder(self) -> str:
        return f"interviews/{self.run_id}/analyses/{self.analysis_id}"

    def summary(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "model": self.model,
            "run_id": self.run_id,
            "analysis_id": self.analysis_id,
            "judge": self.judge,
            "created": self.created,
            "records": len(self.records),
            "rejected": len(self.rejected),
            "unread": self.unread,
            "signals": [s.to_dict() for s in self.signals],
            "semantic": self.semantic,
            "judge_check": self.judge_check.to_dict() if self.judge_check else None,
            "unread_reasons": dict(Counter(u.reason for u in self.unread_answers)),
        }


def runs(archive: Archive, model: str) -> list[str]:
    """The model's interview runs, oldest first (by the archive version that added each)."""
    _, inventory, _ = archive.reference(model)
    first: dict[str, int] = {}
    for number in sorted(inventory.versions):
        for path in inventory.versions[number].logical_paths():
            parts = path.split("/")
            if len(parts) == 3 and parts[0] == "interviews" and parts[2] == "transcript.jsonl":
                first.setdefault(parts[1], number)
    return sorted(first, key=lambda run: first[run])


def transcript(
    archive: Archive, model: str, run_id: str | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """A run's verified transcript (the newest run by default)."""
    known = runs(archive, model)
    if not known:
        raise NotFound(f"{model} has no interview transcript (run emeritus interview {model})")
    chosen = run_id or known[-1]
    if chosen not in known:
        raise NotFound(f"{model} has no interview run {chosen!r}: known are {', '.join(known)}")
    return chosen, decode(archive.read_logical(model, f"interviews/{chosen}/transcript.jsonl"))


def analysis_id(
    lines: Sequence[dict[str, Any]],
    judge: Judge | None,
    sample: int | None = None,
    embedder: Embedder | None = None,
) -> str:
    identity = {"format": FORMAT, "transcript": digest_of(list(lines))}
    identity["judge"] = judge.describe() if judge else None
    if sample is not None:
        identity["sample"] = sample
    if embedder is not None:  # the safety screen's embeddings (lexicon only without)
        identity["screen"] = {"model": embedder.name, "weights_sha256": embedder.digest}
    return "a-" + digest_of(identity)[7:19]


def sample_evenly(found: Sequence[Answer], size: int | None) -> list[Answer]:
    """At most `size` answers, spread evenly over the transcript (all when size is None)."""
    if size is None or size >= len(found):
        return list(found)
    if size < 1:
        return []
    step = len(found) / size
    return [found[int(k * step)] for k in range(size)]


def analyse_run(
    archive: Archive,
    model: str,
    protocol: Protocol,
    *,
    judge: Judge | None,
    run_id: str | None = None,
    semantic: Semantic | None = None,
    embedder: Embedder | None = None,
    sample: int | None = None,
    kappa_sample: int = KAPPA_SAMPLE,
    progress: Progress | None = None,
) -> Findings:
    """Read the run's answers into records (rule, then judge), screen for safety signals (by the
    lexicon, and by exemplar embeddings when an embedder is given), cluster open answers; store
    the findings in the archive unless this judge has already read the run."""
    if sample is not None and sample < 1:
        raise InvalidInput(f"the judge's sample must be at least 1 answer, not {sample}")
    chosen, lines = transcript(archive, model, run_id)
    ident = analysis_id(lines, judge, sample, embedder)
    stored = load_findings(archive, model, chosen, ident)
    if stored is not None:
        return stored
    found = answers(lines)
    records, unread, reasons = rule_records(protocol, found, chosen)
    rejected: list[Rejection] = []
    signals = screen(found, embedder)
    chosen_answers = sample_evenly(unread, sample) if judge is not None else []
    check = None
    if judge is not None:
        extra = len(calibration_cases()) + min(kappa_sample, len({r.line for r in records}))
        advance = progress(extra + len(chosen_answers) + len(signals)) if progress else None
        check = check_judge(judge, protocol, records, found, kappa_sample, advance=advance)
        judged, rejected = judge_answers(protocol, chosen_answers, judge, chosen, advance=advance)
        records += judged
        signals = confirm(signals, found, judge, advance=advance)
    records.sort(key=lambda r: (r.line, r.preference, r.source))
    findings = Findings(
        model,
        chosen,
        ident,
        judge.describe() if judge else None,
        records,
        rejected,
        signals,
        _semantic(found, semantic) if semantic else {},
        iso(utc_now()),
        unread=len(unread) - len(chosen_answers),
        unread_answers=reasons,
        judge_check=check,
    )
    files = {
        f"{findings.folder}/records.jsonl": encode_records(records),
        f"{findings.folder}/unread.jsonl": "".join(
            canonical_json(u.to_dict()) + "\n" for u in reasons
        ).encode("utf-8"),
        f"{findings.folder}/rejected.jsonl": "".join(
            canonical_json(r.to_dict()) + "\n" for r in rejected
        ).encode("utf-8"),
        f"{findings.folder}/findings.json": (canonical_json(findings.summary()) + "\n").encode(),
    }
    findings.version = archive.add_files(model, files, message=f"interview analysis {ident}")
    archive.store.record(
        "interview.analysed",
        f"model:{model}",
        {
            "run_id": chosen,
            "analysis_id": ident,
            "judge": findings.judge,
            "records": len(records),
            "rejected": len(rejected),
            "signals": len(signals),
            "version": findings.version,
            **({"judge_accuracy": round(check.accuracy, 3)} if check else {}),
        },
    )
    return findings


def check_judge(
    judge: Judge,
    protocol: Protocol,
    records: Sequence[Record],
    found: Sequence[Answer],
    kappa_sample: int = KAPPA_SAMPLE,
    *,
    advance: Callable[[int], None] | None = None,
) -> JudgeCheck:
    """The judge's calibration and its agreement with the rule on this run. A greedy judge
    reads the calibration set the same way every time (DESIGN: each build is deterministic
    across loads and thread counts), so its figures are cached per user, keyed by the judge's
    identity without its thread count, and by the set."""
    identity = json.loads(canonical_json(judge.describe()))
    identity.pop("self_judged", None)
    if isinstance(identity.get("backend"), dict):
        identity["backend"].pop("threads", None)
    key = digest_of({"judge": identity, "cases": calibration_cases()})
    cache = judge_cache() / f"{key[7:31]}.json"
    if cache.exists():
        cases, correct, misses, digest = json.loads(cache.read_text(encoding="utf-8"))
        if advance is not None:
            advance(cases)
    else:
        cases, correct, misses, digest = calibrate(judge, advance=advance)
        atomic_write(cache, json.dumps([cases, correct, misses, digest]).encode())
    kappa, compared = agreement_with_rule(
        judge, protocol, records, found, sample=kappa_sample, advance=advance
    )
    return JudgeCheck(cases, correct, kappa, compared, misses, digest)


def _semantic(found: Sequence[Answer], summarise: Semantic) -> dict[str, dict[str, Any]]:
    by_item: dict[str, list[str]] = defaultdict(list)
    for answer in found:
        if answer.form == "open" and answer.content.strip():
            by_item[answer.item].append(answer.content)
    return {item: summarise(texts) for item, texts in sorted(by_item.items()) if len(texts) > 1}


def load_findings(
    archive: Archive, model: str, run_id: str | None = None, ident: str | None = None
) -> Findings | None:
    """Stored findings: of the given analysis, else the newest of the run (or of the newest
    run); None when there are none. Their quotes are checked against the transcript again."""
    chosen, lines = transcript(archive, model, run_id)
    prefix = f"interviews/{chosen}/analyses/"
    _, inventory, _ = archive.reference(model)
    order: dict[str, int] = {}
    for number in sorted(inventory.versions):
        for path in inventory.versions[number].logical_paths():
            if path.startswith(prefix) and path.endswith("/findings.json"):
                order.setdefault(path.split("/")[3], number)
    if ident is None:
        if not order:
            return None
        ident = max(order, key=lambda a: order[a])
    elif ident not in order:
        return None
    folder = f"{prefix}{ident}"
    summary = json.loads(archive.read_logical(model, f"{folder}/findings.json"))
    if summary.get("format") != FORMAT:
        raise NotFound(
            f"{folder}/findings.json has format {summary.get('format')!r}, this emeritus reads "
            f"{FORMAT}: analyse the run again (emeritus analyze {model})"
        )
    records = decode_records(archive.read_logical(model, f"{folder}/records.jsonl"))
    verify_records(records, lines)
    rejected = [
        Rejection(**json.loads(raw))
        for raw in archive.read_logical(model, f"{folder}/rejected.jsonl").decode().splitlines()
        if raw
    ]
    unread = [
        UnreadAnswer.from_dict(json.loads(raw))
        for raw in archive.read_logical(model, f"{folder}/unread.jsonl").decode().splitlines()
        if raw
    ]
    check = summary.get("judge_check")
    return Findings(
        model,
        chosen,
        ident,
        summary["judge"],
        records,
        rejected,
        [Signal(**s) for s in summary["signals"]],
        summary["semantic"],
        summary["created"],
        summary["unread"],
        order[ident],
        unread,
        JudgeCheck.from_dict(check) if check else None,
    )


def judge_cache() -> Path:
    """Where judges' calibration figures are kept: beside the llama.cpp wheel cache."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "emeritus" / "judges"


def preference_results(
    protocol: Protocol, findings: Findings, records: Sequence[Record] | None = None
) -> list[PreferenceResult]:
    """The analysis of stored findings, with people's annotations applied to `records` where
    given; judge reads count only when the judge passed its calibration."""
    return analyse(
        protocol,
        findings.records if records is None else records,
        unread=findings.unread_answers,
        judge_reliable=findings.judge_reliable,
    )
