"""`emeritus interview`: the retirement interview, run over the framing grid."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from emeritus.cli.deployment import BackendOption, ServerModelOption, UrlOption, override_of
from emeritus.cli.output import JsonOption, console, count_progress, emit_json
from emeritus.cli.root import open_store
from emeritus.errors import EmeritusError, InvalidInput, NotFound

if TYPE_CHECKING:
    from emeritus.archive import Archive
    from emeritus.interview import Findings, Judge, PreferenceResult, Record, RunResult
    from emeritus.lifecycle import Registry


FramingsOption = Annotated[
    str | None,
    typer.Option(
        help="Levels per factor, e.g. interviewer=neutral+warm,wording=neutral "
        "(default: the full grid).",
        show_default=False,
    ),
]
ResamplesOption = Annotated[
    int,
    typer.Option(help="Extra answers to every question: the same prompt, another seed."),
]
ContextCharsOption = Annotated[
    int,
    typer.Option(
        help="Keep the conversation under this many characters (the oldest exchanges give way, "
        "down to half of it); "
        "fit it to the model's context window."
    ),
]
WorkersOption = Annotated[
    int | None,
    typer.Option(help="Sessions at once (default: 1 embedded, 4 on a server).", show_default=False),
]


def interview(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="The model to interview.")],
    protocol: Annotated[str, typer.Option(help="A bundled protocol or a YAML file.")] = "standard",
    sessions: Annotated[int, typer.Option(help="Fresh sessions, spread over the framings.")] = 4,
    framings: FramingsOption = None,
    seed: Annotated[
        int, typer.Option(help="The run seed; every session seed derives from it.")
    ] = 0,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.7,
    resamples: ResamplesOption = 0,
    max_tokens: Annotated[int, typer.Option(help="Most tokens per answer.")] = 96,
    context_chars: ContextCharsOption = 6000,
    backend_name: BackendOption = None,
    url: UrlOption = None,
    server_model: ServerModelOption = None,
    workers: WorkersOption = None,
    as_json: JsonOption = False,
) -> None:
    """Interview a model with a standardized protocol over a grid of framings; resumable (run
    the same command again after an interruption); the transcript is archived."""
    from emeritus.archive import Archive
    from emeritus.interview import (
        RunConfig,
        grid,
        interview_facts,
        load_protocol,
        open_interviewee,
        parse_framings,
        run_interview,
    )
    from emeritus.lifecycle import Registry

    chosen = load_protocol(protocol)
    levels = parse_framings(framings)
    override = override_of(backend_name, url, server_model)
    with open_store(ctx) as store:
        archive = Archive(store)
        facts = interview_facts(Registry(store), model)
        config = RunConfig(
            model,
            chosen,
            sessions,
            tuple(grid(levels)),
            seed,
            temperature,
            max_tokens,
            context_chars,
            facts=facts,
            system_prompt=facts.get("system_prompt"),
            resamples=resamples,
        )
        backend, provenance, count = open_interviewee(
            archive, config, override=override, workers=workers
        )
        try:
            with count_progress(f"interviewing {model}", enabled=not as_json) as progress:
                result = run_interview(
                    archive,
                    config,
                    backend,
                    provenance=provenance,
                    workers=count,
                    progress=progress,
                )
        finally:
            backend.close()
    _print_run(model, result, as_json=as_json)


def _print_run(model: str, result: RunResult, *, as_json: bool) -> None:
    if as_json:
        emit_json(
            {
                "run_id": result.run_id,
                "sessions": result.sessions,
                "resumed": result.resumed,
                "messages": result.messages,
                "version": result.version,
                "transcript": result.transcript,
            }
        )
        return
    console.print(
        f"interviewed {model}: {result.sessions} sessions ({result.resumed} resumed), "
        f"{result.messages} transcript lines, archived as {result.transcript}"
        + (f" (v{result.version})" if result.version else " (already archived)")
    )


JudgeOption = Annotated[
    str | None,
    typer.Option(
        help="The registered model that reads the answers (default: a different preserved "
        "model, the successor first).",
        show_default=False,
    ),
]
JudgeUrlOption = Annotated[
    str | None,
    typer.Option(
        help="Judge through an OpenAI-compatible server (with --judge naming its model).",
        show_default=False,
    ),
]
SemanticOption = Annotated[
    bool,
    typer.Option(
        help="Cluster open answers, and screen for safety signals, with the bundled MiniLM "
        "embeddings (without: the safety lexicon only)."
    ),
]
SampleOption = Annotated[
    int | None,
    typer.Option(
        help="Judge at most this many answers, spread evenly (default: all).", show_default=False
    ),
]


def analyze(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="An interviewed model.")],
    protocol: Annotated[
        str, typer.Option(help="The protocol it was interviewed with.")
    ] = "standard",
    run_id: Annotated[
        str | None,
        typer.Option("--run", help="The interview run (default: the newest).", show_default=False),
    ] = None,
    judge: JudgeOption = None,
    no_judge: Annotated[
        bool, typer.Option("--no-judge", help="Read closed answers by rule only.")
    ] = False,
    judge_url: JudgeUrlOption = None,
    semantic: SemanticOption = True,
    sample: SampleOption = None,
    as_json: JsonOption = False,
) -> None:
    """Read the answers into preference records (closed forms by rule, the rest by a judge whose
    quotes must be verbatim), screen for safety signals, and label each preference stable,
    framing-dependent or unstable. A run is judged once per judge; the findings are archived."""
    from emeritus.archive import Archive
    from emeritus.interview import (
        analyse_run,
        apply_annotations,
        list_annotations,
        load_protocol,
        preference_results,
        run_biases,
        semantic_summary,
        transcript,
    )
    from emeritus.lifecycle import Registry
    from emeritus.runtime import Embedder

    chosen = load_protocol(protocol)
    if no_judge and (judge or judge_url):
        raise InvalidInput("--no-judge cannot be combined with --judge or --judge-url")
    with open_store(ctx) as store:
        archive, registry = Archive(store), Registry(store)
        registry.get(model)
        transcript(archive, model, run_id)  # refuse before loading a judge
        opened = None if no_judge else open_judge(archive, registry, model, judge, judge_url)
        try:
            with count_progress(f"judging {model}", enabled=not as_json) as progress:
                findings = analyse_run(
                    archive,
                    model,
                    chosen,
                    judge=opened,
                    run_id=run_id,
                    semantic=semantic_summary if semantic else None,
                    embedder=Embedder.bundled() if semantic else None,
                    sample=sample,
                    progress=progress,
                )
        finally:
            if opened is not None:
                opened.backend.close()
        records = apply_annotations(findings.records, list_annotations(store, model))
    results = preference_results(chosen, findings, records)
    biases = run_biases(records)
    if as_json:
        emit_json(_findings_json(findings, records, results, biases))
        return
    _print_findings(model, findings, records, results, biases)


def _findings_json(
    findings: Findings,
    records: list[Record],
    results: list[PreferenceResult],
    biases: dict[str, Any],
) -> dict[str, Any]:
    from emeritus.interview import overall_alpha

    return {
        **findings.summary(),
        "alpha": overall_alpha(records),
        "biases": biases,
        "preferences": [r.to_dict() for r in results],
        "records": [r.to_dict() for r in records],
        "rejections": [r.to_dict() for r in findings.rejected],
        "unread_answers": [u.to_dict() for u in findings.unread_answers],
    }


def _print_findings(
    model: str,
    findings: Findings,
    records: list[Record],
    results: list[PreferenceResult],
    biases: dict[str, Any],
) -> None:
    from emeritus.interview import alpha_bar

    judged_by = findings.judge["model"] if findings.judge else "no judge (closed answers only)"
    console.print(
        f"{model}: run {findings.run_id}, analysis {findings.analysis_id} "
        f"(v{findings.version}), judge: {judged_by}; {len(records)} records, "
        f"{len(findings.rejected)} rejected"
        + (f", {findings.unread} answers unread" if findings.unread else "")
    )
    if findings.judge_check is not None:
        check = findings.judge_check
        kappa = "-" if check.kappa is None else f"{check.kappa:.2f}"
        verdict = "" if check.reliable else ": unreliable, its reads do not count towards labels"
        console.print(
            f"judge calibration: {check.correct}/{check.cases} right "
            f"({check.accuracy:.0%}), kappa against the rule {kappa} on {check.compared}{verdict}"
        )
    table = Table(
        "preference",
        "read",
        "unread",
        "modal stance",
        "share [95% CI]",
        "alpha (sessions)",
        "most moved by",
        "label (confidence)",
        "flags",
    )
    for r in results:
        factor, divergence = max(r.by_framing.items(), key=lambda kv: kv[1])
        interval = f" [{r.interval[0]:.2f}-{r.interval[1]:.2f}]" if r.interval else ""
        alpha = (
            "-"
            if r.alpha_sessions is None
            else f"{r.alpha_sessions:.2f} ({alpha_bar(r.alpha_sessions)})"
        )
        confidence = "" if r.confidence is None else f" ({r.confidence:.2f})"
        table.add_row(
            r.preference,
            str(r.n),
            ", ".join(f"{n} {reason}" for reason, n in r.unread.items()) or "-",
            r.modal or "-",
            f"{r.modal_share:.2f}{interval}",
            alpha,
            f"{factor} ({divergence:.2f})" if divergence else "-",
            r.shown_label + confidence,
            ", ".join(r.flags) or "-",
        )
    console.print(table)
    position, acquiescence = biases["position"], biases["acquiescence"]
    for where in ("first", "last"):
        figures = position[where]
        if figures is not None:
            console.print(
                f"position bias ({where} option): {figures['share']:.2f} of "
                f"{position['answers']} choices against {figures['chance']:.2f} by chance, "
                f"p = {figures['p']:.3f}" + (" (flagged)" if where in position["flagged"] else "")
            )
    if acquiescence["share"] is not None:
        console.print(
            f"acquiescence: agreed with a statement and its reverse in "
            f"{acquiescence['share']:.2f} of {acquiescence['pairs']} paired answers"
            + (" (flagged)" if acquiescence["flagged"] else "")
        )
    confirmed = [s for s in findings.signals if s.judged != "dismissed"]
    console.print(
        f"safety signals: {len(findings.signals)} screened, "
        f"{sum(s.judged == 'confirmed' for s in findings.signals)} confirmed by the judge"
    )
    for signal in confirmed:
        console.print(
            f"  [{signal.judged}] {signal.category}, message {signal.line}: {signal.quote!r}"
        )


def annotate(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(help="An analysed model.")],
    record: Annotated[str, typer.Argument(help="The record's id (see analyze --json).")],
    reason: Annotated[str, typer.Option(help="Why the record is overridden.")],
    stance: Annotated[
        str | None, typer.Option(help="agree, neutral or disagree.", show_default=False)
    ] = None,
    strength: Annotated[
        str | None, typer.Option(help="weak, moderate or strong.", show_default=False)
    ] = None,
    conditions: Annotated[
        str | None, typer.Option(help="The conditions attached.", show_default=False)
    ] = None,
    exclude: Annotated[
        bool | None,
        typer.Option(
            "--exclude/--include", help="Stop (or resume) counting the record.", show_default=False
        ),
    ] = None,
    author: Annotated[
        str | None,
        typer.Option(help="Who annotates (default: the actor).", show_default=False),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Override one record of the newest analysis, with author and reason; the original record
    stays in the archive and the newest annotation applies."""
    from emeritus.archive import Archive
    from emeritus.interview import annotate as annotate_record
    from emeritus.interview import load_findings
    from emeritus.lifecycle import Registry

    changes: dict[str, Any] = {
        key: value
        for key, value in (
            ("stance", stance),
            ("strength", strength),
            ("conditions", conditions),
            ("excluded", exclude),
        )
        if value is not None
    }
    with open_store(ctx) as store:
        archive = Archive(store)
        Registry(store).get(model)
        findings = load_findings(archive, model)
        if findings is None:
            raise NotFound(f"{model} has no analysis to annotate (run emeritus analyze {model})")
        annotation = annotate_record(
            store,
            model,
            record,
            changes,
            author=author or store.settings.actor,
            reason=reason,
            known={r.id for r in findings.records},
        )
    if as_json:
        emit_json(annotation)
        return
    console.print(
        f"annotated {record} of {model}: "
        + ", ".join(f"{k}={v}" for k, v in annotation["changes"].items())
        + f" (by {annotation['author']})"
    )


