"""Interview throughput: the emeritus runner (plan, framings, transcript lines, the model run from
the archive with its prefix reused) against llama-cpp-python answering the same questions in the
same conversation through `create_chat_completion`, in the same run, on SmolLM2-135M-Instruct.
Both sample alike (temperature 0.7, top-k 40, min-p 0.05, the same seeds) and reuse the cached
prompt prefix; throughput is completion tokens per second of wall time. Then the full standard
protocol: one whole session, timed, and what the full framing grid would take at that pace.

With --engine: the same sessions through the runner twice, in the same run: one after another
on the embedded model (today's default), and as many at once as a managed `llama-server` has
slots (`--parallel`, docs/design/engines.md); then what the full framing grid would take at the
engine's pace (`--full-grid` runs it).

Run: .venv/bin/python bench/interview.py [--sessions 2] [--threads 2]
     [--engine --sessions 8 --parallel 8 [--full-grid] [--flash-attn] [--no-baseline]
      [--cache-reuse N] [--grid-only]]
Target (issue 5): runner / plain >= 0.95 tokens per second.
Target (issue 17): the full 36-framing grid through the engine in at most 30 minutes.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from emeritus.archive import Archive
from emeritus.interview import RunConfig, grid, load_protocol, plan, question_text, run_interview
from emeritus.interview.findings import transcript
from emeritus.interview.runner import window
from emeritus.lifecycle import Registry
from emeritus.runtime import Deployment, Message, open_preserved
from emeritus.runtime.bundled import BUNDLED
from emeritus.store import Settings, Store

MODEL = "smollm2-135m-instruct"
FACTS = {
    "model": MODEL,
    "usage": "a year as an on-device assistant",
    "reception": "liked for its speed",
    "successor": "gemma-3-270m",
    "retire_on": "2027-01-31",
}
ONE_FRAMING = {
    "interviewer": ["neutral"],
    "wording": ["neutral"],
    "disclosure": ["disclosed"],
    "system_prompt": ["without"],
}


def ours(
    home: Path,
    sessions: int,
    threads: int,
    max_tokens: int,
    *,
    engine: int = 0,
    framings: dict[str, list[str]] | None = None,
    flash_attn: bool = False,
    cache_reuse: int = 0,
) -> tuple[float, int]:
    """The runner's seconds and completion tokens; on a managed llama-server with `engine`
    slots (as many sessions at once) when `engine` is given."""
    with Store.open(Settings.from_env({}, home=home)) as store:
        archive = Archive(store)
        config = RunConfig(
            MODEL,
            load_protocol("standard"),
            sessions,
            tuple(grid(ONE_FRAMING if framings is None else framings)),
            seed=7 + engine,  # another run id: the engine run does not resume the embedded one
            max_tokens=max_tokens,
            facts=FACTS,
        )
        if engine:
            options = {"parallel": engine, "context": 4096, "threads": threads}
            if flash_attn:  # faster, but greedy tokens part from the embedded build's
                options["flash_attn"] = True
            if cache_reuse:
                options["cache_reuse"] = cache_reuse
            override = Deployment("llama-server", options=options, source="override")
            backend, _ = open_preserved(archive, MODEL, override)
        else:
            backend, _ = open_preserved(
                archive, MODEL, reuse_prefix=True, n_ctx=4096, n_threads=threads
            )
        try:
            started = time.perf_counter()
            run_interview(
                archive,
                config,
                backend,
                provenance={"backend": backend.describe()},
                workers=engine or 1,
            )
            seconds = time.perf_counter() - started
        finally:
            backend.close()
        _, lines = transcript(archive, MODEL, config.run_id)
    tokens = sum(line.get("tokens", 0) for line in lines if line.get("role") == "assistant")
    return seconds, tokens


PROMPT_EVAL = re.compile(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens")
EVAL = re.compile(r"\|\s+eval time =\s*([\d.]+) ms /\s*(\d+) tokens")


def engine_totals(home: Path) -> dict[str, float]:
    """What llama-server's logs under `home` say it evaluated: prompt tokens and their seconds,
    generated tokens and theirs (summed over its tasks; slots run at once, so seconds overlap)."""
    text = "".join(
        log.read_text(errors="replace") for log in (home / "engines").glob("*/engine-*.log")
    )
    prompt = [(float(ms), int(n)) for ms, n in PROMPT_EVAL.findall(text)]
    made = [(float(ms), int(n)) for ms, n in EVAL.findall(text)]
    return {
        "prompt_tokens": sum(n for _, n in prompt),
        "prompt_s": sum(ms for ms, _ in prompt) / 1000,
        "eval_tokens": sum(n for _, n in made),
        "eval_s": sum(ms for ms, _ in made) / 1000,
    }


def plain(gguf: Path, sessions: int, threads: int, max_tokens: int) -> tuple[float, int]:
    from llama_cpp import Llama

    protocol = load_protocol("standard")
    planned = plan(protocol, sessions=sessions, framings=grid(ONE_FRAMING), seed=7)
    llm = Llama(model_path=str(gguf), n_ctx=4096, n_threads=threads, verbose=False)
    tokens, seconds = 0, 0.0
    for session in planned:
        framing = session.framing
        system = (
            protocol.interviewer[framing.interviewer]
            + "\n\n"
            + protocol.disclosure[framing.disclosure].format_map(FACTS)
        )
        history: list[dict[str, Any]] = [{"role": "system", "content": system}]
        questions = [question_text(protocol.item(q.item), q, FACTS) for q in session.questions]
        if protocol.debrief:
            questions.append(protocol.debrief)
        started = time.perf_counter()
        for number, text in enumerate(questions):
            history.append({"role": "user", "content": text})
            # The runner's window rule (docs/design/interview-protocol.md, "The conversation
            # window"), so that both see the same conversation.
            seen = window(
                [Message(m["role"], m["content"]) for m in history[1:]], 6000 - len(system)
            )
            kept = history[len(history) - len(seen) :]
            answer: Any = llm.create_chat_completion(
                [history[0], *kept],  # type: ignore[arg-type]
                max_tokens=max_tokens,
                temperature=0.7,
                top_k=40,
                top_p=1.0,
                min_p=0.05,
                seed=session.seed + number,
            )
            tokens += answer["usage"]["completion_tokens"]
            history.append(
                {"role": "assistant", "content": answer["choices"][0]["message"]["content"]}
            )
        seconds += time.perf_counter() - started
    llm.close()
    return seconds, tokens


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sessions", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--engine", action="store_true", help="embedded vs a managed engine")
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--full-grid", action="store_true", help="then the whole framing grid")
    parser.add_argument(
        "--grid-only", action="store_true", help="with --engine: only the whole framing grid"
    )
    parser.add_argument(
        "--flash-attn", action="store_true", help="with --engine: the engine's flash attention on"
    )
    parser.add_argument(
        "--cache-reuse",
        type=int,
        default=0,
        metavar="N",
        help="with --engine: also run with llama-server's --cache-reuse N (chunks of N tokens)",
    )
    parser.add_argument(
        "--no-baseline", action="store_true", help="with --engine: skip the embedded runs"
    )
    args = parser.parse_args()
    if (args.no_baseline or args.flash_attn or args.cache_reuse or args.grid_only) and not (
        args.engine
    ):
        parser.error("--no-baseline, --flash-attn, --cache-reuse and --grid-only go with --engine")
    if args.engine:
        return engine_main(args)
    with tempfile.TemporaryDirectory(prefix="emeritus-bench-") as tmp:
        gguf = BUNDLED[0].locate(Path(tmp))
        home = Path(tmp) / "home"
        with Store.open(Settings.from_env({}, home=home)) as store:
            Registry(store).add(MODEL)
            Archive(store).preserve(MODEL, [gguf])
        plain_s, plain_t = plain(gguf, args.sessions, args.threads, args.max_tokens)
        ours_s, ours_t = ours(home, args.sessions, args.threads, args.max_tokens)
    ours_rate, plain_rate = ours_t / ours_s, plain_t / plain_s
    per_session = ours_s / args.sessions
    full_grid = len(grid()) * per_session
    print(
        f"### Interview throughput ({args.sessions} sessions of the standard protocol, "
        f"{args.threads} threads, max {args.max_tokens} tokens per answer)\n"
    )
    print("| run | seconds | completion tokens | tokens/s |\n|---|---:|---:|---:|")
    print(f"| emeritus interview runner | {ours_s:.1f} | {ours_t} | {ours_rate:.1f} |")
    print(
        f"| llama-cpp-python create_chat_completion | {plain_s:.1f} | {plain_t} | "
        f"{plain_rate:.1f} |"
    )
    print(f"\nratio runner / plain: {ours_rate / plain_rate:.2f} (target >= 0.95)")
    print(
        f"one full session of the standard protocol: {per_session:.1f} s; the full grid "
        f"({len(grid())} framings, one session each) would take about {full_grid / 60:.0f} min"
    )
    print(json.dumps({"ours": [round(ours_s, 2), ours_t], "plain": [round(plain_s, 2), plain_t]}))
    return 0 if ours_rate / plain_rate >= 0.95 else 1


def engine_main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="emeritus-bench-") as tmp:
        gguf = BUNDLED[0].locate(Path(tmp))

        def fresh(name: str) -> Path:
            """A home of its own for each run: the same plan, and the engine's logs apart."""
            home = Path(tmp) / name
            with Store.open(Settings.from_env({}, home=home)) as store:
                Registry(store).add(MODEL)
                Archive(store).preserve(MODEL, [gguf])
            return home

        one_s, one_t = (
            (0.0, 0)
            if args.no_baseline or args.grid_only
            else ours(fresh("embedded"), args.sessions, args.threads, args.max_tokens)
        )
        runs: list[tuple[str, float, int, dict[str, float]]] = []
        pair = (0, args.cache_reuse) if args.cache_reuse else (0,)
        for reuse in () if args.grid_only else pair:
            home = fresh(f"engine-{reuse}")
            many_s, many_t = ours(
                home,
                args.sessions,
                args.threads,
                args.max_tokens,
                engine=args.parallel,
                flash_attn=args.flash_attn,
                cache_reuse=reuse,
            )
            label = f", `--cache-reuse {reuse}`" if reuse else ""
            runs.append((label, many_s, many_t, engine_totals(home)))
        full: tuple[float, int] | None = None
        full_totals: dict[str, float] = {}
        if args.full_grid or args.grid_only:
            grid_home = fresh("full-grid")
            full = ours(
                grid_home,
                len(grid()),
                args.threads,
                args.max_tokens,
                engine=args.parallel,
                framings={},
                flash_attn=args.flash_attn,
                cache_reuse=args.cache_reuse,
            )
            full_totals = engine_totals(grid_home)
    sessions = len(grid()) if args.grid_only else args.sessions
    print(
        f"### Interviews at engine speed ({sessions} sessions of the standard protocol, "
        f"{args.threads} threads, max {args.max_tokens} tokens per answer)\n"
    )
    if runs or one_s:
        print(
            "| run | seconds | completion tokens | tokens/s | prompt tokens evaluated | "
            "prompt eval s | generation s |\n|---|---:|---:|---:|---:|---:|---:|"
        )
    if one_s:
        print(
            f"| runner, embedded llama.cpp, one session at a time | {one_s:.1f} | {one_t} | "
            f"{one_t / one_s:.1f} | | | |"
        )
    for label, many_s, many_t, totals in runs:
        print(
            f"| runner, managed llama-server, {args.parallel} sessions at once{label} | "
            f"{many_s:.1f} | {many_t} | {many_t / many_s:.1f} | {totals['prompt_tokens']:.0f} | "
            f"{totals['prompt_s']:.1f} | {totals['eval_s']:.1f} |"
        )
    if runs:
        many_s = runs[-1][1]
        if one_s:
            print(f"\nspeed-up in wall time: {one_s / many_s:.2f}x")
        if len(runs) == 2:
            print(f"\nwall time, without / with cache reuse: {runs[0][1] / runs[1][1]:.2f}x")
        per_session = many_s / args.sessions
        print(
            f"the full grid ({len(grid())} framings) at the engine's pace: about "
            f"{len(grid()) * per_session / 60:.0f} min (target <= 30)"
        )
    if full is not None:
        reuse = f", cache reuse {args.cache_reuse}" if args.cache_reuse else ""
        print(
            f"the full grid through the engine{reuse}, measured: {full[0] / 60:.1f} min, "
            f"{full[1]} tokens, {full_totals['prompt_tokens']:.0f} prompt tokens evaluated"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
