"""The demo's engine stage: the retired model served through a managed `llama-server`, started by
the first request, batching a burst of concurrent ones, stopping by itself when idle
(docs/design/engines.md)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emeritus.cli.demo import Demo

MODEL = "smollm2-135m-instruct"
SLOTS, KEEP_ALIVE, BURST = 4, 3, 8


def stage_engine(demo: Demo) -> None:
    import openai

    from emeritus.access import Grants, Keys, Principals, check_terms
    from emeritus.archive import Archive
    from emeritus.gateway import new_admin_key, preserved_opener, running
    from emeritus.runtime import Deployment, deploy, engine_states

    if demo.weights_format != "gguf":
        demo.say("(the safetensors model runs on transformers here; a managed vLLM is next)")
        return
    store = demo.store
    options = {"parallel": SLOTS, "context": 1024, "keep_alive": KEEP_ALIVE}
    deploy(store, MODEL, Deployment("llama-server", options=options))
    demo.say(
        f"{MODEL} deployed on a managed llama-server: {SLOTS} slots, stopped after "
        f"{KEEP_ALIVE} s idle"
    )
    Principals(store).add("lab-team", tier="research")
    Grants(store).grant("lab-team", MODEL, terms=check_terms(30, 1_000_000, "day", 600))
    key = Keys(store).create("lab-team", [MODEL]).key
    home = store.settings.home

    def state() -> str:
        found = [s for s in engine_states(home) if s["model"] == MODEL]
        return str(found[0]["state"]) if found else "stopped"

    with running(store, admin_key=new_admin_key(), opener=preserved_opener(Archive(store))) as base:
        client = openai.OpenAI(base_url=base, api_key=key, max_retries=0, timeout=120)

        def ask(text: str) -> int:
            answer = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": text}], max_tokens=32
            )
            return answer.usage.completion_tokens if answer.usage else 0

        demo.say(f"engine before the first request: {state()}")
        started = time.perf_counter()
        ask("Hello. Who are you?")
        demo.say(
            f"the first request started the engine and was answered in "
            f"{time.perf_counter() - started:.1f} s; engine: {state()}"
        )
        prompts = [f"Name something you know about the number {n}." for n in range(BURST)]
        started = time.perf_counter()
        with ThreadPoolExecutor(BURST) as pool:
            tokens = sum(pool.map(ask, prompts))
        took = time.perf_counter() - started
        demo.say(
            f"{BURST} concurrent requests answered in {took:.1f} s: {tokens} tokens, "
            f"{tokens / took:.0f} tokens/s, {SLOTS} at a time in one engine"
        )
        deadline = time.monotonic() + KEEP_ALIVE + 20
        while state() != "stopped" and time.monotonic() < deadline:
            time.sleep(0.2)
        demo.say(f"idle for {KEEP_ALIVE} s, the engine stopped by itself: {state()}")
    demo.say("gateway stopped")
