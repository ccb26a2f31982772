"""What keeping prefix reuse within a principal costs behind a managed `llama-server`
(issue 17, part 7; docs/design/engines.md, "Prefix reuse never crosses principals").

The same load through one gateway, in the same run, two ways: every client under one principal
(any free slot may hold a client's cached prefix for the next request of any client) against
every client its own principal (a request reuses only its own principal's slot, and otherwise
starts from an empty context). Each way with the bench's short prompts and with a long system
prompt shared by every request, which is where reuse across clients would save the most.
Configurations are interleaved round by round; medians are reported. A request refused with 503
(no slot within the gateway's queue wait, 30 s) is counted, not measured: it is what overload
looks like to a client.

Run: .venv/bin/python bench/isolation.py [--requests 64] [--clients 16] [--parallel 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from gateway import MODEL, PROMPTS, engine, first_answer, prepare, start_gateway

from emeritus.access import Grants, Keys, Principals, check_terms
from emeritus.store import Settings, Store

# About 550 tokens, as a chat product's instructions might be: the same for every client.
SYSTEM = " ".join(
    f"Rule {i}: answer plainly, in full sentences, and say when you are unsure about a fact."
    for i in range(1, 26)
)


def principals(home: Path, count: int) -> list[str]:
    """`count` principals, each with a grant and a key of its own."""
    settings = Settings(home=home, database_url=f"sqlite:///{home}/emeritus.db", actor="bench")
    keys = []
    with Store.open(settings) as store:
        for index in range(count):
            name = f"client-{index}"
            Principals(store).add(name, tier="research")
            Grants(store).grant(name, MODEL, terms=check_terms(30, 10**12, "day", 10**6))
            keys.append(Keys(store).create(name, [MODEL]).key)
    return keys


async def load(
    base: str, keys: list[str], *, system: str, requests: int, max_tokens: int
) -> dict[str, float]:
    """`requests` chat completions over one client per key, each client with its own key."""
    latencies: list[float] = []
    tokens = busy = 0
    queue = list(range(requests))
    async with httpx.AsyncClient(timeout=600) as client:

        async def worker(key: str) -> None:
            nonlocal tokens, busy
            while queue:
                index = queue.pop()
                messages = [{"role": "user", "content": PROMPTS[index % len(PROMPTS)]}]
                if system:
                    messages.insert(0, {"role": "system", "content": system})
                started = time.perf_counter()
                response = await client.post(
                    f"{base}/chat/completions",
                    headers={"Authorization": f"Bearer {key}"},
                    json={
                        "model": MODEL,
                        "messages": messages,
                        "max_tokens": max_tokens,
                        "temperature": 0,
                    },
                )
                if response.status_code == 503:  # no slot within the queue wait: overloaded
                    busy += 1
                    continue
                if response.status_code != 200:
                    raise SystemExit(f"{response.status_code}: {response.text[:300]}")
                latencies.append(time.perf_counter() - started)
                tokens += response.json()["usage"]["completion_tokens"]

        started = time.perf_counter()
        await asyncio.gather(*(worker(key) for key in keys))
        wall = time.perf_counter() - started
    return {
        "requests": requests,
        "tokens_per_s": round(tokens / wall, 1),
        "median_latency_ms": round(statistics.median(latencies) * 1000, 1),
        "refused_503": busy,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        shared, _ = prepare(home, engine(args))
        own = principals(home, args.clients)
        process, base = start_gateway(home, args)
        try:
            first_answer(base, shared)
            ways = {"one principal": [shared] * args.clients, "a principal each": own}
            for _ in range(args.rounds):
                for prompt, system in (("short prompts", ""), ("long system prompt", SYSTEM)):
                    for way, keys in ways.items():
                        measured = asyncio.run(
                            load(
                                base,
                                keys,
                                system=system,
                                requests=args.requests,
                                max_tokens=args.max_tokens,
                            )
                        )
                        results.setdefault((prompt, way), []).append(measured)
                        print(prompt, way, measured, flush=True)
        finally:
            process.terminate()
            process.wait(timeout=30)
    medians = {
        key: {field: statistics.median(r[field] for r in rows) for field in rows[0]}
        for key, rows in results.items()
    }
    print(json.dumps({f"{p}, {w}": m for (p, w), m in medians.items()}))
    print(
        f"\n{args.clients} clients, --parallel {args.parallel}, {args.rounds} rounds (medians)"
        "\n\n| prompts | clients as | tokens/s | median latency (ms) | refused (503) |"
        "\n|---|---|---:|---:|---:|"
    )
    for (prompt, way), row in medians.items():
        print(
            f"| {prompt} | {way} | {row['tokens_per_s']} | {row['median_latency_ms']} | "
            f"{row['refused_503']:g} |"
        )
    for prompt in ("short prompts", "long system prompt"):
        one, each = medians[(prompt, "one principal")], medians[(prompt, "a principal each")]
        print(
            f"{prompt}: a principal each / one principal = "
            f"{each['tokens_per_s'] / one['tokens_per_s']:.3f} in tokens/s, "
            f"{each['median_latency_ms'] - one['median_latency_ms']:+.1f} ms median latency"
        )


if __name__ == "__main__":
    main()