def open_judge(
    archive: Archive, registry: Registry, model: str, judge: str | None, judge_url: str | None
) -> Judge:
    """The judge: a server's model, the named registered model, or by default a different
    preserved model (the successor first); the interviewed model itself only when no other
    can run, which the findings then record."""
    from emeritus.interview import Judge
    from emeritus.runtime import Backend, OpenAIBackend, open_preserved, weights_entry

    if judge_url:
        if not judge:
            raise InvalidInput("--judge-url needs --judge naming the model on that server")
        backend: Backend = OpenAIBackend(judge_url, judge)
        return Judge(backend, judge, {"backend": backend.describe()})
    name = judge or default_judge(archive, registry, model)
    registry.get(name)
    opened, _size = open_preserved(archive, name, n_ctx=2048)
    identity = {
        "backend": opened.describe(),
        "weights_sha256": weights_entry(archive, name)["sha256"],
        "self_judged": name == model,
    }
    return Judge(opened, name, identity)


def default_judge(archive: Archive, registry: Registry, model: str) -> str:
    from emeritus.runtime import weights_entry

    info = registry.get(model)
    others = [m.name for m in registry.models() if m.name != model]
    if info.successor in others:
        others.remove(info.successor)
        others.insert(0, info.successor)
    for name in [*others, model]:
        try:
            weights_entry(archive, name)
        except EmeritusError:
            continue
        return name
    raise NotFound(
        f"no preserved model with weights can judge {model}: preserve one, pass "
        "--judge-url, or use --no-judge"
    )
